"""Build a DuckDB warehouse with the `raw` schema that ingest writes.

Used to test the dbt project on its own: tables, columns and types are
exactly those of docs/architecture.md (contract columns plus the lineage
columns `_file` and `_extract_date`), filled from small
hand-made pandas frames.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pandas as pd

# Landing-zone contract columns: str -> VARCHAR, date -> DATE, ts -> TIMESTAMP,
# int -> BIGINT, num -> DOUBLE.
RAW_SOURCES: dict[str, list[tuple[str, str]]] = {
    "skus": [
        ("sku_id", "VARCHAR"),
        ("product_family", "VARCHAR"),
        ("unit_cost", "DOUBLE"),
        ("unit_price", "DOUBLE"),
    ],
    "locations": [
        ("location_id", "VARCHAR"),
        ("location_type", "VARCHAR"),
        ("region", "VARCHAR"),
    ],
    "lanes": [
        ("from_location_id", "VARCHAR"),
        ("to_location_id", "VARCHAR"),
        ("transit_days", "BIGINT"),
        ("cost_per_unit", "DOUBLE"),
    ],
    "sop_plan": [
        ("plan_version", "VARCHAR"),
        ("committed_at", "TIMESTAMP"),
        ("sku_id", "VARCHAR"),
        ("location_id", "VARCHAR"),
        ("week_start", "DATE"),
        ("demand_qty", "DOUBLE"),
        ("supply_qty", "DOUBLE"),
        ("safety_stock_qty", "DOUBLE"),
    ],
    "sales_orders": [
        ("order_id", "VARCHAR"),
        ("line_no", "BIGINT"),
        ("customer_id", "VARCHAR"),
        ("sku_id", "VARCHAR"),
        ("location_id", "VARCHAR"),
        ("order_date", "DATE"),
        ("requested_date", "DATE"),
        ("promised_date", "DATE"),
        ("ordered_qty", "DOUBLE"),
        ("shipped_qty", "DOUBLE"),
        ("ship_date", "DATE"),
        ("status", "VARCHAR"),
    ],
    "inventory_snapshots": [
        ("snapshot_date", "DATE"),
        ("sku_id", "VARCHAR"),
        ("location_id", "VARCHAR"),
        ("on_hand_qty", "DOUBLE"),
        ("quality_hold_qty", "DOUBLE"),
    ],
    "purchase_orders": [
        ("po_id", "VARCHAR"),
        ("line_no", "BIGINT"),
        ("supplier_id", "VARCHAR"),
        ("sku_id", "VARCHAR"),
        ("location_id", "VARCHAR"),
        ("order_date", "DATE"),
        ("promised_date", "DATE"),
        ("confirmed_date", "DATE"),
        ("ordered_qty", "DOUBLE"),
        ("received_qty", "DOUBLE"),
        ("received_date", "DATE"),
        ("status", "VARCHAR"),
    ],
    "production_orders": [
        ("production_order_id", "VARCHAR"),
        ("sku_id", "VARCHAR"),
        ("location_id", "VARCHAR"),
        ("resource_id", "VARCHAR"),
        ("planned_start_date", "DATE"),
        ("planned_finish_date", "DATE"),
        ("planned_qty", "DOUBLE"),
        ("completed_qty", "DOUBLE"),
        ("actual_finish_date", "DATE"),
        ("status", "VARCHAR"),
    ],
    "resource_capacity": [
        ("location_id", "VARCHAR"),
        ("resource_id", "VARCHAR"),
        ("week_start", "DATE"),
        ("capacity_qty", "DOUBLE"),
    ],
    "shipments": [
        ("shipment_id", "VARCHAR"),
        ("sku_id", "VARCHAR"),
        ("from_location_id", "VARCHAR"),
        ("to_location_id", "VARCHAR"),
        ("ship_date", "DATE"),
        ("planned_arrival_date", "DATE"),
        ("eta_date", "DATE"),
        ("actual_arrival_date", "DATE"),
        ("qty", "DOUBLE"),
    ],
    "pos_sales": [
        ("sale_date", "DATE"),
        ("sku_id", "VARCHAR"),
        ("location_id", "VARCHAR"),
        ("qty", "DOUBLE"),
    ],
}

LINEAGE_COLUMNS: list[tuple[str, str]] = [
    ("_file", "VARCHAR"),
    ("_extract_date", "DATE"),
]

OTHER_RAW_TABLES: dict[str, list[tuple[str, str]]] = {
    "quarantine": [
        ("source", "VARCHAR"),
        ("file", "VARCHAR"),
        ("row_number", "BIGINT"),
        ("column", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("raw_record", "VARCHAR"),
        ("detected_at", "TIMESTAMP"),
    ],
    "run_context": [
        ("as_of", "DATE"),
        ("horizon_weeks", "INTEGER"),
        ("time_fence_weeks", "INTEGER"),
        ("run_id", "VARCHAR"),
        ("started_at", "TIMESTAMP"),
    ],
    "ingest_log": [
        ("source", "VARCHAR"),
        ("files_read", "BIGINT"),
        ("files_skipped", "BIGINT"),
        ("latest_extract_date", "DATE"),
        ("rows_read", "BIGINT"),
        ("rows_valid", "BIGINT"),
        ("rows_quarantined", "BIGINT"),
        ("newest_extract_date", "DATE"),
        ("newest_rows_read", "BIGINT"),
        ("newest_rows_quarantined", "BIGINT"),
        ("latest_usable_extract_date", "DATE"),
    ],
}


def _ddl(table: str, columns: list[tuple[str, str]]) -> str:
    column_sql = ", ".join(f'"{name}" {dtype}' for name, dtype in columns)
    return f"CREATE OR REPLACE TABLE raw.{table} ({column_sql})"


def _insert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: list[tuple[str, str]],
    frame: pd.DataFrame,
) -> None:
    if frame.empty:
        return
    missing = [name for name, _ in columns if name not in frame.columns]
    if missing:
        raise ValueError(f"raw.{table}: missing columns {missing}")
    select_sql = ", ".join(f'CAST(frame."{name}" AS {dtype})' for name, dtype in columns)
    con.register("frame", frame)
    try:
        con.execute(f"INSERT INTO raw.{table} SELECT {select_sql} FROM frame")
    finally:
        con.unregister("frame")


def build_raw_warehouse(
    path: Path,
    frames: Mapping[str, pd.DataFrame],
    *,
    as_of: dt.date,
    horizon_weeks: int = 13,
    time_fence_weeks: int = 4,
) -> Path:
    """Create `path` with every `raw.*` table; sources absent from `frames` stay empty.

    Lineage columns missing from a frame are filled in (`_file` =
    `<as_of>.csv`, `_extract_date` = as_of).
    `frames` may also hold `quarantine` rows.
    """
    unknown = set(frames) - set(RAW_SOURCES) - {"quarantine"}
    if unknown:
        raise ValueError(f"unknown raw tables: {sorted(unknown)}")
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        for table, contract_columns in RAW_SOURCES.items():
            columns = contract_columns + LINEAGE_COLUMNS
            con.execute(_ddl(table, columns))
            frame = frames.get(table, pd.DataFrame()).copy()
            if not frame.empty:
                defaults = {
                    "_file": f"{as_of.isoformat()}.csv",
                    "_extract_date": pd.Timestamp(as_of),
                }
                for name, value in defaults.items():
                    if name not in frame.columns:
                        frame[name] = value
                for name, _ in contract_columns:
                    if name not in frame.columns:
                        frame[name] = None
            _insert(con, table, columns, frame)
        for table, columns in OTHER_RAW_TABLES.items():
            con.execute(_ddl(table, columns))
        _insert(con, "quarantine", OTHER_RAW_TABLES["quarantine"],
                frames.get("quarantine", pd.DataFrame()))
        con.execute(
            "INSERT INTO raw.run_context VALUES (?, ?, ?, ?, ?)",
            [as_of, horizon_weeks, time_fence_weeks, "test-run", dt.datetime(2026, 1, 1)],
        )
    finally:
        con.close()
    return path
