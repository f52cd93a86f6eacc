-- Week 0 opens with available stock at as_of; every later week opens where the
-- previous one closed; closing = opening + receipts - sensed demand.
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
        lag(projected_available_qty) over (
            partition by sku_id, location_id
            order by week_index
        ) as previous_closing_qty
    from {{ ref('sku_location_week') }}

)

select *
from weeks
where abs(opening_available_qty + scheduled_receipts_qty - sensed_demand_qty - projected_available_qty) > 1e-6
   or (week_index = 0 and abs(opening_available_qty - available_stock_qty) > 1e-6)
   or (week_index > 0 and abs(opening_available_qty - previous_closing_qty) > 1e-6)
