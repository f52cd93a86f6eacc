-- A table, not a view: the spine, the weekly flows, the reconciliation, their tests and the
-- Python stages all read it, and a view would recompute it for each of them.
{{ config(materialized='table') }}

-- The plan version in force: the latest committed_at not after the end of
-- the as_of day. All weeks of that version, past and future. A version whose
-- rows carry several commit times is committed with its last row: one still
-- being committed after the as_of day is not in force yet. Two versions
-- committed at the same instant: the later name wins, so every run picks the same.

with

run_context as (

    select * from {{ ref('stg_run_context') }}

),

-- The plan is read twice, through two import CTEs: DuckDB materialises a CTE that is
-- referenced twice, which here copied every row of every version (10M network: 14 s
-- of the model's 16 s) before picking the one in force.
plan_commitments as (

    select plan_version, committed_at from {{ ref('stg_sop_plan') }}

),

sop_plan as (

    select * from {{ ref('stg_sop_plan') }}

),

versions as (

    select
        plan_commitments.plan_version,
        max(plan_commitments.committed_at) as committed_at
    from plan_commitments
    group by plan_commitments.plan_version
    having max(plan_commitments.committed_at)
        < (
            select cast({{ dbt.dateadd('day', 1, 'run_context.as_of') }} as {{ dbt.type_timestamp() }})
            from run_context
        )

),

ranked_versions as (

    select
        plan_version,
        committed_at,
        row_number() over (order by committed_at desc, plan_version desc) as version_rank
    from versions

),

committed_version as (

    select plan_version, committed_at
    from ranked_versions
    where version_rank = 1

),

final as (

    select
        sop_plan.sku_id,
        sop_plan.location_id,
        sop_plan.week_start,
        sop_plan.plan_version,
        committed_version.committed_at,
        sop_plan.demand_qty,
        sop_plan.supply_qty,
        sop_plan.safety_stock_qty
    from sop_plan
    inner join committed_version
        on sop_plan.plan_version = committed_version.plan_version

)

select * from final
