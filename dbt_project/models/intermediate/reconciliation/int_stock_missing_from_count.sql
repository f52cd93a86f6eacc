-- stock_missing_from_count: a SKU-location with stock at its latest snapshot that its location's
-- latest count on or before as_of (a later day) has no row for: the view still opens from the
-- older row, which overstates the stock if the SKU has none left.

with

run_context as (

    select * from {{ ref('stg_run_context') }}

),

snapshots as (

    select * from {{ ref('stg_inventory_snapshots') }}

),

stock_in_force as (

    select * from {{ ref('int_available_stock') }}

),

latest_location_counts as (

    -- a location was counted on a day when its snapshot has any row that day
    select snapshots.location_id, max(snapshots.snapshot_date) as latest_snapshot_date
    from snapshots
    cross join run_context
    where snapshots.snapshot_date <= run_context.as_of
    group by snapshots.location_id

)

select
    'stock_missing_from_count' as finding_type,
    'inventory_snapshots' as source,
    stock_in_force.sku_id,
    stock_in_force.location_id,
    {{ dbt.concat([
        dbt.cast('stock_in_force.snapshot_date', dbt.type_string()), "':'",
        'stock_in_force.sku_id', "':'", 'stock_in_force.location_id',
    ]) }} as reference_id,
    latest_location_counts.latest_snapshot_date as event_date,
    stock_in_force.on_hand_qty as qty,
    {{ dbt.concat([
        "'The count of '", dbt.cast('latest_location_counts.latest_snapshot_date', dbt.type_string()),
        "' at '", 'stock_in_force.location_id', "' has no row for '", 'stock_in_force.sku_id',
        "': its stock is taken from the count of '", dbt.cast('stock_in_force.snapshot_date', dbt.type_string()),
        "' ('", soe.quantity_text('stock_in_force.on_hand_qty'), "' on hand, '",
        soe.quantity_text('stock_in_force.quality_hold_qty'),
        "' on hold), which overstates it if none is left.'",
    ]) }} as detail
from stock_in_force
inner join latest_location_counts
    on stock_in_force.location_id = latest_location_counts.location_id
where stock_in_force.snapshot_date < latest_location_counts.latest_snapshot_date
  and (stock_in_force.on_hand_qty <> 0 or stock_in_force.quality_hold_qty <> 0)
