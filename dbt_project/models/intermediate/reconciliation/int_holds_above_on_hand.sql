-- hold_above_on_hand: the count in force at as_of holds more on quality hold than on hand:
-- available stock (on hand - hold) is negative, or the WMS reports held stock apart from on hand
-- and every hold is counted twice.

with

available_stock as (

    select * from {{ ref('int_available_stock') }}

)

select
    'hold_above_on_hand' as finding_type,
    'inventory_snapshots' as source,
    available_stock.sku_id,
    available_stock.location_id,
    {{ dbt.concat([
        dbt.cast('available_stock.snapshot_date', dbt.type_string()), "':'",
        'available_stock.sku_id', "':'", 'available_stock.location_id',
    ]) }} as reference_id,
    available_stock.snapshot_date as event_date,
    available_stock.quality_hold_qty - available_stock.on_hand_qty as qty,
    {{ dbt.concat([
        "'The count of '", dbt.cast('available_stock.snapshot_date', dbt.type_string()),
        "' holds '", soe.quantity_text('available_stock.quality_hold_qty'),
        "' units of '", 'available_stock.sku_id',
        "' on quality hold at '", 'available_stock.location_id',
        "' but only '", soe.quantity_text('available_stock.on_hand_qty'),
        "' on hand: available stock is taken as '", soe.quantity_text('available_stock.available_qty'),
        "'.'",
    ]) }} as detail
from available_stock
where available_stock.quality_hold_qty > available_stock.on_hand_qty
