with users as (
  {{ copper_select('users', [
      ('id', 'user_id', 'id'),
      ('name', 'user_name', 'text'),
      ('email', 'email', 'text'),
      ('_dlt_id', 'dlt_id', 'text'),
  ]) }}
),

user_groups as (
  {{ copper_select('users__groups', [
      ('name', 'group_name', 'text'),
      ('_dlt_parent_id', 'dlt_parent_id', 'text'),
  ]) }}
),

groups_per_user as (
  select
    dlt_parent_id,
    {{ dbt.listagg('group_name', "', '", 'order by group_name') }} as group_names
  from user_groups
  group by dlt_parent_id
)

select
  users.user_id,
  users.user_name,
  users.email,
  groups_per_user.group_names
from users
left join groups_per_user on groups_per_user.dlt_parent_id = users.dlt_id
