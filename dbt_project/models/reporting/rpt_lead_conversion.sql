-- Leads per customer source and month created: how many were converted, how many of those
-- into an opportunity, and how many of those opportunities were won.
select
  customer_source_id,
  customer_source_name,
  {{ period_start('month', 'created_at') }} as created_month,
  count(*) as leads,
  count(case when is_converted then 1 end) as converted,
  count(case when is_converted and converted_opportunity_id is not null then 1 end)
    as converted_to_opportunity,
  count(case when converted_opportunity_status = 'Won' then 1 end) as converted_and_won,
  cast(count(case when is_converted then 1 end) as double precision) / count(*)
    as conversion_rate,
  avg(days_to_convert) as avg_days_to_convert
from {{ ref('fct_leads') }}
group by
  customer_source_id,
  customer_source_name,
  {{ period_start('month', 'created_at') }}
