"""Recurring variance since the previous S&OP cycle (``marts.sop_feedback``).

Each detector is a plain function over the warehouse (staging views, the
committed plan and, when present, ``marts.exception_history`` /
``marts.recommendations``) returning rows in ``FEEDBACK_COLUMNS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist

import duckdb
import numpy as np
import pandas as pd

from soe_assets.kpis.metrics import plan_vs_actual_sql
from soe_assets.network import replenishment_shipments_sql
from soe_assets.warehouse import published_history, table_exists

FEEDBACK_COLUMNS = [
    "sop_cycle", "pattern", "product_family", "sku_id", "location_id", "supplier_id", "resource_id",
    "weeks_observed", "occurrences", "mean_bias", "mean_delay_days", "impact_value",
    "suggested_sop_action", "explanation", "window_start", "as_of",
]
FEEDBACK_TYPES = {
    "sop_cycle": "DATE", "pattern": "VARCHAR", "product_family": "VARCHAR", "sku_id": "VARCHAR",
    "location_id": "VARCHAR", "supplier_id": "VARCHAR", "resource_id": "VARCHAR", "weeks_observed": "INTEGER",
    "occurrences": "INTEGER", "mean_bias": "DOUBLE", "mean_delay_days": "DOUBLE", "impact_value": "DOUBLE",
    "suggested_sop_action": "VARCHAR", "explanation": "VARCHAR", "window_start": "DATE", "as_of": "DATE",
}


@dataclass(frozen=True)
class FeedbackRules:
    """Thresholds of the detectors (documented in docs/kpis.md)."""

    bias_weeks: int = 4  # the latest N past weeks must all be biased the same way
    min_abs_bias: float = 0.10  # and |mean bias| over the window at least this
    # ... and beyond the family's ordinary forecast noise: with tens of thousands of SKU-locations, pure noise
    # puts a few hundred of them 4 weeks in a row on one side by >= 10 %. |Σplan - Σactual| must reach
    # z * sqrt((sigma * Σplan)² / n + max(Σplan, Σactual)) (sigma: std of the weekly relative error
    # (plan - actual) / plan of the family's SKU-location-weeks over the window and the noise_weeks before it;
    # the second term is counting noise), z set so that noise alone is expected to raise at most
    # bias_false_alarms patterns in the whole network (Bonferroni over the SKU-locations tested).
    bias_false_alarms: float = 0.05
    noise_weeks: int = 13
    min_occurrences: int = 3  # late PO lines, short resource-weeks, repeated actions, recurring exceptions
    min_late_share: float = 0.5  # share of a supplier-SKU's PO lines that were late
    min_mean_delay_days: float = 2.0  # and their mean delay: a day of slip (or a short receipt on time) is noise
    min_output_share: float = 0.9  # a resource-week is short when on-time output < 90 % of its load
    lookback_weeks: int = 8  # window when the calendar has no previous cycle


@dataclass(frozen=True)
class Window:
    """The past weeks the feedback looks at: from ``start`` (a Monday) to ``last_week`` (the last ended week)."""

    start: date
    last_week: date
    as_of: date

    @property
    def end(self) -> date:
        """The Sunday of the last ended week: events after it belong to a week still running, which the
        window does not count (its patterns would count more occurrences than weeks observed)."""
        return self.last_week + timedelta(days=6)

    @property
    def weeks(self) -> list[date]:
        count = (self.last_week - self.start).days // 7 + 1
        return [self.start + timedelta(weeks=i) for i in range(max(count, 0))]


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def last_ended_week(as_of: date) -> date:
    """The Monday of the latest complete week: the last that ended on or before ``as_of``."""
    return _monday(as_of - timedelta(days=6))


def feedback_window(as_of: date, previous_cycle: date | None, rules: FeedbackRules = FeedbackRules()) -> Window:
    """Weeks since the previous cycle, but never fewer than ``bias_weeks``."""
    last_week = last_ended_week(as_of)
    shortest = last_week - timedelta(weeks=rules.bias_weeks - 1)
    start = _monday(previous_cycle) if previous_cycle else last_week - timedelta(weeks=rules.lookback_weeks - 1)
    return Window(start=min(start, shortest), last_week=last_week, as_of=as_of)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=FEEDBACK_COLUMNS)


def _texts(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """The named columns as text for an explanation, whatever their type (a missing value reads 'None', as an
    f-string writes it)."""
    return pd.DataFrame({column: frame[column].astype(object).astype(str) for column in columns}, index=frame.index)


def _amounts(values: pd.Series) -> pd.Series:
    """Whole numbers with thousands separators, for an explanation."""
    return values.astype(float).map("{:,.0f}".format)


def _patterns(frame: pd.DataFrame, **columns) -> pd.DataFrame:
    """The feedback rows of a detector: ``columns`` (each a column of ``frame`` or one value), in the mart's
    columns."""
    return pd.DataFrame(columns, index=frame.index).reindex(columns=FEEDBACK_COLUMNS).reset_index(drop=True)


# --- forecast bias --------------------------------------------------------------------------


def bias_z(tested: int, rules: FeedbackRules) -> float:
    """The z-score a SKU-location's mean bias must reach so that noise alone raises ~``bias_false_alarms`` patterns."""
    if tested <= 0:
        return 0.0
    return NormalDist().inv_cdf(1.0 - min(rules.bias_false_alarms / (2.0 * tested), 0.5))


