with

source as (

    select * from {{ source('raw', 'inventory_snapshots') }}

),

renamed as (

    select
        cast(snapshot_date as date) as snapshot_date,
        cast(sku_id as {{ dbt.type_string() }}) as sku_id,
        cast(location_id as {{ dbt.type_string() }}) as location_id,
        cast(on_hand_qty as {{ soe.type_double() }}) as on_hand_qty,
        cast(quality_hold_qty as {{ soe.type_double() }}) as quality_hold_qty,
        cast(_file as {{ dbt.type_string() }}) as source_file,
        cast(_extract_date as date) as extract_date
    from source

)

select * from renamed
