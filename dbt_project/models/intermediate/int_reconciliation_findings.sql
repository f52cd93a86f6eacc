-- Rows valid on their own that disagree across sources. Kept and reported,
-- never quarantined. One row per (finding_type, source, reference_id).
--
--   shipment_without_lane    a shipment between two locations with no lane
--   receipt_not_in_snapshot  a receipt (shipment arrival, PO receipt, production
--                            completion) on or before as_of that the next end-of-day
--                            snapshot at that location (the first snapshot dated on
--                            or after the receipt) cannot account for: on hand there
--                            (0 when the SKU has no row) plus the recorded outflows
--                            from the receipt date to that snapshot (shipped order
--                            lines, departed transfers, POS sales) is less than the
--                            quantity received. Stock cannot vanish between a receipt
--                            and the next count without a recorded outflow.
--   sales_order_without_plan an open sales-order line on a SKU-location the
--                            committed plan has no row for
--   open_line_over_delivered an open sales-order or PO line that has shipped or
--                            received more than was ordered, or an open production
--                            order that has completed more than was planned: the
--                            status says more is to come while the quantities say it
--                            is done; its remainder is taken as nothing, not negative
--   hold_above_on_hand       the count in force at as_of holds more on quality hold
--                            than on hand: available stock (on hand - hold) is
--                            negative, or the WMS reports held stock apart from
--                            on hand and every hold is counted twice
--   arrival_before_departure a shipment whose actual arrival (or, not arrived, its eta)
--                            is dated before it leaves
--   stock_missing_from_count a SKU-location with stock at its latest snapshot that its
--                            location's latest count on or before as_of (a later day)
--                            has no row for: the view still opens from the older row,
--                            which overstates the stock if the SKU has none left
--   delivered_without_date   a sales-order line shipped, a PO line received or a
--                            production order completed by its status, with units
--                            delivered but without the date that says when: the KPIs
--                            that judge it on time (OTIF, fill rate, supplier on-time,
--                            schedule adherence) count it as late, so does the S&OP
--                            feedback's supplier delay, and its cost of goods sold
--                            has no week

-- Each large import CTE is read once (the shipments and the snapshots have one per
-- use): DuckDB materialises a CTE read more than once, and holding copies of those
-- tables in memory ran the 10M network out of its memory budget.

with

run_context as (

    select * from {{ ref('stg_run_context') }}

),

shipments as (

    select * from {{ ref('stg_shipments') }}

),

shipment_arrivals as (

    select * from {{ ref('stg_shipments') }}

),

shipment_departures as (

    select * from {{ ref('stg_shipments') }}

),

shipment_dates as (

    select * from {{ ref('stg_shipments') }}

),

