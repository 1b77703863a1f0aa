-- old_value/new_value hold what a system activity changed: stage ids and names for
-- "Pipeline Stage Changed", names only (Open, Won, ...) for "Status Changed"
with activities as (
  {{ copper_select('activities', [
      ('id', 'activity_id', 'id'),
      ('type__id', 'activity_type_id', 'id'),
      ('type__category', 'activity_category', 'text'),
      ('user_id', 'user_id', 'id'),
      ('parent__id', 'parent_id', 'id'),
      ('parent__type', 'parent_type', 'text'),
      ('details', 'details', 'text'),
      ('old_value__id', 'old_value_id', 'id'),
      ('old_value__name', 'old_value_name', 'text'),
      ('new_value__id', 'new_value_id', 'id'),
      ('new_value__name', 'new_value_name', 'text'),
      ('activity_date', 'activity_at', 'timestamp'),
      ('date_created', 'created_at', 'timestamp'),
      ('date_modified', 'modified_at', 'timestamp'),
  ], live=true) }}
)

select
  activities.activity_id,
  activities.activity_type_id,
  activities.activity_category,
  activity_types.activity_type_name,
  coalesce(activity_types.counts_as_interaction, false) as counts_as_interaction,
  activities.user_id,
  users.user_name,
  activities.parent_id,
  activities.parent_type,
  activities.details,
  activities.old_value_id,
  activities.old_value_name,
  activities.new_value_id,
  activities.new_value_name,
  activities.activity_at,
  activities.created_at,
  activities.modified_at
from activities
left join {{ ref('stg_activity_types') }} as activity_types
  on activity_types.activity_type_id = activities.activity_type_id
  and activity_types.activity_category = activities.activity_category
left join {{ ref('stg_users') }} as users on users.user_id = activities.user_id
