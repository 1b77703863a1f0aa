-- stage_order: the stage's position in its pipeline (Copper lists stages in order inside
-- each pipeline; /pipeline_stages alone does not say it), else the order of stage ids
with stages as (
  {{ copper_select('pipeline_stages', [
      ('id', 'pipeline_stage_id', 'id'),
      ('name', 'stage_name', 'text'),
      ('pipeline_id', 'pipeline_id', 'id'),
      ('win_probability', 'win_probability', 'int'),
  ]) }}
),

pipelines as (
  {{ copper_select('pipelines', [('id', 'pipeline_id', 'id'), ('_dlt_id', 'dlt_id', 'text')]) }}
),

listed as (
  {{ copper_select('pipelines__stages', [
      ('id', 'pipeline_stage_id', 'id'),
      ('_dlt_parent_id', 'dlt_parent_id', 'text'),
      ('_dlt_list_idx', 'list_index', 'int'),
  ]) }}
),

positions as (
  select listed.pipeline_stage_id, pipelines.pipeline_id, listed.list_index + 1 as stage_order
  from listed
  inner join pipelines on pipelines.dlt_id = listed.dlt_parent_id
)

select
  stages.pipeline_stage_id,
  stages.stage_name,
  stages.pipeline_id,
  stg_pipelines.pipeline_name,
  stages.win_probability,
  coalesce(
    positions.stage_order,
    row_number() over (partition by stages.pipeline_id order by stages.pipeline_stage_id)
  ) as stage_order
from stages
left join positions
  on positions.pipeline_stage_id = stages.pipeline_stage_id
  and positions.pipeline_id = stages.pipeline_id
left join {{ ref('stg_pipelines') }} as stg_pipelines
  on stg_pipelines.pipeline_id = stages.pipeline_id
