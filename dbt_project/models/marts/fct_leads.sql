-- One row per lead, converted ones included (converted: converted_timestamp is set).
with leads as (
  select * from {{ ref('stg_leads') }}
)

select
  leads.lead_id,
  leads.lead_name,
  leads.company_name,
  leads.email,
  leads.status,
  leads.lead_status_id,
  leads.lead_status_name,
  leads.customer_source_id,
  leads.customer_source_name,
  leads.owner_id,
  leads.owner_name,
  leads.monetary_value,
  leads.is_converted,
  leads.converted_at,
  cast(leads.converted_at as date) as converted_date,
  leads.converted_value,
  leads.converted_opportunity_id,
  opportunities.status as converted_opportunity_status,
  {{ dbt.datediff(
      'cast(leads.created_at as date)', 'cast(leads.converted_at as date)', 'day')
  }} as days_to_convert,
  leads.created_at,
  cast(leads.created_at as date) as created_date,
  leads.modified_at
  {{- custom_field_columns(ref('stg_leads'), 'leads') }}
from leads
left join {{ ref('stg_opportunities') }} as opportunities
  on opportunities.opportunity_id = leads.converted_opportunity_id
