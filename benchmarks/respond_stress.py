"""Stress the respond stage: 10% of the SKUs made short at DC-01 from week 1 of a benchmark warehouse.

    python benchmarks/respond_stress.py /tmp/soe-bench/skus20000_dcs4/warehouse/soe.duckdb

The warehouse is attached read-only; the inputs of the respond stage are copied
into an in-memory database and the trusted view is bent there, so the
benchmark warehouse is left as it was.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb

from soe_assets.respond.config import RespondConfig
from soe_assets.respond.recommend import build_recommendations
from soe_assets.warehouse import read_run_context

# Every table the respond stage reads: its candidates, the demand windows of the SKUs a transfer down the
# network may ship (sales orders, POS, the committed plan), the exceptions it links to and the overloads'
# weeks.
RESPOND_INPUTS = {
    "staging": ["stg_locations", "stg_lanes", "stg_shipments", "stg_production_orders", "stg_resource_capacity",
                "stg_skus", "stg_sales_orders", "stg_pos_sales"],
    "intermediate": ["int_open_supply", "int_booked_demand", "int_committed_plan", "int_run_weeks"],
    "raw": ["run_context"],
    "marts": ["exception_history"],
}
MADE_SHORT = """
    SELECT * REPLACE (
        CASE WHEN hash(sku_id) % 10 = 0 AND location_id = 'DC-01' AND week_index >= 1
             THEN projected_available_qty - 2 * safety_stock_qty - 3 * sensed_demand_qty
             ELSE projected_available_qty END AS projected_available_qty)
    FROM wh.marts.sku_location_week
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path, help="a warehouse written by `soe run` on a benchmark network")
    args = parser.parse_args()
    if not args.warehouse.is_file():
        parser.error(f"{args.warehouse} is not a warehouse file")
    conn = duckdb.connect()
    conn.execute("ATTACH ? AS wh (READ_ONLY)", [str(args.warehouse)])
    for schema, tables in RESPOND_INPUTS.items():
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for table in tables:
            conn.execute(f"CREATE TABLE {schema}.{table} AS SELECT * FROM wh.{schema}.{table}")
    conn.execute(f"CREATE TABLE marts.sku_location_week AS {MADE_SHORT}")
    started = time.monotonic()
    mart, stats = build_recommendations(conn, read_run_context(conn), RespondConfig())
    print(f"respond: {time.monotonic() - started:.1f} s", stats)
    print(mart["action_type"].value_counts().to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
