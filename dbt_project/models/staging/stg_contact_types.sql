{{ copper_select('contact_types', [
    ('id', 'contact_type_id', 'id'),
    ('name', 'contact_type_name', 'text'),
]) }}
