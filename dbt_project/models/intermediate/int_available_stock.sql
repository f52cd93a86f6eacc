-- A table, not a view: the spine, the weekly flows, the reconciliation, their tests and the
-- Python stages all read it, and a view would recompute it for each of them.
{{ config(materialized='table') }}

-- Stock at as_of: per SKU-location the latest snapshot not after as_of.
-- available = on hand - quality hold (held stock is not available).

with

run_context as (

    select * from {{ ref('stg_run_context') }}

),

snapshots as (

    select * from {{ ref('stg_inventory_snapshots') }}

),

ranked as (

    select
        snapshots.sku_id,
        snapshots.location_id,
        snapshots.snapshot_date,
        snapshots.on_hand_qty,
        snapshots.quality_hold_qty,
        run_context.as_of,
        row_number() over (
            partition by snapshots.sku_id, snapshots.location_id
            order by snapshots.snapshot_date desc
        ) as recency_rank
    from snapshots
    cross join run_context
    where snapshots.snapshot_date <= run_context.as_of

),

final as (

    select
        sku_id,
        location_id,
        snapshot_date,
        as_of,
        on_hand_qty,
        quality_hold_qty,
        on_hand_qty - quality_hold_qty as available_qty
    from ranked
    where recency_rank = 1

)

select * from final
