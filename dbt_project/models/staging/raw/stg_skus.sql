with

source as (

    select * from {{ source('raw', 'skus') }}

),

renamed as (

    select
        cast(sku_id as {{ dbt.type_string() }}) as sku_id,
        cast(product_family as {{ dbt.type_string() }}) as product_family,
        cast(unit_cost as {{ soe.type_double() }}) as unit_cost,
        cast(unit_price as {{ soe.type_double() }}) as unit_price,
        cast(_file as {{ dbt.type_string() }}) as source_file,
        cast(_extract_date as date) as extract_date
    from source

)

select * from renamed
