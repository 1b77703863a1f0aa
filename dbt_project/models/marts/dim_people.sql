-- One row per person (contact), with the company's current name and opportunity counts.
with opportunities as (
  select
    primary_contact_id,
    count(*) as opportunities,
    count(case when status = 'Open' then 1 end) as open_opportunities
  from {{ ref('stg_opportunities') }}
  where primary_contact_id is not null
  group by primary_contact_id
)

select
  people.person_id,
  people.person_name,
  people.first_name,
  people.last_name,
  people.title,
  people.email,
  people.phone_number,
  people.company_id,
  coalesce(companies.company_name, people.company_name) as company_name,
  people.owner_id,
  people.owner_name,
  people.contact_type_id,
  people.contact_type_name,
  people.city,
  people.state,
  people.country,
  people.interaction_count,
  coalesce(opportunities.opportunities, 0) as opportunities_as_primary_contact,
  coalesce(opportunities.open_opportunities, 0) as open_opportunities_as_primary_contact,
  people.last_contacted_at,
  people.created_at,
  people.modified_at
  {{- custom_field_columns(ref('stg_people'), 'people') }}
from {{ ref('stg_people') }} as people
left join {{ ref('stg_companies') }} as companies on companies.company_id = people.company_id
left join opportunities on opportunities.primary_contact_id = people.person_id
