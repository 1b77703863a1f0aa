-- One row per company, with its primary contact, head count and opportunity figures.
with people as (
  select company_id, count(*) as people
  from {{ ref('stg_people') }}
  where company_id is not null
  group by company_id
),

opportunities as (
  select
    company_id,
    count(case when status = 'Open' then 1 end) as open_opportunities,
    sum(case when status = 'Open' then coalesce(monetary_value, 0) else 0 end) as open_value,
    count(case when status = 'Won' then 1 end) as won_opportunities,
    sum(case when status = 'Won' then coalesce(monetary_value, 0) else 0 end) as won_value
  from {{ ref('stg_opportunities') }}
  where company_id is not null
  group by company_id
)

select
  companies.company_id,
  companies.company_name,
  companies.email_domain,
  companies.owner_id,
  companies.owner_name,
  companies.contact_type_id,
  companies.contact_type_name,
  companies.primary_contact_id,
  contacts.person_name as primary_contact_name,
  companies.city,
  companies.state,
  companies.country,
  companies.interaction_count,
  coalesce(people.people, 0) as people,
  coalesce(opportunities.open_opportunities, 0) as open_opportunities,
  coalesce(opportunities.open_value, 0) as open_value,
  coalesce(opportunities.won_opportunities, 0) as won_opportunities,
  coalesce(opportunities.won_value, 0) as won_value,
  companies.created_at,
  companies.modified_at
  {{- custom_field_columns(ref('stg_companies'), 'companies') }}
from {{ ref('stg_companies') }} as companies
left join {{ ref('stg_people') }} as contacts on contacts.person_id = companies.primary_contact_id
left join people on people.company_id = companies.company_id
left join opportunities on opportunities.company_id = companies.company_id
