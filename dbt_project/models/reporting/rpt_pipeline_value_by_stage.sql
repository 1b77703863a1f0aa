-- Open opportunities per pipeline stage (every stage, empty ones too): count, value, and value
-- weighted by each opportunity's win probability.
with open_opportunities as (
  select * from {{ ref('fct_opportunities') }} where is_open
)

select
  stages.pipeline_id,
  stages.pipeline_name,
  stages.pipeline_stage_id,
  stages.stage_name,
  stages.stage_order,
  stages.win_probability as stage_win_probability,
  count(open_opportunities.opportunity_id) as open_opportunities,
  coalesce(sum(open_opportunities.monetary_value), 0) as open_value,
  coalesce(sum(open_opportunities.weighted_value), 0) as weighted_value,
  avg(open_opportunities.days_open) as avg_days_open
from {{ ref('stg_pipeline_stages') }} as stages
left join open_opportunities
  on open_opportunities.pipeline_stage_id = stages.pipeline_stage_id
group by
  stages.pipeline_id,
  stages.pipeline_name,
  stages.pipeline_stage_id,
  stages.stage_name,
  stages.stage_order,
  stages.win_probability
