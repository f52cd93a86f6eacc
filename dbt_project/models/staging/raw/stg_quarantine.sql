with

source as (

    select * from {{ source('raw', 'quarantine') }}

),

renamed as (

    select
        cast(source as {{ dbt.type_string() }}) as source,
        cast(file as {{ dbt.type_string() }}) as file,
        cast(row_number as {{ dbt.type_bigint() }}) as row_number,
        cast({{ adapter.quote('column') }} as {{ dbt.type_string() }}) as {{ adapter.quote('column') }},
        cast(reason as {{ dbt.type_string() }}) as reason,
        cast(raw_record as {{ dbt.type_string() }}) as raw_record,
        cast(detected_at as {{ dbt.type_timestamp() }}) as detected_at
    from source

)

select * from renamed
