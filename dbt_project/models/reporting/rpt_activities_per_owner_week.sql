-- Activities users logged (category "user": notes, calls, meetings...), per user and week
-- (weeks start on Monday, UTC).
select
  user_id,
  user_name,
  activity_week,
  count(*) as activities,
  count(case when counts_as_interaction then 1 end) as interactions,
  count(distinct {{ dbt.concat([
      'parent_type', "':'", dbt.cast('parent_id', dbt.type_string())
  ]) }}) as records_touched,
  count(distinct case when parent_type = 'opportunity' then parent_id end)
    as opportunities_touched
from {{ ref('fct_activities') }}
where activity_category = 'user'
group by user_id, user_name, activity_week
