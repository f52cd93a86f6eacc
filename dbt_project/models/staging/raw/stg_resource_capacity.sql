with

source as (

    select * from {{ source('raw', 'resource_capacity') }}

),

renamed as (

    select
        cast(location_id as {{ dbt.type_string() }}) as location_id,
        cast(resource_id as {{ dbt.type_string() }}) as resource_id,
        cast(week_start as date) as week_start,
        cast(capacity_qty as {{ soe.type_double() }}) as capacity_qty,
        cast(_file as {{ dbt.type_string() }}) as source_file,
        cast(_extract_date as date) as extract_date
    from source

)

select * from renamed
