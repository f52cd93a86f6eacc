-- arrival_before_departure: a shipment whose actual arrival (or, not arrived, its eta) is dated
-- before it leaves. The view takes the dates as they are, so the receiver gets the units before
-- the sender books them out.

with

shipments as (

    select * from {{ ref('stg_shipments') }}

)

select
    'arrival_before_departure' as finding_type,
    'shipments' as source,
    shipments.sku_id,
    shipments.to_location_id as location_id,
    shipments.shipment_id as reference_id,
    shipments.ship_date as event_date,
    shipments.qty,
    {{ dbt.concat([
        "'Shipment '", 'shipments.shipment_id',
        "' of '", soe.quantity_text('shipments.qty'),
        "' units from '", 'shipments.from_location_id',
        "' to '", 'shipments.to_location_id',
        "' leaves on '", dbt.cast('shipments.ship_date', dbt.type_string()),
        "' but arrives (by its '",
        "case when shipments.actual_arrival_date < shipments.ship_date then 'actual arrival' else 'eta' end",
        "') on '",
        dbt.cast('coalesce(shipments.actual_arrival_date, shipments.eta_date)', dbt.type_string()),
        "'.'",
    ]) }} as detail
from shipments
where shipments.actual_arrival_date < shipments.ship_date
    or (shipments.actual_arrival_date is null and shipments.eta_date < shipments.ship_date)