def persistent_forecast_bias(conn: duckdb.DuckDBPyConnection, window: Window, rules: FeedbackRules,
                             plan_vs_actual: str | None = None) -> pd.DataFrame:
    """SKU-locations whose plan - actual had the same sign in each of the latest ``bias_weeks`` weeks (actual:
    customer demand, as for forecast accuracy, plus the replenishment shipped down the network).

    ``plan_vs_actual`` names a table of every past week written by the KPI
    stage (``write_plan_vs_actual``); without it, the window's weeks are computed here.

    Set-based: a week with neither plan nor actual has sign 0 and breaks the run,
    exactly as if the series were filled with zeros. The mean bias over the
    window must reach ``min_abs_bias``, and the gap |Σplan − Σactual| must
    reach ``z * sqrt((noise * Σplan)² / weeks + max(Σplan, Σactual))``: ``noise``
    is the standard deviation of the weekly relative error (plan − actual) / plan
    around each SKU-location's own mean error, pooled over its product family
    (window and ``noise_weeks`` before it, from the first week with any demand in
    the data), the second term counting noise (Poisson), and ``z`` keeps the
    expected false alarms of the whole network at ``bias_false_alarms`` (see
    ``bias_z``).
    """
    recent_start = window.last_week - timedelta(weeks=rules.bias_weeks - 1)
    history_start = window.start - timedelta(weeks=rules.noise_weeks)
    n = len(window.weeks)
    first_week, last_week = f"DATE '{history_start}'", f"DATE '{window.last_week}'"
    weeks = (f"SELECT * FROM {plan_vs_actual} WHERE week_start BETWEEN {first_week} AND {last_week}"
             if plan_vs_actual else f"SELECT * FROM ({plan_vs_actual_sql(first_week, last_week)}) AS pva")
    # The plan at a location covers the replenishment it ships down the network too, as detection's demand rules
    # read it: judged against customer demand alone, a DC that replenishes stores would read as over-forecast.
    replenished = (f"SELECT sku_id, location_id, date_trunc('week', ship_date)::DATE AS week_start, sum(qty) AS qty "
                   f"FROM ({replenishment_shipments_sql(f' AND shipments.ship_date BETWEEN {first_week} AND {last_week} + 6')}) "
                   f"GROUP BY ALL")
    frame = conn.execute(
        f"""
        WITH weekly AS MATERIALIZED (
            SELECT pva.* REPLACE (pva.actual_qty + coalesce(replenished.qty, 0.0) AS actual_qty)
            FROM ({weeks}) AS pva
            LEFT JOIN ({replenished}) AS replenished USING (sku_id, location_id, week_start)
        ),
        -- weeks before any demand in the data are unknown, not zero: they would read as 100 % errors
        known AS (
            SELECT sku_id, location_id, product_family, (plan_qty - actual_qty) / plan_qty AS relative_error
            FROM weekly
            WHERE plan_qty > 0 AND week_start >= (SELECT min(week_start) FROM weekly WHERE actual_qty > 0)
        ),
        -- each SKU-location's week-to-week scatter around its own mean error: a persistent bias is the
        -- mean, which must not widen the noise it is judged against
        series AS (
            SELECT product_family, count(*) - 1 AS degrees,
                   count(*) * var_pop(relative_error) AS squares
            FROM known GROUP BY sku_id, location_id, product_family
        ),
        noise AS (
            SELECT product_family, coalesce(sqrt(sum(squares) / nullif(sum(degrees), 0)), 0.0) AS noise
            FROM series GROUP BY product_family
        ),
        scored AS (
            SELECT sku_id, location_id, any_value(product_family) AS product_family,
                   sum(plan_qty) AS plan_sum, sum(actual_qty) AS actual_sum,
                   count(*) FILTER (WHERE week_start >= ? AND plan_qty > actual_qty) AS recent_over,
                   count(*) FILTER (WHERE week_start >= ? AND plan_qty < actual_qty) AS recent_under,
                   count(*) FILTER (WHERE plan_qty > actual_qty) AS weeks_over,
                   count(*) FILTER (WHERE plan_qty < actual_qty) AS weeks_under
            FROM weekly
            WHERE week_start >= ?
            GROUP BY sku_id, location_id
        ),
        tested AS (SELECT scored.*, count(*) OVER () AS tested FROM scored)
        SELECT tested.*, recent_over = ? AS over, coalesce(noise.noise, 0.0) AS noise,
               CASE WHEN actual_sum > 0 THEN (plan_sum - actual_sum) / actual_sum END AS mean_bias,
               CASE WHEN recent_over = ? THEN weeks_over ELSE weeks_under END AS occurrences,
               abs(plan_sum - actual_sum)
                   * CASE WHEN recent_over = ? THEN coalesce(skus.unit_cost, 0.0) ELSE coalesce(skus.unit_price, 0.0) END
                   AS impact_value
        FROM tested
        LEFT JOIN noise ON noise.product_family IS NOT DISTINCT FROM tested.product_family
        LEFT JOIN staging.stg_skus AS skus USING (sku_id)
        WHERE (recent_over = ? OR recent_under = ?)
          AND (actual_sum = 0 OR abs(plan_sum - actual_sum) >= ? * actual_sum)
        ORDER BY sku_id, location_id
        """,
        [recent_start, recent_start, window.start, *[rules.bias_weeks] * 5,
         rules.min_abs_bias],
    ).df()
    if frame.empty:
        return _empty()
    # Beyond noise: |Σplan − Σactual| >= z × its standard error under "no bias", from the family's relative
    # week-to-week error (σ × Σplan / sqrt(n)) plus counting noise (Poisson: sqrt of the units, which dominates
    # for slow movers selling a few units a week). Vectorised over the few thousand same-sign candidates.
    z = bias_z(int(frame.tested.iloc[0]), rules)
    volume = frame[["plan_sum", "actual_sum"]].max(axis=1)
    frame["noise_gap"] = z * ((frame.noise * frame.plan_sum) ** 2 / n + volume) ** 0.5
    frame = frame[(frame.plan_sum - frame.actual_sum).abs() >= frame.noise_gap]
    if frame.empty:
        return _empty()
    gap = (frame.plan_sum - frame.actual_sum).abs()
    text = _texts(frame, "sku_id", "product_family", "location_id")
    where = text.sku_id + " (family " + text.product_family + ") at " + text.location_id
    direction = pd.Series(np.where(frame.over, "lower", "raise"), index=frame.index)
    action = np.where(
        frame.plan_sum > 0,
        direction + " the demand plan of " + where + " by ~"
        + (gap / frame.plan_sum.where(frame.plan_sum > 0) * 100).map("{:.0f}".format) + "% (from ~"
        + _amounts(frame.plan_sum / n) + " to ~" + _amounts(frame.actual_sum / n) + " units/week)",
        "add a demand plan of ~" + _amounts(frame.actual_sum / n) + " units/week for " + where + " (none today)")
    mean_bias = frame.mean_bias.astype(float)
    bias_text = mean_bias.map("mean bias {:+.0%}".format).where(mean_bias.notna(), "no actual demand, so no mean bias")
    explanation = (
        "Plan " + pd.Series(np.where(frame.over, "above", "below"), index=frame.index) + " actual demand in "
        + frame.occurrences.astype(int).astype(str) + f" of {n} weeks since {window.start} (the latest "
        f"{rules.bias_weeks} in a row): planned " + _amounts(frame.plan_sum) + ", actual " + _amounts(frame.actual_sum)
        + " units (" + bias_text + "), a gap beyond the ±" + _amounts(frame.noise_gap)
        + " units that ordinary forecast noise explains; ~" + _amounts(frame.impact_value)
        + np.where(frame.over, " of stock built beyond demand at cost.", " of revenue at risk.")
    )
    return _patterns(
        frame, pattern=np.where(frame.over, "persistent_over_forecast", "persistent_under_forecast"),
        product_family=frame.product_family, sku_id=frame.sku_id, location_id=frame.location_id, weeks_observed=n,
        occurrences=frame.occurrences.astype(int), mean_bias=mean_bias, impact_value=frame.impact_value,
        suggested_sop_action=action, explanation=explanation,
    )


