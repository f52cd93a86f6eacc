with

source as (

    select * from {{ source('raw', 'shipments') }}

),

renamed as (

    select
        cast(shipment_id as {{ dbt.type_string() }}) as shipment_id,
        cast(sku_id as {{ dbt.type_string() }}) as sku_id,
        cast(from_location_id as {{ dbt.type_string() }}) as from_location_id,
        cast(to_location_id as {{ dbt.type_string() }}) as to_location_id,
        cast(ship_date as date) as ship_date,
        cast(planned_arrival_date as date) as planned_arrival_date,
        cast(eta_date as date) as eta_date,
        cast(actual_arrival_date as date) as actual_arrival_date,
        cast(qty as {{ soe.type_double() }}) as qty,
        cast(_file as {{ dbt.type_string() }}) as source_file,
        cast(_extract_date as date) as extract_date
    from source

)

select * from renamed
