-- The projection and ATP rules, week by week, for every SKU-location:
-- - week 0 opens with available stock at as_of; every later week opens where
--   the previous one closed; closing = opening + receipts - sensed demand;
-- - cumulative ATP never exceeds what stock at as_of plus receipts up to that
--   week allow, and never decreases from one week to the next (look-ahead
--   netting).
-- Both rules read the same window over the mart, so one test sorts it once.
-- Balances are doubles: equal within 1e-6, or 1e-12 of the largest quantity
-- involved where that exceeds a million (an order of 1e11 units is exact to
-- about 1e-5, not 1e-6).
{{ config(meta={'description': "The projection and ATP rules, week by week, on every SKU-location: each week opens where the last closed, closing = opening + receipts - sensed demand, and cumulative ATP never exceeds stock plus receipts nor decreases."}) }}

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

tolerated as (

    select
        weeks.*,
        1e-6 * greatest(
            1.0,
            1e-6 * greatest(
                abs(opening_available_qty), abs(scheduled_receipts_qty), abs(sensed_demand_qty),
                abs(projected_available_qty), abs(available_stock_qty), abs(supply_to_date_qty),
                abs(coalesce(previous_closing_qty, 0)), abs(atp_qty), abs(coalesce(previous_atp_qty, 0))
            )
        ) as tolerance
    from weeks

),

checked as (

    select
        tolerated.*,
        case
            when abs(opening_available_qty + scheduled_receipts_qty - sensed_demand_qty - projected_available_qty)
                > tolerance
                then 'closing is not opening + receipts - sensed demand'
            when week_index = 0 and abs(opening_available_qty - available_stock_qty) > tolerance
                then 'week 0 does not open with the available stock at as_of'
            when week_index > 0 and abs(opening_available_qty - previous_closing_qty) > tolerance
                then 'the week does not open where the previous one closed'
            when atp_qty > greatest(supply_to_date_qty, 0) + tolerance
                then 'ATP exceeds stock at as_of plus receipts to date'
            when atp_qty < previous_atp_qty - tolerance
                then 'ATP decreases from the previous week'
        end as broken_rule
    from tolerated

)

select *
from checked
where broken_rule is not null
