-- The projection and ATP rules, week by week, for every SKU-location:
-- - week 0 opens with available stock at as_of; every later week opens where
--   the previous one closed; closing = opening + receipts - sensed demand;
-- - cumulative ATP never exceeds what stock at as_of plus receipts up to that
--   week allow, and never decreases from one week to the next (look-ahead
--   netting).
-- Both rules read the same window over the mart, so one test sorts it once.
with

weeks as (

    select
        sku_id,
        location_id,
        week_index,
        available_stock_qty,
        opening_available_qty,
        scheduled_receipts_qty,
        sensed_demand_qty,
        projected_available_qty,
        atp_qty,
        available_stock_qty
            + sum(scheduled_receipts_qty) over (
                partition by sku_id, location_id
                order by week_index
                rows between unbounded preceding and current row
            ) as supply_to_date_qty,
        lag(projected_available_qty) over (
            partition by sku_id, location_id
            order by week_index
        ) as previous_closing_qty,
        lag(atp_qty) over (
            partition by sku_id, location_id
            order by week_index
        ) as previous_atp_qty
    from {{ ref('sku_location_week') }}

),

checked as (

    select
        weeks.*,
        case
            when abs(opening_available_qty + scheduled_receipts_qty - sensed_demand_qty - projected_available_qty) > 1e-6
                then 'closing is not opening + receipts - sensed demand'
            when week_index = 0 and abs(opening_available_qty - available_stock_qty) > 1e-6
                then 'week 0 does not open with the available stock at as_of'
            when week_index > 0 and abs(opening_available_qty - previous_closing_qty) > 1e-6
                then 'the week does not open where the previous one closed'
            when atp_qty > greatest(supply_to_date_qty, 0) + 1e-6
                then 'ATP exceeds stock at as_of plus receipts to date'
            when atp_qty < previous_atp_qty - 1e-6
                then 'ATP decreases from the previous week'
        end as broken_rule
    from weeks

)

select *
from checked
where broken_rule is not null
