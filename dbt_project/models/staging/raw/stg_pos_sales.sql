with

source as (

    select * from {{ source('raw', 'pos_sales') }}

),

renamed as (

    select
        cast(sale_date as date) as sale_date,
        cast(sku_id as {{ dbt.type_string() }}) as sku_id,
        cast(location_id as {{ dbt.type_string() }}) as location_id,
        cast(qty as {{ soe.type_double() }}) as qty,
        cast(_file as {{ dbt.type_string() }}) as source_file,
        cast(_extract_date as date) as extract_date
    from source

)

select * from renamed
