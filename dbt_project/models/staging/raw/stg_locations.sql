with

source as (

    select * from {{ source('raw', 'locations') }}

),

renamed as (

    select
        cast(location_id as {{ dbt.type_string() }}) as location_id,
        cast(location_type as {{ dbt.type_string() }}) as location_type,
        cast(region as {{ dbt.type_string() }}) as region,
        cast(_file as {{ dbt.type_string() }}) as source_file,
        cast(_extract_date as date) as extract_date
    from source

)

select * from renamed
