with people as (
  {{ copper_select('people', [
      ('id', 'person_id', 'id'),
      ('name', 'person_name', 'text'),
      ('first_name', 'first_name', 'text'),
      ('last_name', 'last_name', 'text'),
      ('title', 'title', 'text'),
      ('company_id', 'company_id', 'id'),
      ('company_name', 'company_name', 'text'),
      ('assignee_id', 'owner_id', 'id'),
      ('contact_type_id', 'contact_type_id', 'id'),
      ('interaction_count', 'interaction_count', 'int'),
      ('details', 'details', 'text'),
      ('address__street', 'street', 'text'),
      ('address__city', 'city', 'text'),
      ('address__state', 'state', 'text'),
      ('address__postal_code', 'postal_code', 'text'),
      ('address__country', 'country', 'text'),
      ('date_last_contacted', 'last_contacted_at', 'timestamp'),
      ('date_created', 'created_at', 'timestamp'),
      ('date_modified', 'modified_at', 'timestamp'),
      ('_dlt_id', 'dlt_id', 'text'),
  ], custom_fields=true, live=true) }}
),

emails as (
  {{ copper_select('people__emails', [
      ('email', 'email', 'text'),
      ('_dlt_parent_id', 'dlt_parent_id', 'text'),
      ('_dlt_list_idx', 'list_index', 'int'),
  ]) }}
),

phone_numbers as (
  {{ copper_select('people__phone_numbers', [
      ('number', 'phone_number', 'text'),
      ('_dlt_parent_id', 'dlt_parent_id', 'text'),
      ('_dlt_list_idx', 'list_index', 'int'),
  ]) }}
)

select
  people.person_id,
  people.person_name,
  people.first_name,
  people.last_name,
  people.title,
  emails.email,
  phone_numbers.phone_number,
  people.company_id,
  people.company_name,
  people.owner_id,
  owners.user_name as owner_name,
  people.contact_type_id,
  contact_types.contact_type_name,
  people.interaction_count,
  people.details,
  people.street,
  people.city,
  people.state,
  people.postal_code,
  people.country,
  people.last_contacted_at,
  people.created_at,
  people.modified_at
  {{- copper_custom_fields('people', 'people') }}
from people
-- the first email and phone number in Copper's order; child rows are reached only from
-- live people (a soft-deleted person keeps its child rows, which are never joined in)
left join emails on emails.dlt_parent_id = people.dlt_id and emails.list_index = 0
left join phone_numbers
  on phone_numbers.dlt_parent_id = people.dlt_id and phone_numbers.list_index = 0
left join {{ ref('stg_users') }} as owners on owners.user_id = people.owner_id
left join {{ ref('stg_contact_types') }} as contact_types
  on contact_types.contact_type_id = people.contact_type_id
