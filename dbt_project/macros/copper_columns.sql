{#-
  Staging helpers that survive any Copper account: dlt creates a column only once it receives a
  value and a table only once it receives a row, and custom field columns (cf_*) differ per
  account. Columns are given as (source column, alias, kind) with kind one of
  id, int, text, bool, float, money, timestamp.
-#}

{% macro copper_type(kind) -%}
  {%- if kind in ('id', 'int') -%}{{ dbt.type_bigint() }}
  {%- elif kind == 'text' -%}{{ dbt.type_string() }}
  {%- elif kind == 'bool' -%}{{ dbt.type_boolean() }}
  {%- elif kind == 'float' -%}double precision
  {%- elif kind == 'money' -%}decimal(38, 9)
  {%- elif kind == 'timestamp' -%}{{ dbt.type_timestamp() }}
  {%- else -%}{{ exceptions.raise_compiler_error("unknown column kind " ~ kind) }}
  {%- endif -%}
{%- endmacro %}


{#- name -> data type of the columns of `relation`; none when the table does not exist.
    Read from the information schema, never through adapter.get_relation: dbt fills its
    relation cache for a schema one relation at a time while other threads read it, so under
    load get_relation can miss a table that exists (and a staging model would come out empty).
    Every table dlt creates has columns, so none found means no table. -#}
{% macro copper_existing_columns(relation) -%}
  {%- if not execute -%}{{ return({}) }}{%- endif -%}
  {%- set columns = {} -%}
  {%- for column in adapter.get_columns_in_relation(relation) -%}
    {%- do columns.update({column.name | lower: column.dtype | lower}) -%}
  {%- endfor -%}
  {{ return(columns if columns else none) }}
{%- endmacro %}


{#- One typed column: timestamps with a time zone become UTC timestamps without one, so that
    dates, months and weeks are the same on every adapter whatever the session time zone. -#}
{% macro copper_column(name, kind, existing) -%}
  {%- if existing is none or name not in existing -%}
    cast(null as {{ copper_type(kind) }})
  {%- elif kind == 'timestamp' and ('time zone' in existing[name] or 'tz' in existing[name]) -%}
    cast({{ adapter.quote(name) }} at time zone 'UTC' as {{ copper_type(kind) }})
  {%- else -%}
    cast({{ adapter.quote(name) }} as {{ copper_type(kind) }})
  {%- endif -%}
{%- endmacro %}


{#- `select <columns> from <copper table>` as a subquery-ready statement; with custom_fields,
    every cf_* column follows as loaded; with live, only rows of records Copper still has (see
    copper_live_rows). A missing table gives typed columns and no rows. -#}
{% macro copper_select(table, columns, custom_fields=false, live=false) -%}
  {%- set relation = source('copper', table) -%}
  {%- set existing = copper_existing_columns(relation) -%}
  select
  {%- for name, alias, kind in columns %}
    {{ copper_column(name, kind, existing) }} as {{ alias }}{{ "," if not loop.last }}
  {%- endfor %}
  {%- if custom_fields and existing %}
    {%- for name in existing if name.startswith('cf_') %},
    {{ adapter.quote(name) }}
    {%- endfor %}
  {%- endif %}
  {%- if existing is none %}
  from (select 1 as missing_table) as {{ table }} where 1 = 0
  {%- elif live %}
  from {{ relation }} as {{ table }}
  {{- copper_live_rows(table, existing) }}
  {%- else %}
  from {{ relation }}
  {%- endif %}
{%- endmacro %}


{#- The where clause keeping the live rows of entity table `table` (aliased as itself): rows
    whose `_copper_deleted_at` is NULL and that no entry of the `_copper_deletions` log covers
    (logged in the row's load or a later one: deleted, but not marked yet, e.g. after a crash
    between load and mark, or in a pipeline that never calls mark_deletions). A row loaded
    again after its deletion (the record came back) is live. Nothing is filtered on what the
    table or the log lacks (a warehouse loaded before deletions were tracked). -#}
{% macro copper_live_rows(table, existing) -%}
  {%- set log = source('copper', '_copper_deletions') -%}
  {%- set log_columns = copper_existing_columns(log) or {} -%}
  {%- set conditions = [] -%}
  {%- if '_copper_deleted_at' in existing -%}
    {%- do conditions.append(table ~ '._copper_deleted_at is null') -%}
  {%- endif -%}
  {%- if '_dlt_load_id' in existing and 'id' in existing and 'entity' in log_columns
      and 'id' in log_columns and '_dlt_load_id' in log_columns -%}
    {%- do conditions.append(
        'not exists (select 1 from ' ~ log ~ ' as deletions'
        ~ " where deletions.entity = '" ~ table ~ "' and deletions.id = " ~ table ~ '.id'
        ~ ' and deletions._dlt_load_id >= ' ~ table ~ '._dlt_load_id)') -%}
  {%- endif -%}
  {%- if conditions %}
  where {{ conditions | join(' and ') }}
  {%- endif -%}
{%- endmacro %}


{#- The cf_* columns of a model built upstream, for marts that pass them on:
    `{{ custom_field_columns(ref('stg_companies'), 'c') }}` gives ", c.cf_a, c.cf_b". -#}
{% macro custom_field_columns(relation, alias) -%}
  {%- if execute -%}
    {%- for column in adapter.get_columns_in_relation(relation)
        if (column.name | lower).startswith('cf_') %},
    {{ alias }}.{{ adapter.quote(column.name | lower) }}
    {%- endfor -%}
  {%- endif -%}
{%- endmacro %}


{#- ", alias.cf_a, alias.cf_b": the custom field columns of Copper table `table`, as loaded. -#}
{% macro copper_custom_fields(table, alias) -%}
  {%- set existing = copper_existing_columns(source('copper', table)) -%}
  {%- for name in (existing or {}) if name.startswith('cf_') %},
    {{ alias }}.{{ adapter.quote(name) }}
  {%- endfor -%}
{%- endmacro %}
