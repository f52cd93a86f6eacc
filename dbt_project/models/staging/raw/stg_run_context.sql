with

source as (

    select * from {{ source('raw', 'run_context') }}

),

renamed as (

    select
        cast(as_of as date) as as_of,
        cast(horizon_weeks as {{ dbt.type_int() }}) as horizon_weeks,
        cast(time_fence_weeks as {{ dbt.type_int() }}) as time_fence_weeks,
        cast(run_id as {{ dbt.type_string() }}) as run_id,
        cast(started_at as {{ dbt.type_timestamp() }}) as started_at
    from source

)

select * from renamed