# --- suppliers ------------------------------------------------------------------------------


def chronic_supplier_delay(conn: duckdb.DuckDBPyConnection, window: Window, rules: FeedbackRules) -> pd.DataFrame:
    """Supplier-SKUs with at least ``min_occurrences`` late PO lines, late on ``min_late_share`` of their lines,
    ``min_mean_delay_days`` late on average.

    A line promised in the window is late unless received in full on or before
    its promised date; its delay runs to the receipt date, or to as_of while
    it is still outstanding (an open line not received in full, whatever part
    of it came, or one received without a date); 0 for a short receipt on time
    that closed the line. A supplier whose late lines slip a day or arrive a
    few units short is ordinary noise.
    """
    frame = conn.execute(
        """
        WITH received AS (
            SELECT po.*,
                   -- the day the line stopped waiting: as_of while part of an open line is still to come
                   CASE WHEN po.status = 'open' AND po.received_qty < po.ordered_qty THEN CAST(? AS DATE)
                        ELSE coalesce(po.received_date, CAST(? AS DATE)) END AS arrived
            FROM staging.stg_purchase_orders AS po
            WHERE po.status <> 'cancelled' AND po.promised_date BETWEEN ? AND ?
        ),
        lines AS (
            SELECT po.*, skus.product_family, coalesce(skus.unit_cost, 0.0) AS unit_cost,
                   -- received without a date is late, as the KPI counts it (no date: no proof of on time)
                   NOT coalesce(po.received_qty >= po.ordered_qty AND po.received_date <= po.promised_date, false)
                       AS late,
                   date_diff('day', po.order_date, po.promised_date) AS promised_lead,
                   date_diff('day', po.order_date, po.arrived) AS actual_lead,
                   greatest(date_diff('day', po.promised_date, po.arrived), 0) AS delay
            FROM received AS po
            LEFT JOIN staging.stg_skus AS skus USING (sku_id)
        )
        SELECT supplier_id, sku_id, any_value(product_family) AS product_family,
               CASE WHEN count(DISTINCT location_id) = 1 THEN any_value(location_id) END AS location_id,
               string_agg(DISTINCT location_id, ', ' ORDER BY location_id) AS locations,
               count(*) AS lines, count(*) FILTER (WHERE late) AS late_lines,
               count(DISTINCT date_trunc('week', promised_date)) AS weeks_observed,
               avg(delay) FILTER (WHERE late) AS mean_delay,
               median(promised_lead) AS promised_lead, median(greatest(actual_lead, promised_lead)) AS actual_lead,
               sum(ordered_qty * unit_cost) FILTER (WHERE late) AS late_value
        FROM lines
        GROUP BY supplier_id, sku_id
        HAVING count(*) FILTER (WHERE late) >= ? AND count(*) FILTER (WHERE late) >= ? * count(*)
           AND avg(delay) FILTER (WHERE late) >= ?
        ORDER BY late_value DESC
        """,
        [window.as_of, window.as_of, window.start, window.end, rules.min_occurrences, rules.min_late_share,
         rules.min_mean_delay_days],
    ).df()
    if frame.empty:
        return _empty()
    # medians of whole days: whole, or halves shown as such (rounding 87.5 and 88.5 both gave "88 to 88")
    quoted = frame.promised_lead.astype(float).map(lambda days: f"{round(days, 1):g}")
    actual = frame.actual_lead.astype(float).map(lambda days: f"{round(days, 1):g}")
    text = _texts(frame, "supplier_id", "sku_id", "locations")
    action = ("re-quote the lead time of supplier " + text.supplier_id + " for " + text.sku_id + " from " + quoted
              + " to " + actual + " days (or agree a recovery plan with " + text.supplier_id + ")")
    explanation = (
        frame.late_lines.astype(str) + " of " + frame.lines.astype(str) + " PO lines of " + text.sku_id + " from "
        + text.supplier_id + f" promised since {window.start} arrived late or short (to " + text.locations + "), "
        + frame.mean_delay.astype(float).map("{:.1f}".format) + " days late on average; quoted lead time " + quoted
        + " days, actual about " + actual + " days; ~" + _amounts(frame.late_value) + " of goods late."
    )
    return _patterns(
        frame, pattern="chronic_supplier_delay", product_family=frame.product_family, sku_id=frame.sku_id,
        location_id=frame.location_id, supplier_id=frame.supplier_id, weeks_observed=frame.weeks_observed,
        occurrences=frame.late_lines, mean_delay_days=frame.mean_delay, impact_value=frame.late_value,
        suggested_sop_action=action, explanation=explanation,
    )


