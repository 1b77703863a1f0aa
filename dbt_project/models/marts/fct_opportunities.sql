-- One row per opportunity. closed_date (Won, Lost, Abandoned only) is Copper's close_date when
-- it parses, else the date the opportunity was last modified (closed_date_source says which).
with opportunities as (
  select
    *,
    status in ('Won', 'Lost', 'Abandoned') as is_closed,
    cast(created_at as date) as created_date
  from {{ ref('stg_opportunities') }}
),

dated as (
  select
    *,
    case when is_closed then coalesce(close_date, cast(modified_at as date)) end as closed_date,
    case
      when is_closed and close_date is not null then 'close_date'
      when is_closed then 'date_modified'
    end as closed_date_source
  from opportunities
)

select
  dated.opportunity_id,
  dated.opportunity_name,
  dated.status,
  dated.status = 'Open' as is_open,
  dated.status = 'Won' as is_won,
  dated.status = 'Lost' as is_lost,
  dated.status = 'Abandoned' as is_abandoned,
  dated.is_closed,
  dated.monetary_value,
  dated.win_probability,
  cast(dated.monetary_value * dated.win_probability / 100 as decimal(38, 9)) as weighted_value,
  dated.pipeline_id,
  dated.pipeline_name,
  dated.pipeline_stage_id,
  dated.stage_name,
  dated.stage_order,
  dated.owner_id,
  dated.owner_name,
  dated.company_id,
  coalesce(companies.company_name, dated.company_name) as company_name,
  dated.primary_contact_id,
  contacts.person_name as primary_contact_name,
  dated.customer_source_id,
  dated.customer_source_name,
  dated.loss_reason_id,
  dated.loss_reason_name,
  dated.priority,
  dated.interaction_count,
  dated.created_at,
  dated.created_date,
  dated.close_date,
  dated.closed_date,
  dated.closed_date_source,
  {{ dbt.datediff(
      'dated.created_date',
      'coalesce(dated.closed_date, cast(' ~ utc_now() ~ ' as date))',
      'day') }} as days_open,
  dated.stage_changed_at,
  dated.last_contacted_at,
  dated.modified_at
  {{- custom_field_columns(ref('stg_opportunities'), 'dated') }}
from dated
left join {{ ref('stg_companies') }} as companies on companies.company_id = dated.company_id
left join {{ ref('stg_people') }} as contacts on contacts.person_id = dated.primary_contact_id
