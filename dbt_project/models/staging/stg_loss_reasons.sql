{{ copper_select('loss_reasons', [
    ('id', 'loss_reason_id', 'id'),
    ('name', 'loss_reason_name', 'text'),
]) }}
