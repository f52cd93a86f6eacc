with

source as (

    select * from {{ source('raw', 'purchase_orders') }}

),

renamed as (

    select
        cast(po_id as {{ dbt.type_string() }}) as po_id,
        cast(line_no as {{ dbt.type_bigint() }}) as line_no,
        cast(supplier_id as {{ dbt.type_string() }}) as supplier_id,
        cast(sku_id as {{ dbt.type_string() }}) as sku_id,
        cast(location_id as {{ dbt.type_string() }}) as location_id,
        cast(order_date as date) as order_date,
        cast(promised_date as date) as promised_date,
        cast(confirmed_date as date) as confirmed_date,
        cast(ordered_qty as {{ soe.type_double() }}) as ordered_qty,
        cast(received_qty as {{ soe.type_double() }}) as received_qty,
        cast(received_date as date) as received_date,
        cast(status as {{ dbt.type_string() }}) as status,
        cast(_file as {{ dbt.type_string() }}) as source_file,
        cast(_extract_date as date) as extract_date
    from source

)

select * from renamed
