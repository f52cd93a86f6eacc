"""An in-memory warehouse with the staging views and committed plan the KPI and feedback stages read."""

from __future__ import annotations

import duckdb
import pandas as pd

TABLES = {
    "staging.stg_skus": "sku_id VARCHAR, product_family VARCHAR, unit_cost DOUBLE, unit_price DOUBLE",
    "staging.stg_sales_orders": "order_id VARCHAR, line_no BIGINT, customer_id VARCHAR, sku_id VARCHAR, "
    "location_id VARCHAR, order_date DATE, requested_date DATE, promised_date DATE, ordered_qty DOUBLE, "
    "shipped_qty DOUBLE, ship_date DATE, status VARCHAR",
    "staging.stg_pos_sales": "sale_date DATE, sku_id VARCHAR, location_id VARCHAR, qty DOUBLE",
    "staging.stg_purchase_orders": "po_id VARCHAR, line_no BIGINT, supplier_id VARCHAR, sku_id VARCHAR, "
    "location_id VARCHAR, order_date DATE, promised_date DATE, confirmed_date DATE, ordered_qty DOUBLE, "
    "received_qty DOUBLE, received_date DATE, status VARCHAR",
    "staging.stg_production_orders": "production_order_id VARCHAR, sku_id VARCHAR, location_id VARCHAR, "
    "resource_id VARCHAR, planned_start_date DATE, planned_finish_date DATE, planned_qty DOUBLE, "
    "completed_qty DOUBLE, actual_finish_date DATE, status VARCHAR",
    "staging.stg_inventory_snapshots": "snapshot_date DATE, sku_id VARCHAR, location_id VARCHAR, "
    "on_hand_qty DOUBLE, quality_hold_qty DOUBLE",
    "staging.stg_resource_capacity": "location_id VARCHAR, resource_id VARCHAR, week_start DATE, capacity_qty DOUBLE",
    "staging.stg_shipments": "shipment_id VARCHAR, sku_id VARCHAR, from_location_id VARCHAR, to_location_id VARCHAR, "
    "ship_date DATE, planned_arrival_date DATE, eta_date DATE, actual_arrival_date DATE, qty DOUBLE",
    "staging.stg_locations": "location_id VARCHAR, location_type VARCHAR",
    "intermediate.int_committed_plan": "sku_id VARCHAR, location_id VARCHAR, week_start DATE, "
    "plan_version VARCHAR, committed_at TIMESTAMP, demand_qty DOUBLE, supply_qty DOUBLE, safety_stock_qty DOUBLE",
}

SKUS = [("A", "bikes", 50.0, 100.0), ("B", "parts", 5.0, 12.0)]


def make_warehouse(**rows: list[dict]) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse with every table the KPIs read, filled with the given rows (by short name)."""
    conn = duckdb.connect()
    for schema in ("raw", "staging", "intermediate", "marts"):
        conn.execute(f"CREATE SCHEMA {schema}")
    # the ingest the tables come from (the stages note which ingest what they build was built from)
    conn.execute("CREATE TABLE raw.run_context AS SELECT NULL::DATE AS as_of, 13 AS horizon_weeks, "
                 "4 AS time_fence_weeks, 'ingest-1' AS run_id, NULL::TIMESTAMP AS started_at")
    for table, columns in TABLES.items():
        conn.execute(f"CREATE TABLE {table} ({columns})")
    conn.executemany("INSERT INTO staging.stg_skus VALUES (?, ?, ?, ?)", SKUS)
    for short, records in rows.items():
        table = next(t for t in TABLES if t.endswith("." + short))
        frame = pd.DataFrame(records)
        conn.register("_rows", frame)
        conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
        conn.unregister("_rows")
    return conn
