-- Rows valid on their own that disagree across sources, one model per kind of finding
-- (models/intermediate/reconciliation/, each saying what it finds). Kept and reported, never
-- quarantined. One row per (finding_type, source, reference_id).

with

run_context as (

    select * from {{ ref('stg_run_context') }}

),

findings as (

    select * from {{ ref('int_shipments_without_lane') }}
    union all
    select * from {{ ref('int_receipts_not_in_snapshot') }}
    union all
    select * from {{ ref('int_sales_orders_without_plan') }}
    union all
    select * from {{ ref('int_open_lines_over_delivered') }}
    union all
    select * from {{ ref('int_holds_above_on_hand') }}
    union all
    select * from {{ ref('int_stock_missing_from_count') }}
    union all
    select * from {{ ref('int_shipments_arriving_before_departure') }}
    union all
    select * from {{ ref('int_deliveries_without_date') }}

)

select
    findings.finding_type,
    findings.source,
    findings.sku_id,
    findings.location_id,
    findings.reference_id,
    findings.event_date,
    findings.qty,
    findings.detail,
    run_context.as_of
from findings
cross join run_context