lanes as (

    select * from {{ ref('stg_lanes') }}

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

order_lines as (

    select * from {{ ref('stg_sales_orders') }}

),

po_lines as (

    select * from {{ ref('stg_purchase_orders') }}

),

open_production as (

    select * from {{ ref('stg_production_orders') }}

),

closed_order_lines as (

    select * from {{ ref('stg_sales_orders') }}

),

closed_po_lines as (

    select * from {{ ref('stg_purchase_orders') }}

),

closed_production as (

    select * from {{ ref('stg_production_orders') }}

),

committed_plan as (

    select * from {{ ref('int_committed_plan') }}

),

booked_demand as (

    select * from {{ ref('int_booked_demand') }}

),

available_stock as (

    select * from {{ ref('int_available_stock') }}

),

stock_in_force as (

    select * from {{ ref('int_available_stock') }}

),

shipments_without_lane as (

    select
        'shipment_without_lane' as finding_type,
        'shipments' as source,
        shipments.sku_id,
        shipments.to_location_id as location_id,
        shipments.shipment_id as reference_id,
        shipments.ship_date as event_date,
        shipments.qty,
        {{ dbt.concat([
            "'Shipment '", 'shipments.shipment_id',
            "' moves '", soe.quantity_text('shipments.qty'),
            "' units from '", 'shipments.from_location_id',
            "' to '", 'shipments.to_location_id',
            "' but no lane exists between them.'",
        ]) }} as detail
    from shipments
    left join lanes
        on shipments.from_location_id = lanes.from_location_id
        and shipments.to_location_id = lanes.to_location_id
    where lanes.from_location_id is null

),

-- An arrival (estimated or actual) before the departure: the view takes the dates as they are, so the
-- receiver gets the units before the sender books them out.
arrivals_before_departure as (

    select
        'arrival_before_departure' as finding_type,
        'shipments' as source,
        shipment_dates.sku_id,
        shipment_dates.to_location_id as location_id,
        shipment_dates.shipment_id as reference_id,
        shipment_dates.ship_date as event_date,
        shipment_dates.qty,
        {{ dbt.concat([
            "'Shipment '", 'shipment_dates.shipment_id',
            "' of '", soe.quantity_text('shipment_dates.qty'),
            "' units from '", 'shipment_dates.from_location_id',
            "' to '", 'shipment_dates.to_location_id',
            "' leaves on '", dbt.cast('shipment_dates.ship_date', dbt.type_string()),
            "' but arrives (by its '",
            "case when shipment_dates.actual_arrival_date < shipment_dates.ship_date then 'actual arrival' else 'eta' end",
            "') on '",
            dbt.cast('coalesce(shipment_dates.actual_arrival_date, shipment_dates.eta_date)', dbt.type_string()),
            "'.'",
        ]) }} as detail
    from shipment_dates
    where shipment_dates.actual_arrival_date < shipment_dates.ship_date
        or (shipment_dates.actual_arrival_date is null and shipment_dates.eta_date < shipment_dates.ship_date)

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

    select location_id, count(*) as counts, max(snapshot_date) as latest_snapshot_date
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

),

planned_sku_locations as (

    select distinct sku_id, location_id
    from committed_plan

),

sales_orders_without_plan as (

    select
        'sales_order_without_plan' as finding_type,
        'sales_orders' as source,
        booked_demand.sku_id,
        booked_demand.location_id,
        booked_demand.reference_id,
        booked_demand.due_date as event_date,
        booked_demand.qty,
        {{ dbt.concat([
            "'Open order line '", 'booked_demand.reference_id',
            "' for '", soe.quantity_text('booked_demand.qty'),
            "' units of '", 'booked_demand.sku_id',
            "' at '", 'booked_demand.location_id',
            "' has no committed plan for that SKU-location.'",
        ]) }} as detail
    from booked_demand
    left join planned_sku_locations
        on booked_demand.sku_id = planned_sku_locations.sku_id
        and booked_demand.location_id = planned_sku_locations.location_id
    where booked_demand.demand_kind = 'sales_order'
      and planned_sku_locations.sku_id is null

),

-- Open lines and orders with what they have delivered against what they were for, in one shape.
open_quantities as (

    select
        'sales_orders' as source,
        order_lines.sku_id,
        order_lines.location_id,
        {{ line_reference('order_lines.order_id', 'order_lines.line_no') }} as reference_id,
        order_lines.requested_date as event_date,
        'Order line ' as subject,
        order_lines.status,
        'shipped' as delivered_as,
        order_lines.shipped_qty as delivered_qty,
        order_lines.ordered_qty as due_qty,
        'ordered' as due_as
    from order_lines
    where order_lines.status = 'open'

    union all

    select
        'purchase_orders' as source,
        po_lines.sku_id,
        po_lines.location_id,
        {{ line_reference('po_lines.po_id', 'po_lines.line_no') }} as reference_id,
        po_lines.confirmed_date as event_date,
        'PO line ' as subject,
        po_lines.status,
        'received' as delivered_as,
        po_lines.received_qty as delivered_qty,
        po_lines.ordered_qty as due_qty,
        'ordered' as due_as
    from po_lines
    where po_lines.status = 'open'

    union all

    select
        'production_orders' as source,
        open_production.sku_id,
        open_production.location_id,
        open_production.production_order_id as reference_id,
        open_production.planned_finish_date as event_date,
        'Production order ' as subject,
        open_production.status,
        'completed' as delivered_as,
        open_production.completed_qty as delivered_qty,
        open_production.planned_qty as due_qty,
        'planned' as due_as
    from open_production
    where open_production.status in ('planned', 'released', 'in_progress')

),

open_lines_over_delivered as (

    select
        'open_line_over_delivered' as finding_type,
        open_quantities.source,
        open_quantities.sku_id,
        open_quantities.location_id,
        open_quantities.reference_id,
        open_quantities.event_date,
        open_quantities.delivered_qty - open_quantities.due_qty as qty,
        {{ dbt.concat([
            'open_quantities.subject', 'open_quantities.reference_id',
            "' is '", 'open_quantities.status',
            "' but has '", 'open_quantities.delivered_as',
            "' '", soe.quantity_text('open_quantities.delivered_qty'),
            "' of '", soe.quantity_text('open_quantities.due_qty'),
            "' units '", 'open_quantities.due_as',
            "': nothing more is taken as due.'",
        ]) }} as detail
    from open_quantities
    where open_quantities.delivered_qty > open_quantities.due_qty

),

holds_above_on_hand as (

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

),

stock_missing_from_count as (

    select
        'stock_missing_from_count' as finding_type,
        'inventory_snapshots' as source,
        stock_in_force.sku_id,
        stock_in_force.location_id,
        {{ dbt.concat([
            dbt.cast('stock_in_force.snapshot_date', dbt.type_string()), "':'",
            'stock_in_force.sku_id', "':'", 'stock_in_force.location_id',
        ]) }} as reference_id,
        location_counts.latest_snapshot_date as event_date,
        stock_in_force.on_hand_qty as qty,
        {{ dbt.concat([
            "'The count of '", dbt.cast('location_counts.latest_snapshot_date', dbt.type_string()),
            "' at '", 'stock_in_force.location_id', "' has no row for '", 'stock_in_force.sku_id',
            "': its stock is taken from the count of '", dbt.cast('stock_in_force.snapshot_date', dbt.type_string()),
            "' ('", soe.quantity_text('stock_in_force.on_hand_qty'), "' on hand, '",
            soe.quantity_text('stock_in_force.quality_hold_qty'),
            "' on hold), which overstates it if none is left.'",
        ]) }} as detail
    from stock_in_force
    inner join location_counts
        on stock_in_force.location_id = location_counts.location_id
    where stock_in_force.snapshot_date < location_counts.latest_snapshot_date
      and (stock_in_force.on_hand_qty <> 0 or stock_in_force.quality_hold_qty <> 0)

),

-- Closed by status, undated: what was delivered, the date it was due and the date column that is empty.
closed_quantities as (

    select
        'sales_orders' as source,
        closed_order_lines.sku_id,
        closed_order_lines.location_id,
        {{ line_reference('closed_order_lines.order_id', 'closed_order_lines.line_no') }} as reference_id,
        closed_order_lines.promised_date as event_date,
        'Order line ' as subject,
        closed_order_lines.status,
        closed_order_lines.shipped_qty as delivered_qty,
        'ship_date' as missing_date,
        'OTIF and fill rate count it as late and its cost of goods sold falls in no week' as consequence
    from closed_order_lines
    where closed_order_lines.status = 'shipped'
      and closed_order_lines.ship_date is null
      and closed_order_lines.shipped_qty > 0

    union all

    select
        'purchase_orders' as source,
        closed_po_lines.sku_id,
        closed_po_lines.location_id,
        {{ line_reference('closed_po_lines.po_id', 'closed_po_lines.line_no') }} as reference_id,
        closed_po_lines.promised_date as event_date,
        'PO line ' as subject,
        closed_po_lines.status,
        closed_po_lines.received_qty as delivered_qty,
        'received_date' as missing_date,
        'the supplier on-time rate counts it as late' as consequence
    from closed_po_lines
    where closed_po_lines.status = 'received'
      and closed_po_lines.received_date is null
      and closed_po_lines.received_qty > 0

    union all

    select
        'production_orders' as source,
        closed_production.sku_id,
        closed_production.location_id,
        closed_production.production_order_id as reference_id,
        closed_production.planned_finish_date as event_date,
        'Production order ' as subject,
        closed_production.status,
        closed_production.completed_qty as delivered_qty,
        'actual_finish_date' as missing_date,
        'schedule adherence counts it as not finished' as consequence
    from closed_production
    where closed_production.status = 'completed'
      and closed_production.actual_finish_date is null
      and closed_production.completed_qty > 0

),

delivered_without_date as (

    select
        'delivered_without_date' as finding_type,
        closed_quantities.source,
        closed_quantities.sku_id,
        closed_quantities.location_id,
        closed_quantities.reference_id,
        closed_quantities.event_date,
        closed_quantities.delivered_qty as qty,
        {{ dbt.concat([
            'closed_quantities.subject', 'closed_quantities.reference_id',
            "' is '", 'closed_quantities.status',
            "' ('", soe.quantity_text('closed_quantities.delivered_qty'),
            "' units) but has no '", 'closed_quantities.missing_date',
            "': '", 'closed_quantities.consequence', "'.'",
        ]) }} as detail
    from closed_quantities

),

findings as (

    select * from shipments_without_lane
    union all
    select * from receipts_not_in_snapshot
    union all
    select * from sales_orders_without_plan
    union all
    select * from open_lines_over_delivered
    union all
    select * from holds_above_on_hand
    union all
    select * from stock_missing_from_count
    union all
    select * from arrivals_before_departure
    union all
    select * from delivered_without_date

)

select
    findings.finding_type,
    findings.source,
    findings.sku_id,
    findings.location_id,
    findings.reference_id,
    findings.event_date,
    findings.qty,
    findings.detail,
    run_context.as_of
from findings
cross join run_context