# --- capacity -------------------------------------------------------------------------------


def chronic_capacity_shortfall(conn: duckdb.DuckDBPyConnection, window: Window, rules: FeedbackRules) -> pd.DataFrame:
    """Resources short in at least ``min_occurrences`` weeks of the window.

    A resource-week is short when the output planned to finish in it exceeds
    its capacity, or when less than ``min_output_share`` of it finished on
    time. Shortfall units = max(load - capacity, load - on-time output).
    """
    frame = conn.execute(
        """
        WITH orders AS (
            SELECT mo.location_id, mo.resource_id, date_trunc('week', mo.planned_finish_date)::DATE AS week_start,
                   mo.planned_qty, coalesce(skus.unit_cost, 0.0) AS unit_cost,
                   CASE WHEN mo.actual_finish_date <= mo.planned_finish_date
                        THEN least(coalesce(mo.completed_qty, 0), mo.planned_qty) ELSE 0.0 END AS on_time_qty
            FROM staging.stg_production_orders AS mo
            LEFT JOIN staging.stg_skus AS skus USING (sku_id)
            WHERE mo.status <> 'cancelled'
        ),
        weeks AS (
            SELECT location_id, resource_id, week_start, sum(planned_qty) AS load, sum(on_time_qty) AS output,
                   sum(planned_qty * unit_cost) / nullif(sum(planned_qty), 0) AS unit_cost
            FROM orders WHERE week_start BETWEEN ? AND ?
            GROUP BY ALL
        ),
        scored AS (
            SELECT weeks.*, cap.capacity_qty,
                   greatest(weeks.load - coalesce(cap.capacity_qty, weeks.load), weeks.load - weeks.output, 0)
                       AS shortfall,
                   (weeks.load > coalesce(cap.capacity_qty, weeks.load) OR weeks.output < ? * weeks.load) AS short
            FROM weeks
            LEFT JOIN staging.stg_resource_capacity AS cap USING (location_id, resource_id, week_start)
        )
        SELECT location_id, resource_id, count(*) AS weeks_observed, count(*) FILTER (WHERE short) AS short_weeks,
               avg(load) AS mean_load, avg(capacity_qty) AS mean_capacity, avg(output) AS mean_output,
               sum(shortfall) FILTER (WHERE short) AS shortfall,
               sum(greatest(load - coalesce(capacity_qty, load), 0)) FILTER (WHERE short) AS over_capacity,
               sum(load - output) FILTER (WHERE short) AS not_on_time,
               sum(shortfall * unit_cost) FILTER (WHERE short) AS impact
        FROM scored
        GROUP BY ALL
        HAVING count(*) FILTER (WHERE short) >= ?
        ORDER BY impact DESC
        """,
        [window.start, window.last_week, rules.min_output_share, rules.min_occurrences],
    ).df()
    if frame.empty:
        return _empty()
    per_week = _amounts(frame.shortfall / frame.short_weeks)
    capacity = _amounts(frame.mean_capacity).where(frame.mean_capacity.notna(), "unknown")
    text = _texts(frame, "resource_id", "location_id")
    action = ("add ~" + per_week + " units/week of capacity on " + text.resource_id + " at " + text.location_id
              + " or move ~" + per_week + " units/week of its supply plan to other weeks or plants")
    # what made those weeks short: output planned beyond capacity, output not finished on time, or both
    over = (_amounts(frame.over_capacity) + " units planned beyond capacity").where(frame.over_capacity > 0)
    late = (_amounts(frame.not_on_time) + " units not finished on time").where(frame.not_on_time > 0)
    causes = (over + " and " + late).fillna(over).fillna(late).fillna("")
    explanation = (
        text.resource_id + " at " + text.location_id + " was short in " + frame.short_weeks.astype(str) + " of "
        + frame.weeks_observed.astype(str) + f" weeks since {window.start}: planned " + _amounts(frame.mean_load)
        + " units/week against capacity " + capacity + ", " + _amounts(frame.mean_output)
        + " finished on time; in those weeks " + causes + "."
    )
    return _patterns(
        frame, pattern="chronic_capacity_shortfall", location_id=frame.location_id, resource_id=frame.resource_id,
        weeks_observed=frame.weeks_observed, occurrences=frame.short_weeks, impact_value=frame.impact,
        suggested_sop_action=action, explanation=explanation,
    )


