-- A table, not a view: the spine, the weekly flows, the reconciliation, their tests and the
-- Python stages all read it, and a view would recompute it for each of them.
{{ config(materialized='table') }}

-- One row per open supply item into a location, with its remaining qty:
--   purchase_order: PO lines with status open, ordered - received, by confirmed_date
--   production:     production orders planned/released/in_progress, planned - completed,
--                   by planned_finish_date at the plant
--   transfer:       shipments not yet arrived (departed or not), qty, by eta_date
--                   at to_location_id
-- Anything due on or before as_of is late and lands in week 0.

with

week_zero as (

    select as_of, week_start, horizon_weeks
    from {{ ref('int_run_weeks') }}
    where week_index = 0

),

purchase_orders as (

    select * from {{ ref('stg_purchase_orders') }}

),

production_orders as (

    select * from {{ ref('stg_production_orders') }}

),

shipments as (

    select * from {{ ref('stg_shipments') }}

),

open_purchase_orders as (

    select
        'purchase_order' as supply_kind,
        {{ line_reference('purchase_orders.po_id', 'purchase_orders.line_no') }} as reference_id,
        purchase_orders.sku_id,
        purchase_orders.location_id,
        cast(null as {{ dbt.type_string() }}) as from_location_id,
        purchase_orders.supplier_id,
        cast(null as {{ dbt.type_string() }}) as resource_id,
        purchase_orders.confirmed_date as due_date,
        purchase_orders.promised_date,
        purchase_orders.ordered_qty - purchase_orders.received_qty as qty
    from purchase_orders
    where purchase_orders.status = 'open'

),

open_production_orders as (

    select
        'production' as supply_kind,
        production_orders.production_order_id as reference_id,
        production_orders.sku_id,
        production_orders.location_id,
        cast(null as {{ dbt.type_string() }}) as from_location_id,
        cast(null as {{ dbt.type_string() }}) as supplier_id,
        production_orders.resource_id,
        production_orders.planned_finish_date as due_date,
        production_orders.planned_finish_date as promised_date,
        production_orders.planned_qty - production_orders.completed_qty as qty
    from production_orders
    where production_orders.status in ('planned', 'released', 'in_progress')

),

open_transfers as (

    select
        'transfer' as supply_kind,
        shipments.shipment_id as reference_id,
        shipments.sku_id,
        shipments.to_location_id as location_id,
        shipments.from_location_id,
        cast(null as {{ dbt.type_string() }}) as supplier_id,
        cast(null as {{ dbt.type_string() }}) as resource_id,
        shipments.eta_date as due_date,
        shipments.planned_arrival_date as promised_date,
        shipments.qty
    from shipments
    where shipments.actual_arrival_date is null

),

open_supply as (

    select * from open_purchase_orders
    union all
    select * from open_production_orders
    union all
    select * from open_transfers

),

final as (

    select
        open_supply.supply_kind,
        open_supply.reference_id,
        open_supply.sku_id,
        open_supply.location_id,
        open_supply.from_location_id,
        open_supply.supplier_id,
        open_supply.resource_id,
        open_supply.due_date,
        open_supply.promised_date,
        {{ soe.horizon_week_index('open_supply.due_date', 'week_zero.as_of', 'week_zero.week_start') }}
            as week_index,
        open_supply.qty,
        open_supply.due_date <= week_zero.as_of as is_past_due,
        (
            open_supply.due_date <= week_zero.as_of
            or open_supply.due_date > open_supply.promised_date
        ) as is_late,
        week_zero.as_of
    from open_supply
    cross join week_zero
    where open_supply.qty > 0

)

select
    supply_kind,
    reference_id,
    sku_id,
    location_id,
    from_location_id,
    supplier_id,
    resource_id,
    due_date,
    promised_date,
    {{ soe.add_days(soe.iso_week_start('as_of'), '7 * week_index') }} as week_start,
    week_index,
    qty,
    is_past_due,
    is_late,
    as_of
from final
