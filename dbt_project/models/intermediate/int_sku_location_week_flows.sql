-- Everything that flows through a SKU-location in a horizon week, before the
-- projection: plan, booked demand, firm receipts, stock at as_of, master data.

with

spine as (

    select * from {{ ref('int_sku_location_week_spine') }}

),

run_weeks as (

    select * from {{ ref('int_run_weeks') }}

),

-- Only the horizon's weeks of the plan can meet the spine: cut first, the join
-- builds its hash table from about half the plan's rows (10M: ~10% of the trusted view).
committed_plan as (

    select * from {{ ref('int_committed_plan') }}
    where week_start between (select min(week_start) from run_weeks)
        and (select max(week_start) from run_weeks)

),

available_stock as (

    select * from {{ ref('int_available_stock') }}

),

booked_demand as (

    select * from {{ ref('int_booked_demand') }}

),

open_supply as (

    select * from {{ ref('int_open_supply') }}

),

skus as (

    select * from {{ ref('stg_skus') }}

),

demand_by_week as (

    select
        sku_id,
        location_id,
        week_index,
        sum(case when demand_kind = 'sales_order' then qty else 0 end) as booked_sales_order_qty,
        sum(case when demand_kind = 'transfer_out' then qty else 0 end) as booked_transfer_out_qty,
        sum(case when is_past_due then qty else 0 end) as past_due_order_qty
    from booked_demand
    group by sku_id, location_id, week_index

),

supply_by_week as (

    select
        sku_id,
        location_id,
        week_index,
        sum(case when supply_kind = 'purchase_order' then qty else 0 end) as po_receipts_qty,
        sum(case when supply_kind = 'transfer' then qty else 0 end) as transfer_receipts_qty,
        sum(case when supply_kind = 'production' then qty else 0 end) as production_receipts_qty,
        sum(case when is_late then qty else 0 end) as late_receipts_qty
    from open_supply
    group by sku_id, location_id, week_index

),

final as (

    select
        spine.sku_location_key,
        spine.sku_id,
        spine.location_id,
        spine.week_start,
        spine.week_end,
        spine.week_index,
        spine.inside_time_fence,
        spine.days_after_as_of,
        spine.as_of,
        committed_plan.plan_version,
        coalesce(committed_plan.demand_qty, 0) as demand_plan_qty,
        coalesce(committed_plan.supply_qty, 0) as planned_supply_qty,
        coalesce(committed_plan.safety_stock_qty, 0) as safety_stock_qty,
        coalesce(demand_by_week.booked_sales_order_qty, 0) as booked_sales_order_qty,
        coalesce(demand_by_week.booked_transfer_out_qty, 0) as booked_transfer_out_qty,
        coalesce(demand_by_week.past_due_order_qty, 0) as past_due_order_qty,
        coalesce(supply_by_week.po_receipts_qty, 0) as po_receipts_qty,
        coalesce(supply_by_week.transfer_receipts_qty, 0) as transfer_receipts_qty,
        coalesce(supply_by_week.production_receipts_qty, 0) as production_receipts_qty,
        coalesce(supply_by_week.late_receipts_qty, 0) as late_receipts_qty,
        available_stock.snapshot_date as stock_snapshot_date,
        coalesce(available_stock.on_hand_qty, 0) as on_hand_qty,
        coalesce(available_stock.quality_hold_qty, 0) as quality_hold_qty,
        coalesce(available_stock.available_qty, 0) as available_stock_qty,
        skus.product_family,
        skus.unit_cost,
        skus.unit_price
    from spine
    left join committed_plan
        on spine.sku_id = committed_plan.sku_id
        and spine.location_id = committed_plan.location_id
        and spine.week_start = committed_plan.week_start
    left join demand_by_week
        on spine.sku_id = demand_by_week.sku_id
        and spine.location_id = demand_by_week.location_id
        and spine.week_index = demand_by_week.week_index
    left join supply_by_week
        on spine.sku_id = supply_by_week.sku_id
        and spine.location_id = supply_by_week.location_id
        and spine.week_index = supply_by_week.week_index
    left join available_stock
        on spine.sku_id = available_stock.sku_id
        and spine.location_id = available_stock.location_id
    left join skus
        on spine.sku_id = skus.sku_id

)

select * from final
