{{ copper_select('customer_sources', [
    ('id', 'customer_source_id', 'id'),
    ('name', 'customer_source_name', 'text'),
]) }}
