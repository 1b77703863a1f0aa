-- Days from creation to closing of won and lost opportunities, per pipeline, outcome and month
-- of closing.
select
  pipeline_id,
  pipeline_name,
  status as outcome,
  {{ period_start('month', 'closed_date') }} as close_month,
  count(*) as opportunities,
  avg(days_open) as avg_days_to_close,
  percentile_cont(0.5) within group (order by days_open) as median_days_to_close,
  min(days_open) as min_days_to_close,
  max(days_open) as max_days_to_close
from {{ ref('fct_opportunities') }}
where is_won or is_lost
group by
  pipeline_id,
  pipeline_name,
  status,
  {{ period_start('month', 'closed_date') }}
