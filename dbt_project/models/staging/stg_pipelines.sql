{{ copper_select('pipelines', [
    ('id', 'pipeline_id', 'id'),
    ('name', 'pipeline_name', 'text'),
    ('type', 'pipeline_type', 'text'),
    ('is_revenue', 'is_revenue', 'bool'),
]) }}
