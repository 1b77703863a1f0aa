{{ copper_select('lead_statuses', [
    ('id', 'lead_status_id', 'id'),
    ('name', 'lead_status_name', 'text'),
    ('order', 'sort_order', 'int'),
    ('is_default', 'is_default', 'bool'),
]) }}
