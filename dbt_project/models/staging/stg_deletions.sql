-- One row per deletion the source logged in _copper_deletions (a record deleted, back, and
-- deleted again has two), with what the entity table still holds of the record: soft deletes
-- keep its row (marked _copper_deleted_at), hard deletes remove it. is_restored: the record was
-- loaded again after this deletion (it came back in Copper), so it is live now.
{%- set entities = {
    'people': 'person', 'companies': 'company', 'leads': 'lead', 'opportunities': 'opportunity',
    'projects': 'project', 'tasks': 'task', 'activities': 'activity',
} %}

with deletions as (
  {{ copper_select('_copper_deletions', [
      ('_dlt_id', 'deletion_id', 'text'),
      ('entity', 'entity', 'text'),
      ('id', 'record_id', 'id'),
      ('detected_at', 'detected_at', 'timestamp'),
      ('detected_by', 'detected_by', 'text'),
      ('_dlt_load_id', 'load_id', 'text'),
  ]) }}
),

-- every entity row, deleted or not: (entity, record_id) is unique (tables are merged on id)
records as (
  {%- for entity in entities %}
  select cast('{{ entity }}' as {{ dbt.type_string() }}) as entity, {{ entity }}.*
  from (
    {{ copper_select(entity, [
        ('id', 'record_id', 'id'),
        ('name', 'record_name', 'text'),
        ('type__id', 'activity_type_id', 'id'),
        ('type__category', 'activity_category', 'text'),
        ('user_id' if entity == 'activities' else 'assignee_id', 'owner_id', 'id'),
        ('date_created', 'created_at', 'timestamp'),
        ('date_modified', 'modified_at', 'timestamp'),
        ('_copper_deleted_at', 'deleted_at', 'timestamp'),
        ('_dlt_load_id', 'load_id', 'text'),
    ]) }}
  ) as {{ entity }}
  {%- if not loop.last %}
  union all
  {%- endif %}
  {%- endfor %}
)

select
  deletions.deletion_id,
  deletions.entity,
  case deletions.entity
    {%- for entity, record_type in entities.items() %}
    when '{{ entity }}' then '{{ record_type }}'
    {%- endfor %}
  end as record_type,
  deletions.record_id,
  -- activities have no name: their type's name stands in
  coalesce(records.record_name, activity_types.activity_type_name) as record_name,
  records.owner_id,
  deletions.detected_at,
  deletions.detected_by,
  deletions.load_id,
  records.created_at as record_created_at,
  records.modified_at as record_modified_at,
  records.deleted_at as record_deleted_at,
  records.record_id is not null as is_row_kept,
  coalesce(records.load_id > deletions.load_id, false) as is_restored
from deletions
left join records
  on records.entity = deletions.entity and records.record_id = deletions.record_id
left join {{ ref('stg_activity_types') }} as activity_types
  on records.entity = 'activities'
  and activity_types.activity_type_id = records.activity_type_id
  and activity_types.activity_category = records.activity_category
