"""Exception lifecycle across runs: new, still open, resolved.

``marts.exception_history`` keeps every run's exceptions (one row per
``as_of`` x ``exception_id``; open and resolved-in-that-run rows). It survives
re-runs because the warehouse file does; re-running an ``as_of`` replaces that
date's rows. Each run compares itself with the latest earlier run whose set was
published (``soe_assets.warehouse.published_history``):

- open now and open then: still open, ``first_detected_on`` carried over;
- open now, not open then: new, ``first_detected_on`` = as_of;
- open then, not detected now: ``resolved``, ``resolved_on`` = as_of.

An exception about one week (a resource-week's capacity overload) whose week
has ended can no longer be detected: it leaves as ``resolved`` too (the contract
knows no other status), says that it lapsed, and the resolution-time KPI leaves
it out (``LAPSED_SQL``): nothing resolved it.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from soe_assets.warehouse import ensure_table, published_history, replace_run_rows

MART_COLUMNS = [
    "exception_id", "exception_type", "sku_id", "location_id", "week_start", "reference_id", "impact_value",
    "priority", "status", "first_detected_on", "resolved_on", "escalate_to_sop", "explanation",
    "caused_by_exception_id", "shortfall_qty", "weeks_affected", "as_of",
]
HISTORY_COLUMNS = [*MART_COLUMNS, "in_alert_budget"]
SQL_TYPES = {
    "exception_id": "VARCHAR", "exception_type": "VARCHAR", "sku_id": "VARCHAR", "location_id": "VARCHAR",
    "week_start": "DATE", "reference_id": "VARCHAR", "impact_value": "DOUBLE", "priority": "INTEGER",
    "status": "VARCHAR", "first_detected_on": "DATE", "resolved_on": "DATE", "escalate_to_sop": "BOOLEAN",
    "explanation": "VARCHAR", "caused_by_exception_id": "VARCHAR", "shortfall_qty": "DOUBLE",
    "weeks_affected": "INTEGER", "as_of": "DATE", "in_alert_budget": "BOOLEAN",
}
HISTORY_TABLE = "marts.exception_history"

# Exception types whose identity includes their week: once that week has ended they cannot be detected again.
WEEK_BOUND_TYPES = ("capacity_overload",)
# SQL over ``exception_history`` rows: a resolution that is only its week ending.
LAPSED_SQL = ("exception_type IN (" + ", ".join(f"'{t}'" for t in WEEK_BOUND_TYPES) + ") "
              "AND CAST(resolved_on AS DATE) > CAST(week_start AS DATE) + 6")


def track_lifecycle(detected: pd.DataFrame, previous: pd.DataFrame, as_of: date,
                    kept_ids: set[str] | None = None) -> pd.DataFrame:
    """This run's history rows: every detected exception (open) + those open in ``previous`` (the
    latest earlier run's rows) and no longer detected (resolved). ``kept_ids``: the open ids inside
    the alert budget (None: all)."""
    prev_open = previous[previous["status"].eq("open")] if len(previous) else previous
    carried = prev_open[["exception_id", "first_detected_on"]] if len(prev_open) else pd.DataFrame(
        {"exception_id": pd.Series(dtype="object"), "first_detected_on": pd.Series(dtype="object")})
    open_rows = detected.drop(columns=[c for c in ("first_detected_on",) if c in detected.columns]).merge(
        carried, on="exception_id", how="left")
    open_rows["first_detected_on"] = open_rows["first_detected_on"].where(open_rows["first_detected_on"].notna(), as_of)
    open_rows["status"] = "open"
    open_rows["resolved_on"] = None
    open_rows["in_alert_budget"] = (
        True if kept_ids is None else open_rows["exception_id"].isin(kept_ids)
    )
    resolved = prev_open[~prev_open["exception_id"].isin(detected["exception_id"])].copy() if len(prev_open) else (
        pd.DataFrame(columns=HISTORY_COLUMNS))
    resolved["status"] = "resolved"
    resolved["resolved_on"] = as_of
    resolved["priority"] = None
    # shown in the mart only if it was shown open: a resolution of what the alert budget held back is no news
    resolved["in_alert_budget"] = resolved["in_alert_budget"].fillna(True).astype(bool)
    # The row's figures are those of the run that last saw it open: say so, or it reads as still true.
    last_seen = pd.to_datetime(resolved["as_of"]).dt.strftime("%Y-%m-%d") if len(resolved) else ""
    week_end = pd.to_datetime(resolved["week_start"]) + pd.Timedelta(days=6)
    lapsed = resolved["exception_type"].isin(WEEK_BOUND_TYPES) & (week_end < pd.Timestamp(as_of))
    status = pd.Series(f"Resolved: no longer detected on {as_of:%Y-%m-%d}", index=resolved.index).where(
        ~lapsed, "Lapsed: its week ended on " + week_end.dt.strftime("%Y-%m-%d") + " (not counted as resolved by "
        "the resolution-time KPI)")
    resolved["explanation"] = (status + "; when last open (" + last_seen + "): "
                               + resolved["explanation"].astype(str))
    rows = pd.concat([frame for frame in (open_rows, resolved) if len(frame)], ignore_index=True) if (
        len(open_rows) or len(resolved)) else pd.DataFrame(columns=HISTORY_COLUMNS)
    rows["as_of"] = as_of
    for column in HISTORY_COLUMNS:
        if column not in rows.columns:
            rows[column] = None
    return rows[HISTORY_COLUMNS]


def mart_rows(history_rows: pd.DataFrame) -> pd.DataFrame:
    """The ``exceptions`` mart: open exceptions inside the alert budget + those resolved in this run that were
    inside it when last open."""
    rows = history_rows[history_rows["in_alert_budget"].astype(bool)].copy()
    rows["_order"] = rows["priority"].astype("float").fillna(float("inf"))
    return rows.sort_values(["_order", "exception_id"])[MART_COLUMNS].reset_index(drop=True)


HISTORY_TYPES = {c: SQL_TYPES[c] for c in HISTORY_COLUMNS}


def previous_run(conn: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    """The history rows of the latest published run before ``as_of`` (empty on the first run): what the planners
    last saw, not what a run blocked at the publish gates detected."""
    ensure_table(conn, HISTORY_TABLE, HISTORY_TYPES)
    history = published_history(conn, HISTORY_TABLE, as_of)
    return conn.execute(
        f"SELECT * FROM {history} AS h WHERE as_of = (SELECT max(as_of) FROM {history} AS e WHERE as_of < ?)",
        [as_of],
    ).df()


def write_history(conn: duckdb.DuckDBPyConnection, rows: pd.DataFrame, as_of: date) -> None:
    """Replace this as_of's rows of the history (a re-run never duplicates)."""
    replace_run_rows(conn, HISTORY_TABLE, rows, HISTORY_TYPES, as_of)
