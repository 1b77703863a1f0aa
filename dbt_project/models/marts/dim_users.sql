-- One row per Copper user, with the groups they belong to and what they own.
with opportunities as (
  select
    owner_id,
    count(case when status = 'Open' then 1 end) as open_opportunities,
    sum(case when status = 'Open' then coalesce(monetary_value, 0) else 0 end) as open_value,
    count(case when status = 'Won' then 1 end) as won_opportunities,
    sum(case when status = 'Won' then coalesce(monetary_value, 0) else 0 end) as won_value
  from {{ ref('stg_opportunities') }}
  where owner_id is not null
  group by owner_id
),

leads as (
  select owner_id, count(*) as leads
  from {{ ref('stg_leads') }}
  where owner_id is not null
  group by owner_id
)

select
  users.user_id,
  users.user_name,
  users.email,
  users.group_names,
  coalesce(leads.leads, 0) as leads,
  coalesce(opportunities.open_opportunities, 0) as open_opportunities,
  coalesce(opportunities.open_value, 0) as open_value,
  coalesce(opportunities.won_opportunities, 0) as won_opportunities,
  coalesce(opportunities.won_value, 0) as won_value
from {{ ref('stg_users') }} as users
left join opportunities on opportunities.owner_id = users.user_id
left join leads on leads.owner_id = users.user_id
