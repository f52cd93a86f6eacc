-- receipt_not_in_snapshot: a receipt (shipment arrival, PO receipt, production completion) on or
-- before as_of that the next end-of-day snapshot at that location (the first snapshot dated on or
-- after the receipt) cannot account for: on hand there (0 when the SKU has no row) plus the
-- recorded outflows from the receipt date to that snapshot (shipped order lines, departed
-- transfers, POS sales) is less than the quantity received. Stock cannot vanish between a receipt
-- and the next count without a recorded outflow.
--
-- Each large import CTE is read once (the shipments and the snapshots have one per use): DuckDB
-- materialises a CTE read more than once, and holding copies of those tables in memory ran the
-- 10M network out of its memory budget.

with

run_context as (

    select * from {{ ref('stg_run_context') }}

),

shipment_arrivals as (

    select * from {{ ref('stg_shipments') }}

),

shipment_departures as (

    select * from {{ ref('stg_shipments') }}

),

purchase_orders as (

    select * from {{ ref('stg_purchase_orders') }}

),

production_orders as (

    select * from {{ ref('stg_production_orders') }}

),

snapshots as (

    select * from {{ ref('stg_inventory_snapshots') }}

),

snapshot_days as (

    select * from {{ ref('stg_inventory_snapshots') }}

),

stock_counts as (

    select * from {{ ref('stg_inventory_snapshots') }}

),

sales_orders as (

    select * from {{ ref('stg_sales_orders') }}

),

pos_sales as (

    select * from {{ ref('stg_pos_sales') }}

),

receipts as (

    select
        'shipments' as source,
        shipment_arrivals.shipment_id as reference_id,
        shipment_arrivals.sku_id,
        shipment_arrivals.to_location_id as location_id,
        shipment_arrivals.actual_arrival_date as receipt_date,
        shipment_arrivals.qty
    from shipment_arrivals
    where shipment_arrivals.actual_arrival_date is not null

    union all

    select
        'purchase_orders' as source,
        {{ line_reference('purchase_orders.po_id', 'purchase_orders.line_no') }} as reference_id,
        purchase_orders.sku_id,
        purchase_orders.location_id,
        purchase_orders.received_date as receipt_date,
        purchase_orders.received_qty as qty
    from purchase_orders
    where purchase_orders.received_date is not null
      and purchase_orders.received_qty > 0

    union all

    select
        'production_orders' as source,
        production_orders.production_order_id as reference_id,
        production_orders.sku_id,
        production_orders.location_id,
        production_orders.actual_finish_date as receipt_date,
        production_orders.completed_qty as qty
    from production_orders
    where production_orders.actual_finish_date is not null
      and production_orders.completed_qty > 0

),

receipts_until_as_of as (

    select receipts.*
    from receipts
    cross join run_context
    where receipts.receipt_date <= run_context.as_of

),

location_snapshot_dates as (

    -- a location was counted on a day when its snapshot has any row that day
    select distinct snapshot_days.location_id, snapshot_days.snapshot_date
    from snapshot_days
    cross join run_context
    where snapshot_days.snapshot_date <= run_context.as_of

),

snapshot_periods as (

    -- each count of a location with the one before it: a receipt dated after the
    -- previous count and on or before this one is first counted by this one
    select
        location_id,
        snapshot_date,
        lag(snapshot_date) over (partition by location_id order by snapshot_date) as previous_snapshot_date
    from location_snapshot_dates

),

location_counts as (

    select location_id, count(*) as counts
    from location_snapshot_dates
    group by location_id

),

sku_location_lowest_stock as (

    select
        stock_counts.sku_id,
        stock_counts.location_id,
        min(stock_counts.on_hand_qty) as lowest_on_hand_qty,
        count(*) as counts
    from stock_counts
    cross join run_context
    where stock_counts.snapshot_date <= run_context.as_of
    group by stock_counts.sku_id, stock_counts.location_id

),

receipts_to_check as (

    -- A receipt no larger than the least the SKU ever had on hand at a location whose every count
    -- lists it is held by whichever count comes next: only the others (10M network: 3% of 12.5M)
    -- are matched with their next count's row, a join with every snapshot row.
    select receipts_until_as_of.*
    from receipts_until_as_of
    left join sku_location_lowest_stock
        on receipts_until_as_of.sku_id = sku_location_lowest_stock.sku_id
        and receipts_until_as_of.location_id = sku_location_lowest_stock.location_id
    left join location_counts
        on receipts_until_as_of.location_id = location_counts.location_id
    where sku_location_lowest_stock.counts is null
        or sku_location_lowest_stock.counts < location_counts.counts
        or receipts_until_as_of.qty > sku_location_lowest_stock.lowest_on_hand_qty

),

