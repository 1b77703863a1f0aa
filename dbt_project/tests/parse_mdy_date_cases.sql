-- parse_mdy_date (Copper's close_date "M/D/YYYY") on awkward input: returns the failing cases
with cases as (
  select cast('1/5/2024' as {{ dbt.type_string() }}) as raw, cast('2024-01-05' as date) as expected
  union all select '12/31/1999', cast('1999-12-31' as date)
  union all select '02/09/2025', cast('2025-02-09' as date)
  union all select '2/29/2024', cast('2024-02-29' as date)
  union all select '2/29/2000', cast('2000-02-29' as date)
  union all select '2/29/2023', null
  union all select '2/29/1900', null
  union all select '2/30/2024', null
  union all select '4/31/2024', null
  union all select '13/1/2024', null
  union all select '0/1/2024', null
  union all select '1/0/2024', null
  union all select '1/5/24', null
  union all select '2024-01-05', null
  union all select ' 1/5/2024', null
  union all select 'soon', null
  union all select 'a/b/cdef', null
  union all select '', null
  union all select null, null
)

select raw, expected, {{ parse_mdy_date('raw') }} as parsed
from cases
where {{ parse_mdy_date('raw') }} is distinct from expected
  or ({{ parse_mdy_date('raw') }} is null and expected is not null)