# --- responses and exceptions (when those stages exist) -------------------------------------


def repeated_responses(conn: duckdb.DuckDBPyConnection, window: Window, rules: FeedbackRules) -> pd.DataFrame:
    """SKU-locations expedited or reallocated to in at least ``min_occurrences`` weeks of the window.

    Reads ``marts.recommendation_history`` (every run's recommendations); nothing before the respond
    stage has run. Weeks are counted, not rows: one shortage met by three transfers is one response,
    and a recommendation repeated by each daily run of a week is one week's. The cost is that of each
    week's last run responding there.
    """
    table = "recommendation_history"
    if not table_exists(conn, "marts", table):
        return _empty()
    frame = conn.execute(
        f"""
        WITH responses AS (
            SELECT rec.*, date_trunc('week', CAST(as_of AS DATE)) AS week,
                   -- the last run of the week that responded at this place: a later run that week responding
                   -- elsewhere leaves this week's cost here as it was
                   max(CAST(as_of AS DATE)) OVER (
                       PARTITION BY date_trunc('week', CAST(as_of AS DATE)), action_type = 'reallocate_stock',
                                    rec.sku_id, rec.to_location_id
                   ) AS last_run_of_week
            FROM {published_history(conn, f"marts.{table}", window.as_of)} AS rec
            WHERE action_type IN ('expedite_purchase_order', 'expedite_transfer', 'reallocate_stock')
              AND rec.sku_id IS NOT NULL AND rec.sku_id <> '' AND CAST(as_of AS DATE) BETWEEN ? AND ?
        )
        SELECT CASE WHEN action_type = 'reallocate_stock' THEN 'repeated_reallocation' ELSE 'repeated_expedite' END
                   AS pattern,
               responses.sku_id, responses.to_location_id AS location_id,
               any_value(skus.product_family) AS product_family,
               count(DISTINCT week) AS occurrences,
               coalesce(sum(coalesce(cost, 0.0)) FILTER (WHERE CAST(as_of AS DATE) = last_run_of_week), 0.0)
                   AS impact_value,
               string_agg(DISTINCT action_type, ', ') AS actions
        FROM responses
        LEFT JOIN staging.stg_skus AS skus USING (sku_id)
        GROUP BY ALL
        HAVING count(DISTINCT week) >= ?
        """,
        [window.start, window.end, rules.min_occurrences],
    ).df()
    if frame.empty:
        return _empty()
    text = _texts(frame, "sku_id", "location_id", "actions")
    what = pd.Series(np.where(frame.pattern.eq("repeated_reallocation"), "reallocated stock to",
                              "expedited supply into"), index=frame.index)
    return _patterns(
        frame, pattern=frame.pattern, product_family=frame.product_family, sku_id=frame.sku_id,
        location_id=frame.location_id, occurrences=frame.occurrences, impact_value=frame.impact_value,
        weeks_observed=len(window.weeks),
        suggested_sop_action="raise the safety stock or the supply plan of " + text.sku_id + " at "
        + text.location_id + " so it stops needing firefighting",
        explanation="S&OE " + what + " " + text.sku_id + " at " + text.location_id + " in "
        + frame.occurrences.astype(str) + " different weeks (" + text.actions + f") since {window.start}, costing "
        + _amounts(frame.impact_value) + ".",
    )


