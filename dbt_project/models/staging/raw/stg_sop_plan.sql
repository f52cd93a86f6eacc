with

source as (

    select * from {{ source('raw', 'sop_plan') }}

),

renamed as (

    select
        cast(plan_version as {{ dbt.type_string() }}) as plan_version,
        cast(committed_at as {{ dbt.type_timestamp() }}) as committed_at,
        cast(sku_id as {{ dbt.type_string() }}) as sku_id,
        cast(location_id as {{ dbt.type_string() }}) as location_id,
        cast(week_start as date) as week_start,
        cast(demand_qty as {{ soe.type_double() }}) as demand_qty,
        cast(supply_qty as {{ soe.type_double() }}) as supply_qty,
        cast(safety_stock_qty as {{ soe.type_double() }}) as safety_stock_qty,
        cast(_file as {{ dbt.type_string() }}) as source_file,
        cast(_extract_date as date) as extract_date
    from source

)

select * from renamed
