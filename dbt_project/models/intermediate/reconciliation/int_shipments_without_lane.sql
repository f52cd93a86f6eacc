-- shipment_without_lane: a shipment between two locations with no lane (stock may move only along one).

with

shipments as (

    select * from {{ ref('stg_shipments') }}

),

lanes as (

    select * from {{ ref('stg_lanes') }}

)

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
