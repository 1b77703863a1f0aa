-- One row per record deleted in Copper (and not back since): its latest logged deletion, when
-- and how it was detected, and what the warehouse knew of the record (name, owner, dates; none
-- with hard deletes, whose rows are gone). Count deletions per day or week with detected_date or
-- detected_week (Monday, UTC). detected_at is when the pipeline noticed, not when the record
-- was deleted in Copper, which Copper does not say: at most a run (or a reconciliation
-- interval) later.
with latest as (
  select
    *,
    count(*) over (partition by entity, record_id) as times_logged,
    row_number() over (
      partition by entity, record_id order by load_id desc, detected_at desc, deletion_id
    ) as recency
  from {{ ref('stg_deletions') }}
)

select
  {{ dbt.concat(['entity', "':'", dbt.cast('record_id', dbt.type_string())]) }}
    as deleted_record_key,
  entity,
  record_type,
  record_id,
  record_name,
  owner_id,
  detected_at,
  cast(detected_at as date) as detected_date,
  {{ period_start('week', 'detected_at') }} as detected_week,
  detected_by,
  load_id as detected_in_load_id,
  is_row_kept,
  record_created_at,
  record_modified_at as last_modified_at,
  cast(record_modified_at as date) as last_modified_date,
  times_logged
from latest
where recency = 1 and not is_restored
