with opportunities as (
  {{ copper_select('opportunities', [
      ('id', 'opportunity_id', 'id'),
      ('name', 'opportunity_name', 'text'),
      ('status', 'status', 'text'),
      ('priority', 'priority', 'text'),
      ('monetary_value', 'monetary_value', 'money'),
      ('win_probability', 'win_probability', 'int'),
      ('pipeline_id', 'pipeline_id', 'id'),
      ('pipeline_stage_id', 'pipeline_stage_id', 'id'),
      ('assignee_id', 'owner_id', 'id'),
      ('company_id', 'company_id', 'id'),
      ('company_name', 'company_name', 'text'),
      ('primary_contact_id', 'primary_contact_id', 'id'),
      ('customer_source_id', 'customer_source_id', 'id'),
      ('loss_reason_id', 'loss_reason_id', 'id'),
      ('close_date', 'close_date_text', 'text'),
      ('interaction_count', 'interaction_count', 'int'),
      ('details', 'details', 'text'),
      ('date_stage_changed', 'stage_changed_at', 'timestamp'),
      ('date_last_contacted', 'last_contacted_at', 'timestamp'),
      ('date_created', 'created_at', 'timestamp'),
      ('date_modified', 'modified_at', 'timestamp'),
  ], custom_fields=true, live=true) }}
)

select
  opportunities.opportunity_id,
  opportunities.opportunity_name,
  opportunities.status,
  opportunities.priority,
  opportunities.monetary_value,
  opportunities.win_probability,
  opportunities.pipeline_id,
  pipelines.pipeline_name,
  opportunities.pipeline_stage_id,
  stages.stage_name,
  stages.stage_order,
  opportunities.owner_id,
  owners.user_name as owner_name,
  opportunities.company_id,
  opportunities.company_name,
  opportunities.primary_contact_id,
  opportunities.customer_source_id,
  customer_sources.customer_source_name,
  opportunities.loss_reason_id,
  loss_reasons.loss_reason_name,
  -- Copper's close date is text "M/D/YYYY" (the account's local date): NULL when unparseable
  {{ parse_mdy_date('opportunities.close_date_text') }} as close_date,
  opportunities.close_date_text,
  opportunities.interaction_count,
  opportunities.details,
  opportunities.stage_changed_at,
  opportunities.last_contacted_at,
  opportunities.created_at,
  opportunities.modified_at
  {{- copper_custom_fields('opportunities', 'opportunities') }}
from opportunities
left join {{ ref('stg_pipelines') }} as pipelines
  on pipelines.pipeline_id = opportunities.pipeline_id
left join {{ ref('stg_pipeline_stages') }} as stages
  on stages.pipeline_stage_id = opportunities.pipeline_stage_id
left join {{ ref('stg_users') }} as owners on owners.user_id = opportunities.owner_id
left join {{ ref('stg_customer_sources') }} as customer_sources
  on customer_sources.customer_source_id = opportunities.customer_source_id
left join {{ ref('stg_loss_reasons') }} as loss_reasons
  on loss_reasons.loss_reason_id = opportunities.loss_reason_id
