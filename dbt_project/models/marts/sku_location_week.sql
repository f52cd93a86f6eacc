-- The one trusted SKU-location-week view: plan, booked demand, firm receipts,
-- the projected available balance, cumulative ATP and days of supply.
-- Formulas: see the model description in _marts__models.yml and README.md.

with

flows as (

    select * from {{ ref('int_sku_location_week_flows') }}

),

demand as (

    select
        flows.*,
        booked_sales_order_qty + booked_transfer_out_qty as open_order_qty,
        -- week 0: only the plan for the days after as_of is still ahead
        demand_plan_qty * days_after_as_of / 7.0 as demand_plan_remaining_qty,
        po_receipts_qty + transfer_receipts_qty + production_receipts_qty as scheduled_receipts_qty,
        case when week_index = 0 then available_stock_qty else 0 end as opening_stock_qty
    from flows

),

sensed as (

    select
        demand.*,
        -- forecast consumption: booked orders above the plan win, below it the plan wins
        case
            when open_order_qty > demand_plan_remaining_qty then open_order_qty
            else demand_plan_remaining_qty
        end as sensed_demand_qty
    from demand

),

-- The running balances need only the keys and four quantities: windowing a
-- narrow projection and joining it back is faster than carrying every column
-- through two window passes. They partition and join on the spine's integer
-- SKU-location key, cheaper to sort and hash than the two text keys.
running as (

    select
        sku_location_key,
        week_index,
        sum(opening_stock_qty + scheduled_receipts_qty - sensed_demand_qty) over (
            partition by sku_location_key
            order by week_index
            rows between unbounded preceding and current row
        ) as projected_available_qty,
        -- ATP: stock + receipts - booked orders, cumulated ...
        sum(opening_stock_qty + scheduled_receipts_qty - open_order_qty) over (
            partition by sku_location_key
            order by week_index
            rows between unbounded preceding and current row
        ) as cumulative_atp_net_qty,
        sum(sensed_demand_qty) over (
            partition by sku_location_key
            order by week_index
            rows between 1 following and unbounded following
        ) as following_sensed_demand_qty,
        count(*) over (
            partition by sku_location_key
            order by week_index
            rows between 1 following and unbounded following
        ) as following_weeks
    from sensed

),

netted as (

    select
        running.*,
        -- ... then netted backwards: what a later week needs cannot be promised earlier
        min(cumulative_atp_net_qty) over (
            partition by sku_location_key
            order by week_index
            rows between current row and unbounded following
        ) as cumulative_atp_after_netting_qty
    from running

),

balances as (

    select
        sensed.*,
        netted.projected_available_qty,
        netted.cumulative_atp_after_netting_qty,
        case
            when netted.following_weeks > 0
                then netted.following_sensed_demand_qty / (7.0 * netted.following_weeks)
            -- the last week has none following: its own demand over its days after as_of (a Sunday's
            -- week 0 has none left, and what is due that day is a day's demand)
            else sensed.sensed_demand_qty
                / case when sensed.days_after_as_of > 1 then sensed.days_after_as_of else 1 end
        end as average_daily_demand_qty
    from sensed
    inner join netted
        on sensed.sku_location_key = netted.sku_location_key
        and sensed.week_index = netted.week_index

),

final as (

    select
        sku_id,
        location_id,
        week_start,
        week_end,
        week_index,
        inside_time_fence,
        demand_plan_qty,
        demand_plan_remaining_qty,
        open_order_qty,
        booked_sales_order_qty,
        booked_transfer_out_qty,
        past_due_order_qty,
        sensed_demand_qty,
        scheduled_receipts_qty,
        po_receipts_qty,
        transfer_receipts_qty,
        production_receipts_qty,
        late_receipts_qty,
        planned_supply_qty,
        projected_available_qty - scheduled_receipts_qty + sensed_demand_qty as opening_available_qty,
        projected_available_qty,
        safety_stock_qty,
        case
            when cumulative_atp_after_netting_qty > 0 then cumulative_atp_after_netting_qty
            else 0
        end as atp_qty,
        case
            when projected_available_qty <= 0 then 0
            when average_daily_demand_qty is null or average_daily_demand_qty <= 0 then 999
            when projected_available_qty / average_daily_demand_qty > 999 then 999
            else projected_available_qty / average_daily_demand_qty
        end as days_of_supply,
        available_stock_qty,
        on_hand_qty,
        quality_hold_qty,
        stock_snapshot_date,
        plan_version,
        product_family,
        unit_cost,
        unit_price,
        as_of
    from balances

)

select
    cast(sku_id as {{ dbt.type_string() }}) as sku_id,
    cast(location_id as {{ dbt.type_string() }}) as location_id,
    cast(week_start as date) as week_start,
    cast(week_end as date) as week_end,
    cast(week_index as {{ dbt.type_int() }}) as week_index,
    cast(inside_time_fence as {{ dbt.type_boolean() }}) as inside_time_fence,
    cast(demand_plan_qty as {{ soe.type_double() }}) as demand_plan_qty,
    cast(demand_plan_remaining_qty as {{ soe.type_double() }}) as demand_plan_remaining_qty,
    cast(open_order_qty as {{ soe.type_double() }}) as open_order_qty,
    cast(booked_sales_order_qty as {{ soe.type_double() }}) as booked_sales_order_qty,
    cast(booked_transfer_out_qty as {{ soe.type_double() }}) as booked_transfer_out_qty,
    cast(past_due_order_qty as {{ soe.type_double() }}) as past_due_order_qty,
    cast(sensed_demand_qty as {{ soe.type_double() }}) as sensed_demand_qty,
    cast(scheduled_receipts_qty as {{ soe.type_double() }}) as scheduled_receipts_qty,
    cast(po_receipts_qty as {{ soe.type_double() }}) as po_receipts_qty,
    cast(transfer_receipts_qty as {{ soe.type_double() }}) as transfer_receipts_qty,
    cast(production_receipts_qty as {{ soe.type_double() }}) as production_receipts_qty,
    cast(late_receipts_qty as {{ soe.type_double() }}) as late_receipts_qty,
    cast(planned_supply_qty as {{ soe.type_double() }}) as planned_supply_qty,
    cast(opening_available_qty as {{ soe.type_double() }}) as opening_available_qty,
    cast(projected_available_qty as {{ soe.type_double() }}) as projected_available_qty,
    cast(safety_stock_qty as {{ soe.type_double() }}) as safety_stock_qty,
    cast(atp_qty as {{ soe.type_double() }}) as atp_qty,
    cast(days_of_supply as {{ soe.type_double() }}) as days_of_supply,
    cast(available_stock_qty as {{ soe.type_double() }}) as available_stock_qty,
    cast(on_hand_qty as {{ soe.type_double() }}) as on_hand_qty,
    cast(quality_hold_qty as {{ soe.type_double() }}) as quality_hold_qty,
    cast(stock_snapshot_date as date) as stock_snapshot_date,
    cast(plan_version as {{ dbt.type_string() }}) as plan_version,
    cast(product_family as {{ dbt.type_string() }}) as product_family,
    cast(unit_cost as {{ soe.type_double() }}) as unit_cost,
    cast(unit_price as {{ soe.type_double() }}) as unit_price,
    cast(as_of as date) as as_of
from final
