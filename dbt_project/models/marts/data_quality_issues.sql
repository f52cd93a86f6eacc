-- The quarantine as published: every row or file ingest rejected, with reason.

with

quarantine as (

    select * from {{ ref('stg_quarantine') }}

),

run_context as (

    select * from {{ ref('stg_run_context') }}

)

select
    cast(quarantine.source as {{ dbt.type_string() }}) as source,
    cast(quarantine.file as {{ dbt.type_string() }}) as file,
    cast(quarantine.row_number as {{ dbt.type_bigint() }}) as row_number,
    cast(quarantine.{{ adapter.quote('column') }} as {{ dbt.type_string() }}) as {{ adapter.quote('column') }},
    cast(quarantine.reason as {{ dbt.type_string() }}) as reason,
    cast(quarantine.raw_record as {{ dbt.type_string() }}) as raw_record,
    cast(quarantine.detected_at as {{ dbt.type_timestamp() }}) as detected_at,
    cast(run_context.as_of as date) as as_of
from quarantine
cross join run_context
