"""Detection rules: one function per exception type, DuckDB SQL over the trusted view and staging.

Every rule returns a frame of *candidates* with the columns of ``CANDIDATE_COLUMNS``:
where it bites, the first affected week, the quantity at stake (``qty``, the
basis of ``impact_value``), the unit money values and one planner sentence.
``absorbable`` says whether a response inside the time fence can absorb it
(NULL: decided by the week alone). Thresholds come from ``DetectionConfig``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import duckdb
import pandas as pd

from soe_assets.detect.config import DetectionConfig
from soe_assets.ingest.health import QualityLimits, SourceHealth, freshness, read_source_health
from soe_assets.network import replenishment_shipments_sql

CANDIDATE_COLUMNS = [
    "exception_type", "sku_id", "location_id", "week_start", "week_index", "reference_id",
    "qty", "unit_price", "unit_cost", "weeks_affected", "absorbable", "explanation",
    "arrival_week",  # late supply: the week it now arrives (a root cause only of a shortage starting before it)
]

RUN = """
run as (
    select
        as_of,
        horizon_weeks,
        time_fence_weeks,
        cast(date_trunc('week', as_of) as date) as week0
    from raw.run_context
)"""


def weekly_demand_sql(keys: str | None = None) -> str:
    """CTE ``weekly_demand``: per SKU-location (of ``keys``, a relation of ``sku_id, location_id``, when only a
    few places can be flagged; else every one), its average week of demand, ``avg_week_demand``, for the
    shortage tolerance and the excess rule.

    The average runs over the whole weeks the committed plan covers (all weeks where the SKU-location has
    no plan): past the plan's last week nothing forecasts demand, and counting those weeks as zero would
    make ordinary stock look like excess. The partial week 0 stays out (its plan is prorated in sensed
    demand, and on a Sunday nothing of it is left: it would pull the average below a week's demand); a
    one-week horizon, or a plan covering week 0 only, falls back to week 0's whole-week demand. It reads
    only the columns it needs: carrying every column of the view through the window cost seconds at 10M
    SKU-location-weeks.
    """
    only = f"where (sku_id, location_id) in (select sku_id, location_id from {keys})" if keys else ""
    return f"""
weekly_demand as (
    select sku_id, location_id,
        coalesce(avg(case when forecast_covered and week_index > 0 then sensed_demand_qty end),
                 max(case when week_index = 0 then greatest(demand_plan_qty, open_order_qty) end))
            as avg_week_demand
    from (
        select sku_id, location_id, week_index, sensed_demand_qty, demand_plan_qty, open_order_qty,
               coalesce(week_index <= max(case when plan_version is not null then week_index end)
                                          over (partition by sku_id, location_id), true) as forecast_covered
        from marts.sku_location_week
        {only}
    )
    group by sku_id, location_id
)"""


def _week_index(date_sql: str) -> str:
    """Horizon week of a date (negative in the past), relative to ``run.week0``."""
    return f"cast(floor(datediff('day', run.week0, {date_sql}) / 7.0) as integer)"


def _num(sql: str) -> str:
    """A quantity as text for an explanation: whole numbers as such, fractions with up to two decimals (a
    shortfall of 12.5 reads '12.5', as the row holds it, not '12')."""
    return f"regexp_replace(printf('%,.2f', cast({sql} as double)), '\\.?0+$', '')"


def _counted(sql: str, noun: str) -> str:
    """A count with its noun for an explanation: '1 week', '3 weeks', '1,250 units', '12.5 units'."""
    return f"({_num(sql)} || case when abs(round({sql}, 2)) = 1 then ' {noun}' else ' {noun}s' end)"


def _units(sql: str) -> str:
    return _counted(sql, "unit")


def _money(sql: str) -> str:
    return f"printf('%,.0f', {sql})"


def _frame(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pd.DataFrame:
    frame = conn.execute(sql, params or []).df()
    for column in CANDIDATE_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    return frame[CANDIDATE_COLUMNS]


# --------------------------------------------------------------------------- demand vs plan


# Per customer-facing SKU-location: demand and plan summed over the windows both demand rules judge; a temp
# table written once per detection run (``shared_relations``).
DEMAND_WINDOWS = "_detect_demand_windows"
def demand_end_weeks(config: DetectionConfig) -> list[int]:
    """The weeks ``demand_above_plan`` cumulates demand and plan through (from week -recent)."""
    return sorted({0, config.demand_near_weeks - 2, config.demand_near_weeks - 1})


def demand_windows_sql(config: DetectionConfig, skus: str | None = None) -> str:
    """Per customer-facing SKU-location: demand and plan cumulated from week -recent through each end week
    (``demand_above_plan``), and summed over the ``demand_window_weeks`` completed weeks before week 0
    (``demand_below_plan``; a line booked a week early or late cancels out inside a window). A
    SKU-location without demand or plan in those weeks sums to 0.

    Demand = non-cancelled sales-order lines by requested_date + POS by sale_date + transfers out down the
    network by ship_date (plant to DC or store, DC to store: the plan at a location covers the replenishment it
    ships too; a move between locations of one type, such as a reallocation between DCs, is no demand). Week 0's POS, sold up to
    as_of only, counts at its daily rate times 7 (orders and transfers are booked for the whole week). Grouped sums per
    SKU-location straight from the events and the plan rows, not window functions and no weekly grid:
    the windows all start at a fixed week, and an aggregate stays within DuckDB's memory budget on any
    network. ``skus``: a relation with a ``sku_id`` column, to compute the windows of those SKUs only.
    """
    def of_skus(column: str) -> str:
        return f" and {column} in (select sku_id from {skus})" if skus else ""

    recent, last, n = -config.demand_recent_weeks, config.demand_near_weeks - 1, config.demand_window_weeks
    first = min(recent, -n)
    # only the weeks judged are read: the plan and the demand history reach far beyond them
    in_judged_weeks = (f"between cast(run.week0 + to_days({7 * first}) as date) "
                       f"and cast(run.week0 + to_days({7 * (last + 1) - 1}) as date)")
    in_window = f"week_index between {-n} and -1"
    end_weeks = demand_end_weeks(config)

    def sums(kind: str) -> str:
        through = "".join(
            f"sum(case when week_index between {recent} and {end} then qty else 0 end) as {kind}_through_{i},\n        "
            for i, end in enumerate(end_weeks)
        )
        return f"{through}sum(case when {in_window} then qty else 0 end) as window_{kind}_qty"

    totals = "".join(
        f"coalesce(demand.demand_through_{i}, 0) as demand_through_{i},\n    "
        f"coalesce(plan.plan_through_{i}, 0) as plan_through_{i},\n    "
        for i in range(len(end_weeks))
    )
    return f"""
with {RUN},
customer_locations as (
    -- a line that was cancelled is no demand: a SKU-location with only such lines serves no customer with it
    select distinct sku_id, location_id from staging.stg_sales_orders where status <> 'cancelled'{of_skus('sku_id')}
    union
    select distinct sku_id, location_id from staging.stg_pos_sales where true{of_skus('sku_id')}
),
demand_events as (
    select sku_id, location_id, requested_date as event_date, ordered_qty as qty, false as sold_to_date
    from staging.stg_sales_orders where status <> 'cancelled'{of_skus('sku_id')}
    union all
    select sku_id, location_id, sale_date, qty, true from staging.stg_pos_sales where true{of_skus('sku_id')}
    union all
    select sku_id, location_id, ship_date, qty, false from ({replenishment_shipments_sql(of_skus('shipments.sku_id'))})
),
demand_weeks as (
    select demand_events.sku_id, demand_events.location_id,
           {_week_index('demand_events.event_date')} as week_index,
           -- week 0's point-of-sale demand is known up to as_of only: scaled to the whole week, as its plan is
           demand_events.qty * case when demand_events.sold_to_date and demand_events.event_date >= run.week0
                                    then 7.0 / (datediff('day', run.week0, run.as_of) + 1) else 1 end as qty
    from demand_events cross join run
    where demand_events.event_date {in_judged_weeks}
),
plan_weeks as (
    select p.sku_id, p.location_id, {_week_index('p.week_start')} as week_index, p.demand_qty as qty
    from intermediate.int_committed_plan as p cross join run
    where p.week_start {in_judged_weeks}{of_skus('p.sku_id')}
),
demand as (
    select sku_id, location_id,
        {sums('demand')}
    from demand_weeks
    group by sku_id, location_id
),
plan as (
    select sku_id, location_id,
        {sums('plan')}
    from plan_weeks
    group by sku_id, location_id
)
select c.sku_id, c.location_id, skus.unit_price, skus.unit_cost,
    {totals}coalesce(demand.window_demand_qty, 0) as window_demand_qty,
    coalesce(plan.window_plan_qty, 0) as window_plan_qty
from customer_locations as c
left join demand using (sku_id, location_id)
left join plan using (sku_id, location_id)
left join staging.stg_skus as skus using (sku_id)
"""


@contextmanager
def shared_relations(conn: duckdb.DuckDBPyConnection, config: DetectionConfig) -> Iterator[None]:
    """The relations several rules read (``DEMAND_WINDOWS``), written once for a detection run."""
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {DEMAND_WINDOWS} AS {demand_windows_sql(config)}")
    try:
        yield
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {DEMAND_WINDOWS}")


def demand_above_plan(conn: duckdb.DuckDBPyConnection, config: DetectionConfig) -> pd.DataFrame:
    """Demand well above the committed plan, cumulated from week -2: over the known weeks -2..0, or
    through the booked weeks 2 and 3 (booked orders can only grow, so booked above plan is firm).
    Cumulating over 5-6 weeks makes an order booked a week early, or a week of noise, cancel out.
    Reads ``DEMAND_WINDOWS`` (run inside ``shared_relations``)."""
    first = -config.demand_recent_weeks
    per_end = "\n    union all\n    ".join(
        f"select sku_id, location_id, unit_price, unit_cost, {end} as week_index, "
        f"demand_through_{i} as window_demand_qty, plan_through_{i} as window_plan_qty from {DEMAND_WINDOWS}"
        for i, end in enumerate(demand_end_weeks(config))
    )
    sql = f"""
with {RUN},
windows as (
    {per_end}
),
flagged as (
    select windows.*, window_demand_qty - window_plan_qty as gap,
           strftime(cast(run.week0 + to_days({7 * first}) as date), '%Y-%m-%d') || ' to '
               || strftime(cast(run.week0 + to_days(7 * windows.week_index + 6) as date), '%Y-%m-%d') as window_label
    from windows cross join run
    where window_demand_qty >= window_plan_qty * (1 + ?) and window_demand_qty - window_plan_qty >= ?
),
ratios as (
    select *, case when window_plan_qty > 0 then window_demand_qty / window_plan_qty end as ratio
    from flagged
),
-- The window with the most units short sets the quantity; the steepest one (weeks later in the order
-- book are only partly booked, which dilutes the longer windows) judges whether S&OE can absorb it.
best as (
    select *, row_number() over (partition by sku_id, location_id order by gap desc, week_index) as rank,
           count(*) over (partition by sku_id, location_id) as windows_flagged,
           bool_or(ratio is null) over (partition by sku_id, location_id) as any_unplanned,
           max(ratio) over (partition by sku_id, location_id) as peak_ratio,
           arg_max(window_label, ratio) over (partition by sku_id, location_id) as peak_label
    from ratios
)
select
    'demand_above_plan' as exception_type, sku_id, location_id, run.week0 as week_start, 0 as week_index,
    null as reference_id, gap as qty, unit_price, unit_cost, windows_flagged as weeks_affected,
    case when not any_unplanned and peak_ratio < 1 + ? then true else false end as absorbable,
    'Demand for ' || sku_id || ' at ' || location_id || ' runs ' || {_units('window_demand_qty')} || ' against a plan of '
        || {_num('window_plan_qty')}
        || case when ratio is not null then ' (' || printf('%+.0f', 100 * (ratio - 1)) || '%)' else '' end
        || ' from ' || window_label || ' (actual, and booked orders for coming weeks)'
        || case when peak_ratio > ratio and peak_label <> window_label
                then ', ' || printf('%+.0f', 100 * (peak_ratio - 1)) || '% from ' || peak_label else '' end
        || ': ' || {_units('gap')} || ' more than the supply planned for them.' as explanation
from best cross join run
where rank = 1
"""
    return _frame(conn, sql, [config.demand_above_rel, config.demand_min_units, config.escalate_demand_variance])


def demand_below_plan(conn: duckdb.DuckDBPyConnection, config: DetectionConfig) -> pd.DataFrame:
    """Actual demand well below plan over the last completed weeks.

    Only whole weeks whose demand is known count. Week 0 does not: its point-of-sale
    demand is known only up to as_of while its plan covers the whole week, and later
    weeks are normally only partly booked, so below plan there is no drop. Reads
    ``DEMAND_WINDOWS`` (run inside ``shared_relations``).
    """
    n = config.demand_window_weeks
    sql = f"""
with {RUN},
windows as (
    select *,
        strftime(cast(run.week0 + to_days({-7 * n}) as date), '%Y-%m-%d') || ' to '
            || strftime(cast(run.week0 - to_days(1) as date), '%Y-%m-%d') as window_label
    from {DEMAND_WINDOWS} cross join run
)
select
    'demand_below_plan' as exception_type, sku_id, location_id,
    run.week0 as week_start, 0 as week_index, null as reference_id,
    window_plan_qty - window_demand_qty as qty, unit_price, unit_cost, {config.demand_window_weeks} as weeks_affected,
    case when window_demand_qty / window_plan_qty > 1 - ? then true else false end as absorbable,
    'Demand for ' || sku_id || ' at ' || location_id || ' was ' || {_units('window_demand_qty')} || ' against a plan of '
        || {_num('window_plan_qty')} || ' (' || printf('%+.0f', 100 * (window_demand_qty / window_plan_qty - 1))
        || '%) from ' || window_label || ': ' || {_num('window_plan_qty - window_demand_qty')}
        || ' planned units did not sell; supply still follows the plan.' as explanation
from windows cross join run
where window_plan_qty > 0
  and window_demand_qty <= window_plan_qty * (1 - ?) and window_plan_qty - window_demand_qty >= ?
"""
    return _frame(conn, sql, [config.escalate_demand_variance, config.demand_below_rel, config.demand_min_units])


# --------------------------------------------------------------------------- projection


def _spare_stock_sql(time_fence_weeks: int, short: str) -> str:
    """Per SKU of the relation ``short`` and receiving location: stock other locations could send along a lane
    so that it arrives inside the fence, by the respond stage's donor and transfer rules (docs/responses.md). A transfer
    leaves in a fence week (week 0: the day after as_of; later weeks: the Monday) and arrives after the
    lane's transit days; the latest departure that still arrives by the fence's last day sets what the
    donor can give: its lowest balance above safety stock from that week to the end of the horizon, and
    no more than it holds at the start of that week (none where its balance is negative then: it owes
    that to its own waiting demand). Leaving earlier never allows more (with safety stock >= 0, a week's
    margin is at most the next week's opening balance). A lane too slow to arrive inside the fence gives
    nothing. Needs ``run`` (``RUN``). Only the SKUs of ``short`` are looked at: a rule needs the spare stock of
    the SKUs it found short, a few of the whole network's."""
    weeks = range(max(time_fence_weeks, 1))
    margins = ", ".join(
        f"min(slw.projected_available_qty - slw.safety_stock_qty) filter (where slw.week_index >= {week})"
        for week in weeks)
    openings = ", ".join(f"max(slw.opening_available_qty) filter (where slw.week_index = {week})" for week in weeks)
    return f"""
donor as (
    select slw.sku_id, slw.location_id,
           -- margin_from[d + 1]: the lowest balance above safety stock from week d on
           list_value({margins}) as margin_from,
           -- opening_at[d + 1]: the balance at the start of week d (week 0: the stock at as_of)
           list_value({openings}) as opening_at
    from marts.sku_location_week as slw
    where slw.sku_id in (select sku_id from {short})
    group by slw.sku_id, slw.location_id
),
lane_departure as (
    select lanes.from_location_id, lanes.to_location_id,
           case when (7 * run.time_fence_weeks - 1 - lanes.transit_days) // 7 >= 1
                    then (7 * run.time_fence_weeks - 1 - lanes.transit_days) // 7
                when run.time_fence_weeks > 0
                     and run.as_of + to_days(1 + lanes.transit_days) <= run.week0 + to_days(7 * run.time_fence_weeks - 1)
                    then 0
           end as latest_departure_week
    from staging.stg_lanes as lanes cross join run
),
reachable as (
    select lane_departure.to_location_id as location_id, donor.sku_id,
           sum(greatest(least(coalesce(donor.margin_from[lane_departure.latest_departure_week + 1], 0),
                              coalesce(donor.opening_at[lane_departure.latest_departure_week + 1], 0)), 0))
               as spare_qty
    from donor
    inner join lane_departure on lane_departure.from_location_id = donor.location_id
    where lane_departure.latest_departure_week is not null
    group by all
)"""


def _time_fence_weeks(conn: duckdb.DuckDBPyConnection) -> int:
    return conn.execute("select time_fence_weeks from raw.run_context").fetchone()[0]


def projected_stockout(conn: duckdb.DuckDBPyConnection, config: DetectionConfig) -> pd.DataFrame:
    """The projected available balance goes negative in some horizon week."""
    sql = f"""
with {RUN},
below_zero as (
    -- a stockout is at least stockout_min_units below zero: only these places need their average demand
    select distinct sku_id, location_id from marts.sku_location_week where projected_available_qty < -?
),
{weekly_demand_sql('below_zero')},
short as (
    select slw.*, weekly_demand.avg_week_demand
    from marts.sku_location_week as slw inner join weekly_demand using (sku_id, location_id)
    where slw.projected_available_qty < -greatest(?, ? * weekly_demand.avg_week_demand)
),
agg as (
    select sku_id, location_id, min(week_index) as first_week, count(*) as weeks_affected,
           -min(projected_available_qty) as qty, any_value(unit_price) as unit_price, any_value(unit_cost) as unit_cost,
           arg_min(week_start, week_index) as week_start,
           arg_min(projected_available_qty, week_index) as first_balance
    from short group by sku_id, location_id
),
{_spare_stock_sql(_time_fence_weeks(conn), 'agg')}
select
    'projected_stockout' as exception_type, agg.sku_id, agg.location_id, agg.week_start, agg.first_week as week_index,
    null as reference_id, agg.qty, agg.unit_price, agg.unit_cost, agg.weeks_affected,
    coalesce(reachable.spare_qty, 0) >= agg.qty as absorbable,
    agg.sku_id || ' at ' || agg.location_id || ' is projected to run out in the week of '
        || strftime(agg.week_start, '%Y-%m-%d') || ' (balance ' || {_num('agg.first_balance')} || '), short '
        || {_units('agg.qty')} || ' at worst over ' || {_counted('agg.weeks_affected', 'week')} || '; '
        || {_units('coalesce(reachable.spare_qty, 0)')} || ' are spare at locations with a lane to it.' as explanation
from agg
left join reachable on reachable.sku_id = agg.sku_id and reachable.location_id = agg.location_id
"""
    return _frame(conn, sql, [config.stockout_min_units, config.stockout_min_units, config.stockout_min_rel])


def below_safety_stock(conn: duckdb.DuckDBPyConnection, config: DetectionConfig) -> pd.DataFrame:
    """Inside the fence, the projection drops materially below the safety stock."""
    sql = f"""
with {RUN},
below as (
    select *, safety_stock_qty - projected_available_qty as gap
    from marts.sku_location_week
    where inside_time_fence and safety_stock_qty > 0
      and safety_stock_qty - projected_available_qty > greatest(? * safety_stock_qty, ?)
),
agg as (
    select sku_id, location_id, min(week_index) as first_week, count(*) as weeks_affected,
           least(max(gap), max(safety_stock_qty)) as qty, any_value(unit_price) as unit_price,
           any_value(unit_cost) as unit_cost, arg_min(week_start, week_index) as week_start,
           arg_min(projected_available_qty, week_index) as first_balance,
           arg_min(safety_stock_qty, week_index) as first_safety
    from below group by sku_id, location_id
),
{_spare_stock_sql(_time_fence_weeks(conn), 'agg')}
select
    'below_safety_stock' as exception_type, agg.sku_id, agg.location_id, agg.week_start, agg.first_week as week_index,
    null as reference_id, agg.qty, agg.unit_price, agg.unit_cost, agg.weeks_affected,
    coalesce(reachable.spare_qty, 0) >= agg.qty as absorbable,
    agg.sku_id || ' at ' || agg.location_id || ' is projected at ' || {_units('agg.first_balance')}
        || ' against a safety stock of ' || {_num('agg.first_safety')} || ' in the week of '
        || strftime(agg.week_start, '%Y-%m-%d') || ', up to ' || {_units('agg.qty')} || ' of the buffer missing in '
        || {_counted('agg.weeks_affected', 'fence week')} || '.' as explanation
from agg
left join reachable on reachable.sku_id = agg.sku_id and reachable.location_id = agg.location_id
"""
    return _frame(conn, sql, [config.safety_stock_rel, config.safety_stock_min_units])


def excess_inventory(conn: duckdb.DuckDBPyConnection, config: DetectionConfig) -> pd.DataFrame:
    """Available stock now and at the end of the fence far above safety stock + N weeks of demand."""
    sql = f"""
with {RUN}, {weekly_demand_sql()},
now as (
    select * from marts.sku_location_week where week_index = 0
),
fence_end as (
    -- none with a fence of 0 weeks: its end is now
    select slw.* from marts.sku_location_week as slw cross join run
    where slw.week_index = least(run.time_fence_weeks, run.horizon_weeks) - 1
),
excess as (
    select now.sku_id, now.location_id, now.week_start, now.unit_price, now.unit_cost,
           now.available_stock_qty, coalesce(demand.avg_week_demand, 0) as avg_week_demand,
           now.available_stock_qty - now.safety_stock_qty - ? * coalesce(demand.avg_week_demand, 0) as excess_now,
           -- a plan ending before the fence's end sets no safety stock there (0): week 0's still applies
           fence_end.projected_available_qty
               - case when fence_end.plan_version is null then now.safety_stock_qty
                      else fence_end.safety_stock_qty end
               - ? * coalesce(demand.avg_week_demand, 0) as excess_at_fence_end
    from now left join fence_end using (sku_id, location_id)
    inner join weekly_demand as demand using (sku_id, location_id)
),
measured as (
    select excess.* exclude (excess_at_fence_end), coalesce(excess_at_fence_end, excess_now) as excess_at_fence
    from excess
)
select
    'excess_inventory' as exception_type, sku_id, location_id, week_start, 0 as week_index, null as reference_id,
    least(excess_now, excess_at_fence) as qty, unit_price, unit_cost, 1 as weeks_affected, null as absorbable,
    sku_id || ' at ' || location_id || ' holds ' || {_units('available_stock_qty')} || ' available = '
        || case when avg_week_demand > 0 then printf('%.1f', available_stock_qty / avg_week_demand) || ' weeks'
                else 'unlimited weeks' end
        || ' of cover against safety stock + ' || printf('%g', ?) || ' weeks; about '
        || {_units('least(excess_now, excess_at_fence)')} || ' (' || {_money('least(excess_now, excess_at_fence) * unit_cost')}
        || ' at cost) are excess.' as explanation
from measured
where excess_now >= ? and excess_at_fence >= ?
"""
    k = config.excess_cover_weeks
    return _frame(conn, sql, [k, k, k, config.excess_min_units, config.excess_min_units])


# --------------------------------------------------------------------------- supply execution


def _late_supply(conn: duckdb.DuckDBPyConnection, config: DetectionConfig, kind: str, exception_type: str,
                 describe: str) -> pd.DataFrame:
    """Open supply expected later than promised: confirmed/ETA after the promised date, or past due.

    delay_days = greatest(due_date, as_of) - promised_date: a supply item still open after its
    due date is expected no earlier than today.
    """
    sql = f"""
with {RUN},
late as (
    select s.*, datediff('day', s.promised_date, greatest(s.due_date, run.as_of)) as delay_days,
           {_week_index('s.promised_date')} as promised_week
    from intermediate.int_open_supply as s cross join run
    where s.supply_kind = ?
)
select
    ? as exception_type, late.sku_id, late.location_id,
    cast(run.week0 + to_days(cast(7 * late.promised_week as integer)) as date) as week_start,
    late.promised_week as week_index, late.reference_id, late.qty, skus.unit_price, skus.unit_cost,
    1 as weeks_affected, null as absorbable, {_week_index('greatest(late.due_date, run.as_of)')} as arrival_week,
    {describe} as explanation
from late cross join run left join staging.stg_skus as skus using (sku_id)
where late.delay_days > ?
"""
    return _frame(conn, sql, [kind, exception_type, config.slip_tolerance_days])


def late_purchase_order(conn: duckdb.DuckDBPyConnection, config: DetectionConfig) -> pd.DataFrame:
    describe = (
        "'PO line ' || late.reference_id || coalesce(' from ' || late.supplier_id, '') || ': ' || " + _units("late.qty")
        + " || ' of ' || late.sku_id || ' for ' || late.location_id || ' promised '"
        " || strftime(late.promised_date, '%Y-%m-%d') || case when late.due_date <= run.as_of"
        " then ', confirmed ' || strftime(late.due_date, '%Y-%m-%d') || ' and still not received'"
        " else ', now confirmed for ' || strftime(late.due_date, '%Y-%m-%d') end"
        " || ' (' || " + _counted("late.delay_days", "day") + " || ' late).'"
    )
    return _late_supply(conn, config, "purchase_order", "late_purchase_order", describe)


def late_transfer(conn: duckdb.DuckDBPyConnection, config: DetectionConfig) -> pd.DataFrame:
    describe = (
        "'Transfer ' || late.reference_id || ' of ' || " + _units("late.qty")
        + " || ' of ' || late.sku_id || ' from ' || coalesce(late.from_location_id, '?') || ' to ' || late.location_id"
        " || ' was due to arrive ' || strftime(late.promised_date, '%Y-%m-%d') || case when late.due_date <= run.as_of"
        " then ', ETA ' || strftime(late.due_date, '%Y-%m-%d') || ' has passed and it has not arrived'"
        " else ', ETA now ' || strftime(late.due_date, '%Y-%m-%d') end || ' (' || " + _counted("late.delay_days", "day") + " || ' late).'"
    )
    return _late_supply(conn, config, "transfer", "late_transfer", describe)


def production_shortfall(conn: duckdb.DuckDBPyConnection, config: DetectionConfig) -> pd.DataFrame:
    """Production orders behind schedule: still open after their planned finish, or finished (actually, else
    as planned) within the lookback materially short of the planned quantity."""
    sql = f"""
with {RUN},
orders as (
    select p.*, {_week_index('p.planned_finish_date')} as finish_week,
           datediff('day', p.planned_finish_date, run.as_of) as days_past_finish,
           datediff('day', coalesce(p.actual_finish_date, p.planned_finish_date), run.as_of) as days_since_finish
    from staging.stg_production_orders as p cross join run
    where p.status <> 'cancelled'
),
behind as (
    select *, planned_qty - completed_qty as qty, 'late' as reason
    from orders
    where status in ('planned', 'released', 'in_progress') and days_past_finish > ? and planned_qty > completed_qty
    union all
    select *, planned_qty - completed_qty as qty, 'short' as reason
    from orders
    where status = 'completed' and completed_qty < planned_qty * (1 - ?) and days_since_finish between 0 and ?
)
select
    'production_shortfall' as exception_type, behind.sku_id, behind.location_id,
    cast(run.week0 + to_days(cast(7 * behind.finish_week as integer)) as date) as week_start,
    behind.finish_week as week_index, behind.production_order_id as reference_id, behind.qty,
    skus.unit_price, skus.unit_cost, 1 as weeks_affected, null as absorbable,
    'Production order ' || behind.production_order_id || ' (' || behind.sku_id || ' on ' || behind.resource_id
        || ' at ' || behind.location_id || ') planned ' || {_units('behind.planned_qty')} || ' by '
        || strftime(behind.planned_finish_date, '%Y-%m-%d') || case when behind.reason = 'late'
            then ' is still ' || behind.status || ' with ' || {_num('behind.completed_qty')} || ' done ('
                 || {_counted('behind.days_past_finish', 'day')} || ' late)'
            else ' but finished only ' || {_num('behind.completed_qty')} end
        || ': ' || {_units('behind.qty')} || ' short.' as explanation
from behind cross join run left join staging.stg_skus as skus using (sku_id)
"""
    return _frame(conn, sql, [config.slip_tolerance_days, config.production_short_rel,
                              config.production_short_lookback_days])


# What each resource still has to make per horizon week: the open remainder of its production orders (the
# trusted view's production supply: planned/released/in_progress, planned - completed), past-due ones in week
# 0, with the load-weighted price and cost. The overload rule and the respond stage's spare capacity read it.
RESOURCE_LOAD = """
resource_load as (
    select s.location_id, s.resource_id, s.week_index, sum(s.qty) as load_qty,
           sum(s.qty * skus.unit_price) / sum(s.qty) as unit_price,
           sum(s.qty * skus.unit_cost) / sum(s.qty) as unit_cost
    from intermediate.int_open_supply as s
    left join staging.stg_skus as skus using (sku_id)
    where s.supply_kind = 'production'
    group by all
)"""


def capacity_overload(conn: duckdb.DuckDBPyConnection, config: DetectionConfig) -> pd.DataFrame:
    """What a resource still has to make in a horizon week (``RESOURCE_LOAD``) above its capacity.
    Absorbable when earlier fence weeks of the same resource have the spare capacity."""
    sql = f"""
with {RUN}, {RESOURCE_LOAD},
weekly as (
    select c.location_id, c.resource_id, c.week_start, {_week_index('c.week_start')} as week_index,
           c.capacity_qty, coalesce(load.load_qty, 0) as load_qty, load.unit_price, load.unit_cost,
           run.time_fence_weeks
    from staging.stg_resource_capacity as c
    cross join run
    left join resource_load as load on load.location_id = c.location_id and load.resource_id = c.resource_id
        and load.week_index = {_week_index('c.week_start')}
    where {_week_index('c.week_start')} between 0 and run.horizon_weeks - 1
),
with_spare as (
    select *,
        coalesce(sum(case when week_index < time_fence_weeks then greatest(capacity_qty - load_qty, 0) end) over (
            partition by location_id, resource_id order by week_index
            rows between unbounded preceding and 1 preceding), 0) as spare_before
    from weekly
)
select
    'capacity_overload' as exception_type, null as sku_id, location_id, week_start, week_index,
    resource_id as reference_id, load_qty - capacity_qty as qty, unit_price, unit_cost, 1 as weeks_affected,
    (week_index < time_fence_weeks and spare_before >= load_qty - capacity_qty) as absorbable,
    'Resource ' || resource_id || ' at ' || location_id || ' has ' || {_units('load_qty')} || ' to make in the week of '
        || strftime(week_start, '%Y-%m-%d') || ' against a capacity of ' || {_num('capacity_qty')} || ': '
        || {_units('load_qty - capacity_qty')} || ' over (' || case when capacity_qty > 0
            then printf('%+.0f', 100 * (load_qty / capacity_qty - 1)) || '%' else 'no capacity that week' end
        || '); ' || {_units('spare_before')} || ' are free in earlier fence weeks.' as explanation
from with_spare
where load_qty > capacity_qty * (1 + ?) and load_qty - capacity_qty >= ?
"""
    return _frame(conn, sql, [config.capacity_overload_rel, config.capacity_min_units])


def quality_hold(conn: duckdb.DuckDBPyConnection, config: DetectionConfig) -> pd.DataFrame:
    """Stock on quality hold where the projection without it falls materially below safety stock (or
    below zero) inside the fence: the hold causes or threatens a shortage. Only held stock that is on hand
    can be released: a count holding more than it has (a reconciliation finding, hold_above_on_hand)
    releases at most its on-hand stock, and one with nothing on hand raises no hold exception."""
    sql = f"""
with {RUN},
short as (
    select *, safety_stock_qty - projected_available_qty as gap,
           least(quality_hold_qty, greatest(on_hand_qty, 0)) as releasable_qty
    from marts.sku_location_week
    where inside_time_fence and releasable_qty >= ?
      and (safety_stock_qty - projected_available_qty > greatest(? * safety_stock_qty, ?)
           or projected_available_qty < -?)
),
agg as (
    select sku_id, location_id, min(week_index) as first_week, count(*) as weeks_affected,
           max(quality_hold_qty) as hold_qty, max(on_hand_qty) as on_hand_qty, max(releasable_qty) as releasable_qty,
           max(gap) as gap, arg_min(week_start, week_index) as week_start,
           any_value(unit_price) as unit_price, any_value(unit_cost) as unit_cost
    from short group by sku_id, location_id
)
select
    'quality_hold' as exception_type, sku_id, location_id, week_start, first_week as week_index, null as reference_id,
    least(releasable_qty, gap) as qty, unit_price, unit_cost, weeks_affected, null as absorbable,
    case when hold_qty > on_hand_qty
         then {_units('hold_qty')} || ' of ' || sku_id || ' at ' || location_id || ' are on quality hold, more than the '
              || {_num('on_hand_qty')} || ' on hand'
         else {_num('hold_qty')} || ' of ' || {_units('on_hand_qty')} || ' of ' || sku_id || ' at ' || location_id
              || ' are on quality hold' end
        || '; without them the projection falls up to ' || {_units('gap')}
        || ' below safety stock from the week of ' || strftime(week_start, '%Y-%m-%d')
        || case when releasable_qty >= gap then ': releasing ' || {_units('gap')} || ' would cover it.'
                else ': releasing ' || case when releasable_qty < hold_qty then 'the ' || {_num('releasable_qty')} || ' on hand'
                                            else 'all ' || {_num('hold_qty')} end
                     || ' would cover that much of it; the rest needs other supply.'
           end as explanation
from agg
"""
    return _frame(conn, sql, [config.quality_hold_min_units, config.safety_stock_rel, config.safety_stock_min_units,
                              config.stockout_min_units])


# --------------------------------------------------------------------------- data quality


def data_quality(conn: duckdb.DuckDBPyConnection, config: DetectionConfig) -> pd.DataFrame:
    """Bad data is itself an exception: one per source file with quarantined rows (a whole rejected
    file counts as 50 rows), one per reconciliation finding, one per stale source."""
    sql = f"""
with quarantined as (
    -- a row rejected for several reasons has a quarantine line per reason: rows are counted once
    select source, file, count(distinct row_number) as rows, count(*) filter (where row_number is null) as whole_files,
           rtrim(any_value(reason), '.') as example_reason  -- the explanation adds its own stop
    from raw.quarantine group by source, file
),
from_quarantine as (
    select 'data_quality' as exception_type, null as sku_id, null as location_id, null as week_start,
           null as week_index, source || '/' || file as reference_id,
           case when whole_files > 0 then 50 else rows end as qty, null as unit_price, ? as unit_cost,
           1 as weeks_affected, true as absorbable,
           case when whole_files > 0 then 'The whole file ' || source || '/' || file || ' was rejected: ' || example_reason
                else {_counted('rows', 'row')} || ' of ' || source || '/' || file
                     || case when rows = 1 then ' was' else ' were' end || ' quarantined (e.g. ' || example_reason || ')'
           end || '; see data_quality_issues.' as explanation
    from quarantined
),
findings as (
    select 'data_quality' as exception_type, f.sku_id, f.location_id, null as week_start, null as week_index,
           -- the source too: a sales-order line and a PO line may share a reference ('100:1'), and two findings
           -- must stay two exceptions
           f.finding_type || ':' || f.source || ':' || f.reference_id as reference_id, coalesce(f.qty, 0) as qty,
           skus.unit_price, skus.unit_cost, 1 as weeks_affected, true as absorbable,
           'Reconciliation finding (' || f.finding_type || '): ' || f.detail as explanation
    from marts.reconciliation_findings as f left join staging.stg_skus as skus using (sku_id)
)
select * from from_quarantine
union all by name select * from findings
"""
    # the freshness check's verdict per source, read once for the stale sources and the stale counts
    limits = QualityLimits(config.freshness_days)
    healths = read_source_health(conn)
    fresh = {source: freshness(health, limits).passed for source, health in healths.items()}
    parts = [_frame(conn, sql, [config.dq_value_per_row]),
             _stale_sources([healths[source] for source, passed in fresh.items() if not passed], limits, config)]
    if fresh.get("inventory_snapshots"):  # a stale source is one exception already, its counts none
        parts.append(_stale_stock_counts(conn, limits, config))
    found = [part.dropna(axis=1, how="all") for part in parts if not part.empty]  # all-NA columns would blur dtypes
    frame = pd.concat(found, ignore_index=True).reindex(columns=CANDIDATE_COLUMNS) if found else parts[0]
    frame["week_start"] = pd.to_datetime(frame["week_start"]).dt.date
    return frame


def _stale_sources(stale: list[SourceHealth], limits: QualityLimits, config: DetectionConfig) -> pd.DataFrame:
    """One ``data_quality`` candidate per source the run's freshness check fails (``stale``): the check's own
    verdict (``ingest.health.freshness``), so a source with no usable extract at all is one too."""
    def explanation(health: SourceHealth) -> str:
        if health.latest_accepted is None:
            return f"No extract of {health.source} on or before as_of holds a usable row: its data is missing."
        age, limit = health.age_days, limits.freshness_limit(health.source)
        return (f"The newest usable extract of {health.source} is from {health.latest_accepted}, "
                f"{age:,} day{'s' * (age != 1)} before as_of (limit {limit:,} day{'s' * (limit != 1)}): "
                "its data may be stale.")

    frame = pd.DataFrame({
        "exception_type": "data_quality", "reference_id": [f"freshness:{health.source}" for health in stale],
        "qty": 50, "unit_cost": config.dq_value_per_row, "weeks_affected": 1, "absorbable": True,
        "explanation": [explanation(health) for health in stale],
    })
    return frame.reindex(columns=CANDIDATE_COLUMNS)


def _stale_stock_counts(conn: duckdb.DuckDBPyConnection, limits: QualityLimits, config: DetectionConfig) -> pd.DataFrame:
    """One ``data_quality`` candidate per location whose latest stock count is older than the freshness limit of
    ``inventory_snapshots``, in a fresh extract of that source (a fresh file of old counts): the projection starts
    from that count and misses every receipt and shipment since."""
    limit = limits.freshness_limit("inventory_snapshots")
    sql = f"""
with counts as (
    select location_id, max(snapshot_date) as counted_on, datediff('day', max(snapshot_date), any_value(as_of)) as age
    from intermediate.int_available_stock group by location_id
)
select 'data_quality' as exception_type, location_id, 'stock_count:' || location_id as reference_id, 50 as qty,
       ? as unit_cost, 1 as weeks_affected, true as absorbable,
       'The latest stock count at ' || location_id || ' is from ' || strftime(counted_on, '%Y-%m-%d') || ', '
       || {_counted('age', 'day')} || ' before as_of (limit ' || {_counted(str(limit), 'day')}
       || '): the projection starts from it and misses every receipt and shipment since.' as explanation
from counts where age > {limit}
order by location_id
"""
    return _frame(conn, sql, [config.dq_value_per_row])


RULES: dict[str, Callable[[duckdb.DuckDBPyConnection, DetectionConfig], pd.DataFrame]] = {
    "demand_above_plan": demand_above_plan,
    "demand_below_plan": demand_below_plan,
    "projected_stockout": projected_stockout,
    "below_safety_stock": below_safety_stock,
    "excess_inventory": excess_inventory,
    "late_purchase_order": late_purchase_order,
    "late_transfer": late_transfer,
    "production_shortfall": production_shortfall,
    "capacity_overload": capacity_overload,
    "quality_hold": quality_hold,
    "data_quality": data_quality,
}
