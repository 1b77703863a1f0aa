with companies as (
  {{ copper_select('companies', [
      ('id', 'company_id', 'id'),
      ('name', 'company_name', 'text'),
      ('email_domain', 'email_domain', 'text'),
      ('assignee_id', 'owner_id', 'id'),
      ('contact_type_id', 'contact_type_id', 'id'),
      ('primary_contact_id', 'primary_contact_id', 'id'),
      ('interaction_count', 'interaction_count', 'int'),
      ('details', 'details', 'text'),
      ('address__street', 'street', 'text'),
      ('address__city', 'city', 'text'),
      ('address__state', 'state', 'text'),
      ('address__postal_code', 'postal_code', 'text'),
      ('address__country', 'country', 'text'),
      ('date_created', 'created_at', 'timestamp'),
      ('date_modified', 'modified_at', 'timestamp'),
  ], custom_fields=true, live=true) }}
)

select
  companies.company_id,
  companies.company_name,
  companies.email_domain,
  companies.owner_id,
  owners.user_name as owner_name,
  companies.contact_type_id,
  contact_types.contact_type_name,
  companies.primary_contact_id,
  companies.interaction_count,
  companies.details,
  companies.street,
  companies.city,
  companies.state,
  companies.postal_code,
  companies.country,
  companies.created_at,
  companies.modified_at
  {{- copper_custom_fields('companies', 'companies') }}
from companies
left join {{ ref('stg_users') }} as owners on owners.user_id = companies.owner_id
left join {{ ref('stg_contact_types') }} as contact_types
  on contact_types.contact_type_id = companies.contact_type_id
