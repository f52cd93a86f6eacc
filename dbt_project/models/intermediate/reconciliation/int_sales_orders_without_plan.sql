-- sales_order_without_plan: an open sales-order line with a remainder to ship on a SKU-location
-- the committed plan has no row for.

with

booked_demand as (

    select * from {{ ref('int_booked_demand') }}

),

committed_plan as (

    select * from {{ ref('int_committed_plan') }}

),

planned_sku_locations as (

    select distinct sku_id, location_id
    from committed_plan

)

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