receipt_next_snapshot as (

    -- one period matches each receipt: a join, no grouping of the receipts
    select
        receipts_to_check.source,
        receipts_to_check.reference_id,
        receipts_to_check.sku_id,
        receipts_to_check.location_id,
        receipts_to_check.receipt_date,
        receipts_to_check.qty,
        snapshot_periods.snapshot_date as next_snapshot_date
    from receipts_to_check
    inner join snapshot_periods
        on receipts_to_check.location_id = snapshot_periods.location_id
        and receipts_to_check.receipt_date <= snapshot_periods.snapshot_date
        and receipts_to_check.receipt_date > coalesce(
            snapshot_periods.previous_snapshot_date,
            {{ dbt.dateadd('day', -1, 'receipts_to_check.receipt_date') }}
        )

),

unexplained_by_stock as (

    -- Outflows are never negative, so only a receipt larger than what the next snapshot
    -- holds of the SKU (no row: nothing) can be a finding: only these few need their
    -- outflows summed (summing them for every receipt joined each with every outflow of
    -- its SKU-location in between).
    select
        receipt_next_snapshot.*,
        snapshots.sku_id as snapshot_sku_id,
        snapshots.on_hand_qty
    from receipt_next_snapshot
    left join snapshots
        on receipt_next_snapshot.sku_id = snapshots.sku_id
        and receipt_next_snapshot.location_id = snapshots.location_id
        and receipt_next_snapshot.next_snapshot_date = snapshots.snapshot_date
    where coalesce(snapshots.on_hand_qty, 0) < receipt_next_snapshot.qty

),

outflows as (

    -- whatever its status: a line shipped in part and its remainder cancelled shipped those units
    select sku_id, location_id, ship_date as outflow_date, shipped_qty as qty
    from sales_orders
    where ship_date is not null and shipped_qty > 0

    union all

    select sku_id, from_location_id as location_id, ship_date as outflow_date, qty
    from shipment_departures

    union all

    select sku_id, location_id, sale_date as outflow_date, qty
    from pos_sales

),

receipt_outflows as (

    select
        unexplained_by_stock.source,
        unexplained_by_stock.reference_id,
        sum(outflows.qty) as outflow_qty
    from unexplained_by_stock
    inner join outflows
        on unexplained_by_stock.sku_id = outflows.sku_id
        and unexplained_by_stock.location_id = outflows.location_id
        and outflows.outflow_date >= unexplained_by_stock.receipt_date
        and outflows.outflow_date <= unexplained_by_stock.next_snapshot_date
    group by unexplained_by_stock.source, unexplained_by_stock.reference_id

),

receipts_not_in_snapshot as (

    select
        'receipt_not_in_snapshot' as finding_type,
        unexplained_by_stock.source,
        unexplained_by_stock.sku_id,
        unexplained_by_stock.location_id,
        unexplained_by_stock.reference_id,
        unexplained_by_stock.receipt_date as event_date,
        unexplained_by_stock.qty,
        {{ dbt.concat([
            "'Received '", soe.quantity_text('unexplained_by_stock.qty'),
            "' units on '", dbt.cast('unexplained_by_stock.receipt_date', dbt.type_string()),
            "' but the snapshot of '", dbt.cast('unexplained_by_stock.next_snapshot_date', dbt.type_string()),
            "case when unexplained_by_stock.snapshot_sku_id is null then ' has no stock row for the SKU'"
                ~ " else " ~ dbt.concat(["' shows only '", soe.quantity_text('unexplained_by_stock.on_hand_qty'), "' on hand'"])
                ~ " end",
            "' and only '", soe.quantity_text('coalesce(receipt_outflows.outflow_qty, 0)'),
            "' units left in between.'",
        ]) }} as detail
    from unexplained_by_stock
    left join receipt_outflows
        on unexplained_by_stock.source = receipt_outflows.source
        and unexplained_by_stock.reference_id = receipt_outflows.reference_id
    where coalesce(unexplained_by_stock.on_hand_qty, 0) + coalesce(receipt_outflows.outflow_qty, 0)
        < unexplained_by_stock.qty

)

select * from receipts_not_in_snapshot
