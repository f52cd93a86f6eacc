-- Cross-source disagreements between valid rows, kept and reported.

with

findings as (

    select * from {{ ref('int_reconciliation_findings') }}

)

select
    cast(finding_type as {{ dbt.type_string() }}) as finding_type,
    cast(source as {{ dbt.type_string() }}) as source,
    cast(sku_id as {{ dbt.type_string() }}) as sku_id,
    cast(location_id as {{ dbt.type_string() }}) as location_id,
    cast(reference_id as {{ dbt.type_string() }}) as reference_id,
    cast(event_date as date) as event_date,
    cast(qty as {{ soe.type_double() }}) as qty,
    cast(detail as {{ dbt.type_string() }}) as detail,
    cast(as_of as date) as as_of
from findings
