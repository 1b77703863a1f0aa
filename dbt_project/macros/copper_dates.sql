{#-
  Portable date helpers (DuckDB and Postgres), built on dbt's cross-database macros.
-#}

{#- Copper's close_date text "M/D/YYYY" as a date; NULL when empty or not a real date. Never an
    error, whatever order the database evaluates things in: only text of the right shape is
    split and cast to integers, and only a real calendar date (month lengths and leap years
    checked) is cast to a date. -#}
{% macro parse_mdy_date(column) -%}
  {%- set shaped = column ~ " similar to '[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}'" -%}
  {%- set parts = [] -%}
  {%- for i in (1, 2, 3) -%}
    {%- do parts.append("(case when " ~ shaped ~ " then "
        ~ dbt.split_part(column, "'/'", i) | trim ~ " end)") -%}
  {%- endfor -%}
  {%- set m, d, y = parts[0] ~ "", parts[1] ~ "", parts[2] ~ "" -%}
  {%- set mi, di, yi = dbt.cast(m, dbt.type_int()), dbt.cast(d, dbt.type_int()),
      dbt.cast(y, dbt.type_int()) -%}
  cast(case
    when {{ yi }} >= 1000
      and {{ mi }} between 1 and 12
      and {{ di }} between 1 and case
        when {{ mi }} in (4, 6, 9, 11) then 30
        when {{ mi }} <> 2 then 31
        when ({{ yi }} % 4 = 0 and {{ yi }} % 100 <> 0) or {{ yi }} % 400 = 0 then 29
        else 28
      end
    then {{ y }} || '-' || lpad({{ m }}, 2, '0') || '-' || lpad({{ d }}, 2, '0')
  end as date)
{%- endmacro %}


{#- The start of the day/week/month/quarter/year holding `expr` (a date or timestamp), as a date.
    Weeks start on Monday on both adapters. -#}
{% macro period_start(part, expr) -%}
  cast({{ dbt.date_trunc(part, "cast(" ~ expr ~ " as " ~ dbt.type_timestamp() ~ ")") }} as date)
{%- endmacro %}


{#- Now, as a UTC timestamp without time zone (the convention of every model here). -#}
{% macro utc_now() -%}
  cast({{ dbt.current_timestamp() }} at time zone 'UTC' as {{ dbt.type_timestamp() }})
{%- endmacro %}
