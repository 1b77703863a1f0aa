with leads as (
  {{ copper_select('leads', [
      ('id', 'lead_id', 'id'),
      ('name', 'lead_name', 'text'),
      ('first_name', 'first_name', 'text'),
      ('last_name', 'last_name', 'text'),
      ('title', 'title', 'text'),
      ('company_name', 'company_name', 'text'),
      ('email__email', 'email', 'text'),
      ('status', 'status', 'text'),
      ('status_id', 'lead_status_id', 'id'),
      ('customer_source_id', 'customer_source_id', 'id'),
      ('assignee_id', 'owner_id', 'id'),
      ('monetary_value', 'monetary_value', 'money'),
      ('converted_value', 'converted_value', 'money'),
      ('converted_opportunity_id', 'converted_opportunity_id', 'id'),
      ('converted_timestamp', 'converted_at', 'timestamp'),
      ('interaction_count', 'interaction_count', 'int'),
      ('details', 'details', 'text'),
      ('address__city', 'city', 'text'),
      ('address__state', 'state', 'text'),
      ('address__country', 'country', 'text'),
      ('date_created', 'created_at', 'timestamp'),
      ('date_modified', 'modified_at', 'timestamp'),
  ], custom_fields=true, live=true) }}
)

select
  leads.lead_id,
  leads.lead_name,
  leads.first_name,
  leads.last_name,
  leads.title,
  leads.company_name,
  leads.email,
  leads.status,
  leads.lead_status_id,
  coalesce(lead_statuses.lead_status_name, leads.status) as lead_status_name,
  leads.customer_source_id,
  customer_sources.customer_source_name,
  leads.owner_id,
  owners.user_name as owner_name,
  leads.monetary_value,
  leads.converted_at is not null as is_converted,
  leads.converted_at,
  leads.converted_value,
  leads.converted_opportunity_id,
  leads.interaction_count,
  leads.details,
  leads.city,
  leads.state,
  leads.country,
  leads.created_at,
  leads.modified_at
  {{- copper_custom_fields('leads', 'leads') }}
from leads
left join {{ ref('stg_lead_statuses') }} as lead_statuses
  on lead_statuses.lead_status_id = leads.lead_status_id
left join {{ ref('stg_customer_sources') }} as customer_sources
  on customer_sources.customer_source_id = leads.customer_source_id
left join {{ ref('stg_users') }} as owners on owners.user_id = leads.owner_id
