with

source as (

    select * from {{ source('raw', 'production_orders') }}

),

renamed as (

    select
        cast(production_order_id as {{ dbt.type_string() }}) as production_order_id,
        cast(sku_id as {{ dbt.type_string() }}) as sku_id,
        cast(location_id as {{ dbt.type_string() }}) as location_id,
        cast(resource_id as {{ dbt.type_string() }}) as resource_id,
        cast(planned_start_date as date) as planned_start_date,
        cast(planned_finish_date as date) as planned_finish_date,
        cast(planned_qty as {{ soe.type_double() }}) as planned_qty,
        cast(completed_qty as {{ soe.type_double() }}) as completed_qty,
        cast(actual_finish_date as date) as actual_finish_date,
        cast(status as {{ dbt.type_string() }}) as status,
        cast(_file as {{ dbt.type_string() }}) as source_file,
        cast(_extract_date as date) as extract_date
    from source

)

select * from renamed
