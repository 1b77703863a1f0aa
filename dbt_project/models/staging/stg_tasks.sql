with tasks as (
  {{ copper_select('tasks', [
      ('id', 'task_id', 'id'),
      ('name', 'task_name', 'text'),
      ('status', 'status', 'text'),
      ('priority', 'priority', 'text'),
      ('assignee_id', 'owner_id', 'id'),
      ('related_resource__id', 'related_id', 'id'),
      ('related_resource__type', 'related_type', 'text'),
      ('custom_activity_type_id', 'activity_type_id', 'id'),
      ('details', 'details', 'text'),
      ('due_date', 'due_at', 'timestamp'),
      ('reminder_date', 'reminder_at', 'timestamp'),
      ('completed_date', 'completed_at', 'timestamp'),
      ('date_created', 'created_at', 'timestamp'),
      ('date_modified', 'modified_at', 'timestamp'),
  ], custom_fields=true, live=true) }}
)

select
  tasks.task_id,
  tasks.task_name,
  tasks.status,
  tasks.priority,
  tasks.owner_id,
  owners.user_name as owner_name,
  tasks.related_id,
  tasks.related_type,
  tasks.activity_type_id,
  tasks.details,
  tasks.due_at,
  tasks.reminder_at,
  tasks.completed_at,
  tasks.created_at,
  tasks.modified_at
  {{- copper_custom_fields('tasks', 'tasks') }}
from tasks
left join {{ ref('stg_users') }} as owners on owners.user_id = tasks.owner_id
