with projects as (
  {{ copper_select('projects', [
      ('id', 'project_id', 'id'),
      ('name', 'project_name', 'text'),
      ('status', 'status', 'text'),
      ('assignee_id', 'owner_id', 'id'),
      ('related_resource__id', 'related_id', 'id'),
      ('related_resource__type', 'related_type', 'text'),
      ('details', 'details', 'text'),
      ('date_created', 'created_at', 'timestamp'),
      ('date_modified', 'modified_at', 'timestamp'),
  ], custom_fields=true, live=true) }}
)

select
  projects.project_id,
  projects.project_name,
  projects.status,
  projects.owner_id,
  owners.user_name as owner_name,
  projects.related_id,
  projects.related_type,
  projects.details,
  projects.created_at,
  projects.modified_at
  {{- copper_custom_fields('projects', 'projects') }}
from projects
left join {{ ref('stg_users') }} as owners on owners.user_id = projects.owner_id
