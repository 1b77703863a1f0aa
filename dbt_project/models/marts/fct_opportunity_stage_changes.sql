-- One row per "Pipeline Stage Changed" system activity on an opportunity (the activity type is
-- found by name and category in activity_types, never by id). Stage names are as Copper
-- recorded them at the time; orders and pipelines come from the current stages.
with stage_changed as (
  select activity_type_id, activity_category
  from {{ ref('stg_activity_types') }}
  where activity_category = 'system'
    and activity_type_name = '{{ var("stage_changed_activity") }}'
),

changes as (
  select activities.*
  from {{ ref('stg_activities') }} as activities
  inner join stage_changed
    on stage_changed.activity_type_id = activities.activity_type_id
    and stage_changed.activity_category = activities.activity_category
  where activities.parent_type = 'opportunity'
),

sequenced as (
  select
    *,
    lag(activity_at) over (
      partition by parent_id order by activity_at, activity_id
    ) as previous_change_at
  from changes
)

select
  sequenced.activity_id as stage_change_id,
  sequenced.parent_id as opportunity_id,
  opportunities.opportunity_name,
  sequenced.activity_at as changed_at,
  cast(sequenced.activity_at as date) as changed_date,
  sequenced.user_id,
  sequenced.user_name,
  coalesce(to_stage.pipeline_id, from_stage.pipeline_id, opportunities.pipeline_id)
    as pipeline_id,
  coalesce(to_stage.pipeline_name, from_stage.pipeline_name, opportunities.pipeline_name)
    as pipeline_name,
  sequenced.old_value_id as from_stage_id,
  coalesce(sequenced.old_value_name, from_stage.stage_name) as from_stage_name,
  from_stage.stage_order as from_stage_order,
  sequenced.new_value_id as to_stage_id,
  coalesce(sequenced.new_value_name, to_stage.stage_name) as to_stage_name,
  to_stage.stage_order as to_stage_order,
  case
    when from_stage.stage_order is null or to_stage.stage_order is null then null
    when to_stage.stage_order > from_stage.stage_order then 'forward'
    when to_stage.stage_order < from_stage.stage_order then 'backward'
    else 'same'
  end as direction,
  -- days spent in the stage left: since the previous change, or since the opportunity opened
  {{ dbt.datediff(
      'cast(coalesce(sequenced.previous_change_at, opportunities.created_at) as date)',
      'cast(sequenced.activity_at as date)',
      'day') }} as days_in_from_stage
from sequenced
left join {{ ref('stg_opportunities') }} as opportunities
  on opportunities.opportunity_id = sequenced.parent_id
left join {{ ref('stg_pipeline_stages') }} as from_stage
  on from_stage.pipeline_stage_id = sequenced.old_value_id
left join {{ ref('stg_pipeline_stages') }} as to_stage
  on to_stage.pipeline_stage_id = sequenced.new_value_id