def recurring_exceptions(conn: duckdb.DuckDBPyConnection, window: Window, rules: FeedbackRules) -> pd.DataFrame:
    """Exception types raised at least ``min_occurrences`` times on one SKU-location in the window; a capacity
    overload, which has no SKU, on one resource (a plant's resources are planned apart). An exception that
    was resolved and came back counts each time (one id, a new ``first_detected_on``): a SKU-location running
    out in three separate episodes is a recurring stockout."""
    if not table_exists(conn, "marts", "exception_history"):
        return _empty()
    frame = conn.execute(
        f"""
        WITH ex AS (
            SELECT exception_id, CAST(first_detected_on AS DATE) AS first_detected_on,
                   any_value(exception_type) AS exception_type, any_value(sku_id) AS sku_id,
                   any_value(location_id) AS location_id,
                   any_value(CASE WHEN exception_type = 'capacity_overload' THEN reference_id END) AS resource_id,
                   max(coalesce(impact_value, 0.0)) AS impact_value
            FROM {published_history(conn, "marts.exception_history", window.as_of)}
            WHERE exception_type NOT IN ('data_quality')
            GROUP BY exception_id, CAST(first_detected_on AS DATE)
        )
        SELECT exception_type, nullif(ex.sku_id, '') AS sku_id, ex.location_id, ex.resource_id,
               any_value(skus.product_family) AS product_family, count(*) AS occurrences,
               sum(ex.impact_value) AS impact_value
        FROM ex LEFT JOIN staging.stg_skus AS skus USING (sku_id)
        WHERE first_detected_on BETWEEN ? AND ?
        GROUP BY ALL
        HAVING count(*) >= ?
        """,
        [window.start, window.end, rules.min_occurrences],
    ).df()
    if frame.empty:
        return _empty()
    text = _texts(frame, "sku_id", "location_id", "resource_id", "exception_type")
    has_sku = frame.sku_id.fillna("").astype(str).ne("")
    has_resource = frame.resource_id.fillna("").astype(str).ne("")
    where = (text.sku_id + " at " + text.location_id).where(
        has_sku, ("resource " + text.resource_id + " at " + text.location_id).where(has_resource, text.location_id))
    return _patterns(
        frame, pattern="recurring_" + frame.exception_type, product_family=frame.product_family,
        sku_id=frame.sku_id, location_id=frame.location_id, resource_id=frame.resource_id,
        occurrences=frame.occurrences, impact_value=frame.impact_value, weeks_observed=len(window.weeks),
        suggested_sop_action="review the plan parameters of " + where + ", where "
        + text.exception_type.str.replace("_", " ") + " recurs",
        explanation=text.exception_type + " detected " + frame.occurrences.astype(str) + " separate times on "
        + where + f" since {window.start}, " + _amounts(frame.impact_value) + " at stake in all.",
    )


