-- One row per activity, with its type, the user who logged it, the record it is on (parent)
-- and its day and week. System activities are Copper's own logs (stage and status changes...).
with activities as (
  select * from {{ ref('stg_activities') }}
)

select
  activities.activity_id,
  activities.activity_at,
  cast(activities.activity_at as date) as activity_date,
  {{ period_start('week', 'activities.activity_at') }} as activity_week,
  activities.activity_at > {{ utc_now() }} as is_scheduled,
  activities.activity_type_id,
  activities.activity_category,
  activities.activity_type_name,
  activities.activity_category = 'system' as is_system,
  activities.counts_as_interaction,
  activities.user_id,
  activities.user_name,
  activities.parent_type,
  activities.parent_id,
  coalesce(
    people.person_name,
    companies.company_name,
    leads.lead_name,
    opportunities.opportunity_name,
    projects.project_name,
    tasks.task_name
  ) as parent_name,
  activities.details,
  activities.created_at,
  activities.modified_at
from activities
left join {{ ref('stg_people') }} as people
  on activities.parent_type = 'person' and people.person_id = activities.parent_id
left join {{ ref('stg_companies') }} as companies
  on activities.parent_type = 'company' and companies.company_id = activities.parent_id
left join {{ ref('stg_leads') }} as leads
  on activities.parent_type = 'lead' and leads.lead_id = activities.parent_id
left join {{ ref('stg_opportunities') }} as opportunities
  on activities.parent_type = 'opportunity'
  and opportunities.opportunity_id = activities.parent_id
left join {{ ref('stg_projects') }} as projects
  on activities.parent_type = 'project' and projects.project_id = activities.parent_id
left join {{ ref('stg_tasks') }} as tasks
  on activities.parent_type = 'task' and tasks.task_id = activities.parent_id
