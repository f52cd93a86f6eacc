with

source as (

    select * from {{ source('raw', 'lanes') }}

),

renamed as (

    select
        cast(from_location_id as {{ dbt.type_string() }}) as from_location_id,
        cast(to_location_id as {{ dbt.type_string() }}) as to_location_id,
        cast(transit_days as {{ dbt.type_bigint() }}) as transit_days,
        cast(cost_per_unit as {{ soe.type_double() }}) as cost_per_unit,
        cast(_file as {{ dbt.type_string() }}) as source_file,
        cast(_extract_date as date) as extract_date
    from source

)

select * from renamed
