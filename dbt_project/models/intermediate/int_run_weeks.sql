-- A table, not a view, so that its rules are constraints of its contract (13 rows).
{{ config(materialized='table') }}

-- The horizon weeks of the run: week 0 is the ISO week containing as_of.

with

run_context as (

    select * from {{ ref('stg_run_context') }}

),

week_numbers as (

    {{ soe.integer_series_0_999() }}

),

weeks as (

    select
        run_context.as_of,
        run_context.horizon_weeks,
        run_context.time_fence_weeks,
        week_numbers.n as week_index,
        {{ soe.add_days(soe.iso_week_start('run_context.as_of'), '7 * week_numbers.n') }} as week_start
    from run_context
    cross join week_numbers
    where week_numbers.n < run_context.horizon_weeks

),

final as (

    select
        as_of,
        horizon_weeks,
        time_fence_weeks,
        week_index,
        week_start,
        {{ soe.add_days('week_start', 6) }} as week_end,
        week_index < time_fence_weeks as inside_time_fence,
        -- days of the week still ahead of as_of (the snapshot holds days <= as_of)
        cast(
            case
                when week_index = 0
                    then 6 - {{ dbt.datediff('week_start', 'as_of', 'day') }}
                else 7
            end
            as {{ dbt.type_bigint() }}
        ) as days_after_as_of
    from weeks

)

select * from final
