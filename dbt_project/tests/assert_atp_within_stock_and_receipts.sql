-- Cumulative ATP never exceeds what stock at as_of plus receipts up to that week
-- allow, and never decreases from one week to the next (look-ahead netting).
with

weeks as (

    select
        sku_id,
        location_id,
        week_index,
        atp_qty,
        available_stock_qty
            + sum(scheduled_receipts_qty) over (
                partition by sku_id, location_id
                order by week_index
                rows between unbounded preceding and current row
            ) as supply_to_date_qty,
        lag(atp_qty) over (
            partition by sku_id, location_id
            order by week_index
        ) as previous_atp_qty
    from {{ ref('sku_location_week') }}

)

select *
from weeks
where atp_qty > greatest(supply_to_date_qty, 0) + 1e-6
   or atp_qty < previous_atp_qty - 1e-6
