-- Copper numbers user and system activity types separately: the key is (category, id)
with activity_types as (
  {{ copper_select('activity_types', [
      ('id', 'activity_type_id', 'id'),
      ('category', 'activity_category', 'text'),
      ('name', 'activity_type_name', 'text'),
      ('is_disabled', 'is_disabled', 'bool'),
      ('count_as_interaction', 'counts_as_interaction', 'bool'),
  ]) }}
)

select
  {{ dbt.concat([
      'activity_category', "':'", dbt.cast('activity_type_id', dbt.type_string())
  ]) }} as activity_type_key,
  activity_type_id,
  activity_category,
  activity_type_name,
  is_disabled,
  counts_as_interaction
from activity_types
