with

source as (

    select * from {{ source('raw', 'sales_orders') }}

),

renamed as (

    select
        cast(order_id as {{ dbt.type_string() }}) as order_id,
        cast(line_no as {{ dbt.type_bigint() }}) as line_no,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(sku_id as {{ dbt.type_string() }}) as sku_id,
        cast(location_id as {{ dbt.type_string() }}) as location_id,
        cast(order_date as date) as order_date,
        cast(requested_date as date) as requested_date,
        cast(promised_date as date) as promised_date,
        cast(ordered_qty as {{ soe.type_double() }}) as ordered_qty,
        cast(shipped_qty as {{ soe.type_double() }}) as shipped_qty,
        cast(ship_date as date) as ship_date,
        cast(status as {{ dbt.type_string() }}) as status,
        cast(_file as {{ dbt.type_string() }}) as source_file,
        cast(_extract_date as date) as extract_date
    from source

)

select * from renamed