# The detectors that read only the warehouse (the forecast bias also takes the shared plan vs actual).
DETECTORS = [chronic_supplier_delay, chronic_capacity_shortfall, repeated_responses, recurring_exceptions]


# A recurring-exception pattern that restates a chronic one: the same late lines or overloaded weeks, counted
# as exceptions (pattern -> the chronic pattern and the columns both name).
RESTATED_BY = {
    "recurring_late_purchase_order": ("chronic_supplier_delay", ["sku_id"]),
    "recurring_capacity_overload": ("chronic_capacity_shortfall", ["location_id", "resource_id"]),
}


def _without_restatements(patterns: pd.DataFrame) -> pd.DataFrame:
    """Drop the recurring-exception rows a chronic pattern already states (its SKU's supplier delay, its
    resource's shortfall): listed twice, the same money would rank twice in the S&OP pack."""
    restated = pd.Series(False, index=patterns.index)
    for recurring, (chronic, keys) in RESTATED_BY.items():
        stated = pd.MultiIndex.from_frame(patterns.loc[patterns["pattern"] == chronic, keys].astype(str))
        restated |= (patterns["pattern"] == recurring) & pd.MultiIndex.from_frame(
            patterns[keys].astype(str)).isin(stated)
    return patterns[~restated]


def detect_patterns(
    conn: duckdb.DuckDBPyConnection, as_of: date, sop_cycle: date, previous: date | None,
    rules: FeedbackRules = FeedbackRules(), plan_vs_actual: str | None = None,
) -> pd.DataFrame:
    """Every recurring pattern for the cycle, largest impact first (``plan_vs_actual``: see
    ``persistent_forecast_bias``)."""
    window = feedback_window(as_of, previous, rules)
    found = [persistent_forecast_bias(conn, window, rules, plan_vs_actual),
             *(detect(conn, window, rules) for detect in DETECTORS)]
    frames = [f for f in found if not f.empty]
    result = pd.concat(frames, ignore_index=True) if frames else _empty()
    result = _without_restatements(result[FEEDBACK_COLUMNS].copy())
    result["sop_cycle"] = sop_cycle
    result["window_start"] = window.start
    result["as_of"] = as_of
    for column in ("weeks_observed", "occurrences"):
        result[column] = pd.to_numeric(result[column]).astype("Int64")
    # rounded as published: sums in parallel add in no fixed order, and a re-run must publish the same figures
    # (74.52, not 74.52000000000001 one run and 74.52 the next)
    for column, decimals in (("mean_bias", 6), ("mean_delay_days", 2), ("impact_value", 2)):
        result[column] = pd.to_numeric(result[column]).astype(float).round(decimals)
    return result.sort_values("impact_value", ascending=False, na_position="last").reset_index(drop=True)
