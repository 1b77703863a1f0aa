-- Won and lost opportunities per pipeline, owner and month of closing (closed_date, see
-- fct_opportunities). win_rate = won / (won + lost); abandoned ones are counted apart.
select
  pipeline_id,
  pipeline_name,
  owner_id,
  owner_name,
  {{ period_start('month', 'closed_date') }} as close_month,
  count(case when is_won then 1 end) as won,
  count(case when is_lost then 1 end) as lost,
  count(case when is_abandoned then 1 end) as abandoned,
  sum(case when is_won then coalesce(monetary_value, 0) else 0 end) as won_value,
  sum(case when is_lost then coalesce(monetary_value, 0) else 0 end) as lost_value,
  cast(count(case when is_won then 1 end) as double precision)
    / nullif(count(case when is_won or is_lost then 1 end), 0) as win_rate
from {{ ref('fct_opportunities') }}
where is_closed
group by
  pipeline_id,
  pipeline_name,
  owner_id,
  owner_name,
  {{ period_start('month', 'closed_date') }}
