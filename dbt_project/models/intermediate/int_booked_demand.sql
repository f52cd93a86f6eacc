-- A table, not a view: the spine, the weekly flows, the reconciliation, their tests and the
-- Python stages all read it, and a view would recompute it for each of them.
{{ config(materialized='table') }}

-- Booked demand the projection draws down, one row per open item:
--   sales_order:  open sales-order lines, ordered - shipped, by requested_date
--   transfer_out: shipments not yet departed (ship_date after as_of), qty,
--                 by ship_date at from_location_id
-- Past-due lines (due on or before as_of) count in full in week 0.

with

week_zero as (

    select as_of, week_start
    from {{ ref('int_run_weeks') }}
    where week_index = 0

),

sales_orders as (

    select * from {{ ref('stg_sales_orders') }}

),

shipments as (

    select * from {{ ref('stg_shipments') }}

),

open_sales_orders as (

    select
        'sales_order' as demand_kind,
        {{ line_reference('sales_orders.order_id', 'sales_orders.line_no') }} as reference_id,
        sales_orders.sku_id,
        sales_orders.location_id,
        cast(null as {{ dbt.type_string() }}) as to_location_id,
        sales_orders.customer_id,
        sales_orders.requested_date as due_date,
        sales_orders.promised_date,
        sales_orders.ordered_qty - sales_orders.shipped_qty as qty
    from sales_orders
    where sales_orders.status = 'open'

),

transfers_not_departed as (

    select
        'transfer_out' as demand_kind,
        shipments.shipment_id as reference_id,
        shipments.sku_id,
        shipments.from_location_id as location_id,
        shipments.to_location_id,
        cast(null as {{ dbt.type_string() }}) as customer_id,
        shipments.ship_date as due_date,
        shipments.ship_date as promised_date,
        shipments.qty
    from shipments
    cross join week_zero
    where shipments.actual_arrival_date is null
      and shipments.ship_date > week_zero.as_of

),

booked as (

    select * from open_sales_orders
    union all
    select * from transfers_not_departed

),

final as (

    select
        booked.demand_kind,
        booked.reference_id,
        booked.sku_id,
        booked.location_id,
        booked.to_location_id,
        booked.customer_id,
        booked.due_date,
        booked.promised_date,
        {{ soe.horizon_week_index('booked.due_date', 'week_zero.as_of', 'week_zero.week_start') }}
            as week_index,
        booked.qty,
        booked.due_date <= week_zero.as_of as is_past_due,
        week_zero.as_of
    from booked
    cross join week_zero
    where booked.qty > 0

)

select
    demand_kind,
    reference_id,
    sku_id,
    location_id,
    to_location_id,
    customer_id,
    due_date,
    promised_date,
    {{ soe.add_days(soe.iso_week_start('as_of'), '7 * week_index') }} as week_start,
    week_index,
    qty,
    is_past_due,
    as_of
from final
