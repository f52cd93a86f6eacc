"""The weekly KPIs, one function per definition (``shared/spec/marts.md``, ``docs/kpis.md``).

Every function takes a DuckDB connection holding the staging views
(``staging.stg_*``), the committed plan (``intermediate.int_committed_plan``)
and, when the detect stage has run, ``marts.exception_history``, plus the run
date ``as_of``. It returns a long frame with ``KPI_COLUMNS``: one row per past
week W (``week_start + 6 <= as_of``) and scope (``total`` with a NULL
``scope_id``, each ``product_family``, each ``location``). A scope-week whose
denominator is 0 or NULL gets no row (never a division by zero).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

from soe_assets.detect.lifecycle import LAPSED_SQL
from soe_assets.warehouse import built_from_latest_ingest, published_history, record_built, table_exists

KPI_COLUMNS = ["week_start", "kpi_name", "scope_type", "scope_id", "value", "numerator", "denominator"]

# Plan vs actual per customer-serving SKU-location and past week, shared by the KPIs and the feedback stage.
PLAN_VS_ACTUAL_TABLE = "intermediate.plan_vs_actual_weekly"

TRAILING_WEEKS = 13  # inventory_turns: COGS and average inventory over the last 13 weeks
WEEKS_PER_YEAR = 52


def _last_past_week(as_of: date) -> str:
    """SQL for the Monday of the last week that ended on or before as_of."""
    return f"(date_trunc('week', DATE '{as_of.isoformat()}' - INTERVAL 6 DAY))::DATE"


def _frame(conn: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    frame = conn.execute(sql).df()
    frame["week_start"] = pd.to_datetime(frame["week_start"]).dt.date
    return frame


# Fractional quantities and money summed as DOUBLE depend on the order DuckDB's threads add them up in, so the
# same run twice could differ in the last digits; summed as decimals (10 places) they are exact and repeatable.
EXACT = "DECIMAL(38, 10)"


def _exact_sum(column: str) -> str:
    return f"sum(CAST({column} AS {EXACT}))"


@dataclass(frozen=True)
class Measure:
    """A KPI's value, numerator and denominator: SQL aggregates over a base relation's rows."""

    value: str
    numerator: str
    denominator: str

    @classmethod
    def ratio(cls, num: str = "num", den: str = "den") -> Measure:
        """Σ num / Σ den of two base columns, summed exactly."""
        return cls(f"{_exact_sum(num)} / {_exact_sum(den)}", _exact_sum(num), _exact_sum(den))


def _rollup(conn: duckdb.DuckDBPyConnection, base_sql: str, kpi_name: str, as_of: date,
            measure: Measure = Measure.ratio()) -> pd.DataFrame:
    """Aggregate a base relation (``week_start, product_family, location_id, num, den``) to the three scopes."""
    return _rollup_kpis(conn, base_sql, {kpi_name: measure}, as_of)


def _rollup_kpis(conn: duckdb.DuckDBPyConnection, base_sql: str, measures: dict[str, Measure],
                 as_of: date) -> pd.DataFrame:
    """Aggregate a base relation (``week_start, product_family, location_id`` and the measures' columns) to the
    three scopes, every KPI of ``measures`` in one grouping of its rows (KPIs of the same rows share one scan).

    Weeks not yet ended on ``as_of`` are dropped; so is every scope-week whose
    denominator is 0 or NULL.
    """
    aggregates = ",\n                ".join(
        f"{m.value} AS value_{i}, {m.numerator} AS numerator_{i}, {m.denominator} AS denominator_{i}"
        for i, m in enumerate(measures.values())
    )
    per_kpi = "\n        UNION ALL\n".join(
        f"""        SELECT week_start, '{name}' AS kpi_name, scope_type, scope_id,
               CAST(value_{i} AS DOUBLE) AS value, CAST(numerator_{i} AS DOUBLE) AS numerator,
               CAST(denominator_{i} AS DOUBLE) AS denominator
        FROM grouped
        WHERE denominator_{i} IS NOT NULL AND denominator_{i} <> 0"""
        for i, name in enumerate(measures)
    )
    sql = f"""
        WITH base AS ({base_sql}),
        past AS (SELECT * FROM base WHERE week_start <= {_last_past_week(as_of)}),
        grouped AS (
            SELECT
                week_start,
                CASE
                    WHEN grouping(product_family) = 0 THEN 'product_family'
                    WHEN grouping(location_id) = 0 THEN 'location'
                    ELSE 'total'
                END AS scope_type,
                CASE
                    WHEN grouping(product_family) = 0 THEN product_family
                    WHEN grouping(location_id) = 0 THEN location_id
                END AS scope_id,
                {aggregates}
            FROM past
            GROUP BY GROUPING SETS ((week_start), (week_start, product_family), (week_start, location_id))
        ),
        kpis AS (
{per_kpi}
        )
        SELECT * FROM kpis
        WHERE scope_type = 'total' OR scope_id IS NOT NULL
        ORDER BY kpi_name, week_start, scope_type, scope_id
    """
    return _frame(conn, sql)


_FAMILY = "LEFT JOIN staging.stg_skus AS skus USING (sku_id)"


@dataclass(frozen=True)
class Sources:
    """The relations several KPIs share: plan vs actual per SKU-location-week, stock per week, family and location.

    Each is SQL usable after ``FROM``: a parenthesised query by default (a KPI
    function called on its own), a temp table when ``compute_kpis`` has
    materialised it once for all of them.
    """

    plan_vs_actual: str
    stock: str

    @classmethod
    def inline(cls, as_of: date) -> Sources:
        return cls(f"({plan_vs_actual_sql(last_week=_last_past_week(as_of))})", f"({_inventory_weeks_sql(as_of)})")


# --- delivery -------------------------------------------------------------------------------


def delivery_kpis(conn: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    """``otif_line_rate`` and ``fill_rate_units``, which judge the same lines: one scan of the order lines.

    Of the non-cancelled sales-order lines promised in W: OTIF = the share shipped in
    full on or before the promised date; fill rate = units shipped on or before the
    promised date (capped at ordered) / units ordered.
    """
    base = f"""
        SELECT date_trunc('week', so.promised_date)::DATE AS week_start, skus.product_family, so.location_id,
               CASE WHEN so.shipped_qty >= so.ordered_qty AND so.ship_date <= so.promised_date
                    THEN 1.0 ELSE 0.0 END AS lines_on_time,
               1.0 AS lines,
               CASE WHEN so.ship_date <= so.promised_date
                    THEN least(coalesce(so.shipped_qty, 0), so.ordered_qty) ELSE 0.0 END AS units_on_time,
               so.ordered_qty AS units
        FROM staging.stg_sales_orders AS so {_FAMILY}
        WHERE so.status <> 'cancelled' AND so.promised_date IS NOT NULL
    """
    return _rollup_kpis(conn, base, {"otif_line_rate": Measure.ratio("lines_on_time", "lines"),
                                     "fill_rate_units": Measure.ratio("units_on_time", "units")}, as_of)


def _one(frame: pd.DataFrame, kpi_name: str) -> pd.DataFrame:
    return frame[frame["kpi_name"] == kpi_name].reset_index(drop=True)


def otif_line_rate(conn: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    """Share of non-cancelled sales-order lines promised in W shipped in full on or before the promised date."""
    return _one(delivery_kpis(conn, as_of), "otif_line_rate")


def fill_rate_units(conn: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    """Units shipped on or before the promised date (capped at ordered) / units ordered, same lines as OTIF."""
    return _one(delivery_kpis(conn, as_of), "fill_rate_units")


def schedule_adherence(conn: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    """Production units completed on or before the planned finish (capped at planned) / units planned."""
    base = f"""
        SELECT date_trunc('week', mo.planned_finish_date)::DATE AS week_start, skus.product_family, mo.location_id,
               CASE WHEN mo.actual_finish_date <= mo.planned_finish_date
                    THEN least(coalesce(mo.completed_qty, 0), mo.planned_qty) ELSE 0.0 END AS num,
               mo.planned_qty AS den
        FROM staging.stg_production_orders AS mo {_FAMILY}
        WHERE mo.status <> 'cancelled' AND mo.planned_finish_date IS NOT NULL
    """
    return _rollup(conn, base, "schedule_adherence", as_of)


def supplier_on_time_rate(conn: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    """Share of non-cancelled PO lines promised in W received in full on or before the promised date."""
    base = f"""
        SELECT date_trunc('week', po.promised_date)::DATE AS week_start, skus.product_family, po.location_id,
               CASE WHEN po.received_qty >= po.ordered_qty AND po.received_date <= po.promised_date
                    THEN 1.0 ELSE 0.0 END AS num,
               1.0 AS den
        FROM staging.stg_purchase_orders AS po {_FAMILY}
        WHERE po.status <> 'cancelled' AND po.promised_date IS NOT NULL
    """
    return _rollup(conn, base, "supplier_on_time_rate", as_of)


# --- forecast accuracy ----------------------------------------------------------------------


def plan_vs_actual_sql(first_week: str | None = None, last_week: str | None = None) -> str:
    """Plan and actual demand per customer-serving SKU-location and week (a missing side counts 0).

    actual = ordered units of non-cancelled sales-order lines by requested_date
    + POS units by sale_date; plan = the committed plan's demand_qty.
    Customer-serving = any non-cancelled sales-order line or any POS sale: a
    SKU-location whose only order was cancelled never had demand, so its plan is
    not judged against it (it would read as 100 % over-forecast).
    ``first_week`` / ``last_week`` (SQL date expressions, optional) keep only
    those weeks, filtered before the join rather than after it.
    """
    bounds = [f"week_start >= {first_week}" if first_week else "", f"week_start <= {last_week}" if last_week else ""]
    in_weeks = " AND ".join(b for b in bounds if b) or "TRUE"
    return f"""
        WITH serving AS (
            SELECT DISTINCT sku_id, location_id FROM staging.stg_sales_orders WHERE status <> 'cancelled'
            UNION
            SELECT DISTINCT sku_id, location_id FROM staging.stg_pos_sales
        ),
        actual_rows AS (
            SELECT sku_id, location_id, date_trunc('week', requested_date)::DATE AS week_start, ordered_qty AS qty
            FROM staging.stg_sales_orders
            WHERE status <> 'cancelled' AND requested_date IS NOT NULL
            UNION ALL
            SELECT sku_id, location_id, date_trunc('week', sale_date)::DATE AS week_start, qty
            FROM staging.stg_pos_sales
        ),
        actual AS (
            SELECT sku_id, location_id, week_start, sum(qty) AS actual_qty FROM actual_rows
            WHERE {in_weeks} GROUP BY ALL
        ),
        plan AS (
            -- one row per SKU-location-week already (the committed plan's uniqueness test runs before)
            SELECT plan.sku_id, plan.location_id, plan.week_start, plan.demand_qty AS plan_qty
            FROM intermediate.int_committed_plan AS plan
            SEMI JOIN serving USING (sku_id, location_id)
            WHERE {in_weeks}
        ),
        joined AS (
            SELECT
                coalesce(plan.sku_id, actual.sku_id) AS sku_id,
                coalesce(plan.location_id, actual.location_id) AS location_id,
                coalesce(plan.week_start, actual.week_start) AS week_start,
                coalesce(plan.plan_qty, 0.0) AS plan_qty,
                coalesce(actual.actual_qty, 0.0) AS actual_qty
            FROM plan
            FULL OUTER JOIN actual USING (sku_id, location_id, week_start)
        )
        SELECT joined.*, skus.product_family
        FROM joined {_FAMILY}
    """


def forecast_accuracy_kpis(conn: duckdb.DuckDBPyConnection, as_of: date,
                           sources: Sources | None = None) -> pd.DataFrame:
    """``forecast_wape``, ``forecast_bias`` and ``forecast_mape`` over the same plan-vs-actual rows, one scan.

    WAPE = sum |actual - plan| / sum actual; bias = sum (plan - actual) / sum actual
    (positive = over-forecast); MAPE = mean of |actual - plan| / actual over the
    SKU-locations of W with actual > 0.
    """
    base = f"""
        SELECT week_start, product_family, location_id, abs(actual_qty - plan_qty) AS abs_error,
               plan_qty - actual_qty AS error, actual_qty,
               CASE WHEN actual_qty > 0 THEN abs(actual_qty - plan_qty) / actual_qty END AS pct_error,
               CASE WHEN actual_qty > 0 THEN 1.0 END AS judged
        FROM {(sources or Sources.inline(as_of)).plan_vs_actual}
    """
    return _rollup_kpis(conn, base, {"forecast_wape": Measure.ratio("abs_error", "actual_qty"),
                                     "forecast_bias": Measure.ratio("error", "actual_qty"),
                                     "forecast_mape": Measure.ratio("pct_error", "judged")}, as_of)


def forecast_wape(conn: duckdb.DuckDBPyConnection, as_of: date, sources: Sources | None = None) -> pd.DataFrame:
    """sum |actual - plan| / sum actual over the customer-serving SKU-locations of W."""
    return _one(forecast_accuracy_kpis(conn, as_of, sources), "forecast_wape")


def forecast_bias(conn: duckdb.DuckDBPyConnection, as_of: date, sources: Sources | None = None) -> pd.DataFrame:
    """sum (plan - actual) / sum actual: positive = over-forecast."""
    return _one(forecast_accuracy_kpis(conn, as_of, sources), "forecast_bias")


def forecast_mape(conn: duckdb.DuckDBPyConnection, as_of: date, sources: Sources | None = None) -> pd.DataFrame:
    """Mean of |actual - plan| / actual over the SKU-locations of W with actual > 0."""
    return _one(forecast_accuracy_kpis(conn, as_of, sources), "forecast_mape")


# --- exceptions -----------------------------------------------------------------------------


def exception_resolution_days(conn: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    """Median days from first detection to resolution of the exceptions resolved in W.

    One per resolution: an exception that comes back after it was resolved is detected anew
    (``first_detected_on``) and resolved again, each resolution in its own week, so a past week's
    figure never changes. ``numerator`` = total days, ``denominator`` = resolutions; ``value`` is
    the median (not their ratio). An exception whose week ended before anything resolved it (a
    resource-week's overload, ``LAPSED_SQL``) is no resolution. Empty until ``marts.exception_history``
    exists.
    """
    if not table_exists(conn, "marts", "exception_history"):
        return pd.DataFrame(columns=KPI_COLUMNS)
    base = f"""
        WITH resolved AS (
            SELECT exception_id, CAST(resolved_on AS DATE) AS resolved_on,
                   any_value(sku_id) AS sku_id, any_value(location_id) AS location_id,
                   min(CAST(first_detected_on AS DATE)) AS first_detected_on
            FROM {published_history(conn, "marts.exception_history", as_of)}
            WHERE resolved_on IS NOT NULL AND NOT coalesce({LAPSED_SQL}, false)
            GROUP BY exception_id, CAST(resolved_on AS DATE)
        )
        SELECT date_trunc('week', resolved_on)::DATE AS week_start, skus.product_family,
               nullif(resolved.location_id, '') AS location_id,
               CAST(date_diff('day', first_detected_on, resolved_on) AS DOUBLE) AS days
        FROM resolved {_FAMILY}
    """
    return _rollup(
        conn, base, "exception_resolution_days", as_of,
        Measure(value="median(days)", numerator="sum(days)", denominator="CAST(count(days) AS DOUBLE)"),
    )


# --- working capital ------------------------------------------------------------------------


def _inventory_weeks_sql(as_of: date) -> str:
    """Each past week from the first snapshot's week: every SKU-location's latest snapshot on or before its Sunday,
    summed per product family and location.

    Every KPI reading it sums stock over its scopes, so the sum is built from
    changes: a snapshot counts from the week it falls in, as its difference to
    the SKU-location's previous snapshot, and a running sum of those
    differences over the weeks gives each week's stock. This needs one ordered
    pass over the snapshots instead of matching every SKU-location-week to its
    latest snapshot (at 10M SKU-location-weeks 2-3 s against 5-6 s).
    """
    return f"""
        WITH bounds AS (
            SELECT date_trunc('week', min(snapshot_date))::DATE AS first_week, {_last_past_week(as_of)} AS last_week
            FROM staging.stg_inventory_snapshots
        ),
        changes AS (
            SELECT date_trunc('week', snap.snapshot_date)::DATE AS week_start, snap.sku_id, snap.location_id,
                   snap.on_hand_qty - lag(snap.on_hand_qty, 1, 0.0) OVER (
                       PARTITION BY snap.sku_id, snap.location_id ORDER BY snap.snapshot_date
                   ) AS on_hand_change
            FROM staging.stg_inventory_snapshots AS snap
        ),
        weekly_changes AS (
            SELECT changes.week_start, skus.product_family, changes.location_id,
                   {_exact_sum('changes.on_hand_change')} AS on_hand_change,
                   {_exact_sum('changes.on_hand_change * coalesce(skus.unit_cost, 0.0)')} AS value_change
            FROM changes {_FAMILY}
            WHERE changes.week_start <= (SELECT last_week FROM bounds)
            GROUP BY ALL
        ),
        scopes AS (
            SELECT product_family, location_id, min(week_start) AS first_week FROM weekly_changes GROUP BY ALL
        ),
        weeks AS (
            SELECT CAST(unnest(generate_series(first_week, last_week, INTERVAL 7 DAY)) AS DATE) AS week_start
            FROM bounds WHERE first_week <= last_week
        ),
        filled AS (
            SELECT weeks.week_start, scopes.product_family, scopes.location_id,
                   coalesce(weekly_changes.on_hand_change, 0.0) AS on_hand_change,
                   coalesce(weekly_changes.value_change, 0.0) AS value_change
            FROM weeks
            INNER JOIN scopes ON weeks.week_start >= scopes.first_week
            LEFT JOIN weekly_changes ON weekly_changes.week_start = weeks.week_start
                AND weekly_changes.product_family IS NOT DISTINCT FROM scopes.product_family
                AND weekly_changes.location_id = scopes.location_id
        )
        SELECT week_start, product_family, location_id,
               sum(on_hand_change) OVER scope_weeks AS on_hand_qty,
               sum(value_change) OVER scope_weeks AS stock_value
        FROM filled
        WINDOW scope_weeks AS (PARTITION BY product_family, location_id ORDER BY week_start
                               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    """


def inventory_value(conn: duckdb.DuckDBPyConnection, as_of: date, sources: Sources | None = None) -> pd.DataFrame:
    """Σ on_hand_qty × unit_cost at the end of W (each SKU-location's latest snapshot on or before W's Sunday).

    A level, not a ratio: ``value`` = ``numerator``, ``denominator`` = 1.
    """
    base = f"""
        SELECT week_start, product_family, location_id, stock_value AS num, 1.0 AS den
        FROM {(sources or Sources.inline(as_of)).stock}
    """
    level = _exact_sum("num")
    return _rollup(conn, base, "inventory_value", as_of, Measure(value=level, numerator=level, denominator="1.0"))


def days_of_supply(conn: duckdb.DuckDBPyConnection, as_of: date, sources: Sources | None = None) -> pd.DataFrame:
    """On-hand units at the end of W / average daily actual demand of W (actual demand / 7).

    Actual demand as for forecast accuracy (non-cancelled lines by
    requested_date + POS), of the product families and locations whose stock
    is known that week (from their first snapshot's week, as for
    ``inventory_value``): a store never counted has unknown stock, not none,
    and its demand beside no stock read as 0 days. No row where W had no such
    demand in the scope.
    """
    sources = sources or Sources.inline(as_of)
    base = f"""
        WITH stock AS (SELECT * FROM {sources.stock}),
        demand AS (
            SELECT pva.week_start, pva.product_family, pva.location_id, pva.actual_qty
            FROM {sources.plan_vs_actual} AS pva
            INNER JOIN stock ON stock.week_start = pva.week_start
                AND stock.product_family IS NOT DISTINCT FROM pva.product_family
                AND stock.location_id = pva.location_id
        )
        SELECT week_start, product_family, location_id, on_hand_qty AS num, 0.0 AS den FROM stock
        UNION ALL
        SELECT week_start, product_family, location_id, 0.0 AS num, actual_qty AS den FROM demand
    """
    # the demand summed exactly, then a day's share of it (each row's share rounded to the sum's 10 places
    # left the value off in its last digits: 19 / 7 is no decimal)
    daily_demand = f"{_exact_sum('den')} / 7.0"
    return _rollup(conn, base, "days_of_supply", as_of,
                   Measure(value=f"{_exact_sum('num')} / ({daily_demand})", numerator=_exact_sum("num"),
                           denominator=daily_demand))


def inventory_turns(conn: duckdb.DuckDBPyConnection, as_of: date, sources: Sources | None = None) -> pd.DataFrame:
    """Annualised turns: COGS of the trailing 13 weeks × 52 / n_weeks ÷ average inventory value of those weeks.

    COGS = min(shipped_qty, ordered_qty) × unit_cost of non-cancelled
    sales-order lines by ship_date + POS qty × unit_cost by sale_date. The trailing window holds W
    and up to 12 earlier weeks, never before the scope's own first snapshot
    week (n_weeks <= 13): a week before it has no known stock, and counting it
    as zero would dilute the average of a location or family that started
    later than the network; its COGS stays out too, in every scope: COGS counts
    only where its family-location's stock is known that week (as the demand of
    ``days_of_supply``), so a store never counted adds no sales to the total's
    turns over stock that leaves it out. ``numerator`` = annualised COGS,
    ``denominator`` = average inventory value.
    """
    sources = sources or Sources.inline(as_of)
    sql = f"""
        WITH cogs_rows AS (
            SELECT date_trunc('week', so.ship_date)::DATE AS week_start, skus.product_family, so.location_id,
                   CAST(least(coalesce(so.shipped_qty, 0), so.ordered_qty) * coalesce(skus.unit_cost, 0.0) AS {EXACT})
                       AS cogs
            FROM staging.stg_sales_orders AS so {_FAMILY}
            WHERE so.status <> 'cancelled' AND so.ship_date IS NOT NULL
            UNION ALL
            SELECT date_trunc('week', pos.sale_date)::DATE, skus.product_family, pos.location_id,
                   CAST(pos.qty * coalesce(skus.unit_cost, 0.0) AS {EXACT})
            FROM staging.stg_pos_sales AS pos {_FAMILY}
        ),
        base AS (
            SELECT week_start, product_family, location_id, stock_value, 0.0 AS cogs, TRUE AS stocked
            FROM {sources.stock}
            UNION ALL
            SELECT week_start, product_family, location_id, 0.0, cogs, FALSE FROM cogs_rows
            WHERE EXISTS (SELECT 1 FROM {sources.stock} AS known
                          WHERE known.week_start = cogs_rows.week_start AND known.location_id = cogs_rows.location_id
                            AND known.product_family IS NOT DISTINCT FROM cogs_rows.product_family)
        ),
        scoped AS (
            SELECT week_start,
                   CASE WHEN grouping(product_family) = 0 THEN 'product_family'
                        WHEN grouping(location_id) = 0 THEN 'location' ELSE 'total' END AS scope_type,
                   CASE WHEN grouping(product_family) = 0 THEN product_family
                        WHEN grouping(location_id) = 0 THEN location_id END AS scope_id,
                   sum(stock_value) AS stock_value, sum(cogs) AS cogs, bool_or(stocked) AS stocked
            FROM base
            GROUP BY GROUPING SETS ((week_start), (week_start, product_family), (week_start, location_id))
        ),
        trail AS (
            -- stocked: a week from the scope's first snapshot on (the stock relation has a row for each of them)
            SELECT week_start, scope_type, scope_id,
                   sum(cogs) OVER w AS cogs, avg(stock_value) OVER w AS avg_stock, count(*) OVER w AS n_weeks
            FROM scoped
            WHERE stocked AND (scope_type = 'total' OR scope_id IS NOT NULL)
            WINDOW w AS (PARTITION BY scope_type, scope_id ORDER BY week_start
                         RANGE BETWEEN INTERVAL {7 * (TRAILING_WEEKS - 1)} DAY PRECEDING AND CURRENT ROW)
        )
        SELECT week_start, 'inventory_turns' AS kpi_name, scope_type, scope_id,
               CAST(cogs * {WEEKS_PER_YEAR} / n_weeks / avg_stock AS DOUBLE) AS value,
               CAST(cogs * {WEEKS_PER_YEAR} / n_weeks AS DOUBLE) AS numerator,
               CAST(avg_stock AS DOUBLE) AS denominator
        FROM trail
        WHERE avg_stock > 0
        ORDER BY week_start, scope_type, scope_id
    """
    return _frame(conn, sql)


# Every KPI, by the function computing it with the others of its rows (one scan of them), and whether that
# function reads the relations ``compute_kpis`` materialises once (``Sources``).
KPI_GROUPS: tuple[tuple[Callable[..., pd.DataFrame], bool], ...] = (
    (delivery_kpis, False),
    (schedule_adherence, False),
    (supplier_on_time_rate, False),
    (forecast_accuracy_kpis, True),
    (exception_resolution_days, False),
    (inventory_value, True),
    (days_of_supply, True),
    (inventory_turns, True),
)

KPI_TYPES = {
    "week_start": "DATE", "kpi_name": "VARCHAR", "scope_type": "VARCHAR", "scope_id": "VARCHAR",
    "value": "DOUBLE", "numerator": "DOUBLE", "denominator": "DOUBLE", "as_of": "DATE",
}


def write_plan_vs_actual(conn: duckdb.DuckDBPyConnection, as_of: date, table: str = PLAN_VS_ACTUAL_TABLE) -> int:
    """Materialise plan vs actual of every past week (``plan_vs_actual_sql``) as ``table``, stamped with
    ``as_of``; returns its row count.

    The forecast-accuracy KPIs and the S&OP bias feedback both read it: on a
    large network it is the costliest relation either computes.
    """
    conn.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT *, DATE '{as_of.isoformat()}' AS as_of "
        f"FROM ({plan_vs_actual_sql(last_week=_last_past_week(as_of))}) AS pva"
    )
    record_built(conn, table)
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def current_plan_vs_actual(conn: duckdb.DuckDBPyConnection, as_of: date,
                           table: str = PLAN_VS_ACTUAL_TABLE) -> str | None:
    """``table`` if it holds plan vs actual for ``as_of`` built from the warehouse's current ingest, else None: a
    reader run on its own after a newer ingest (the S&OP sensor, a single asset from the UI; also one of the same
    day) then computes it itself rather than read old weeks."""
    schema, name = table.split(".")
    if not table_exists(conn, schema, name) or not built_from_latest_ingest(conn, table):
        return None
    written = conn.execute(f"SELECT any_value(as_of) FROM {table}").fetchone()[0]
    return table if written == as_of else None


def compute_kpis(conn: duckdb.DuckDBPyConnection, as_of: date, plan_vs_actual: str | None = None) -> pd.DataFrame:
    """Every KPI, long format, with ``as_of``.

    ``plan_vs_actual`` names a table written by ``write_plan_vs_actual`` for
    this ``as_of``; without it, plan vs actual is materialised here. It and the
    weekly stock (a connection-local temp table) are shared by the six KPIs
    that read them.
    """
    shared = Sources(plan_vs_actual or "_kpi_plan_vs_actual", "_kpi_stock")
    inline = Sources.inline(as_of)
    temporary = {shared.stock: inline.stock}
    if not plan_vs_actual:
        temporary[shared.plan_vs_actual] = inline.plan_vs_actual
    for table, sql in temporary.items():
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {sql}")
    try:
        frames = [frame for fn, reads_shared in KPI_GROUPS
                  if not (frame := fn(conn, as_of, shared) if reads_shared else fn(conn, as_of)).empty]
    finally:
        for table in temporary:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=KPI_COLUMNS)
    result = result[KPI_COLUMNS].copy()
    result["week_start"] = pd.to_datetime(result["week_start"]).dt.date
    result["as_of"] = as_of
    return result.sort_values(["kpi_name", "week_start", "scope_type", "scope_id"], na_position="first").reset_index(
        drop=True
    )
