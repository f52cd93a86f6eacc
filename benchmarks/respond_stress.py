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
from soe_assets.respond.recommend import RESPOND_READS, build_recommendations
from soe_assets.warehouse import read_run_context

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
    for schema, tables in RESPOND_READS.items():
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for table in tables:  # the trusted view is bent on the way
            source = MADE_SHORT if table == "sku_location_week" else f"SELECT * FROM wh.{schema}.{table}"
            conn.execute(f"CREATE TABLE {schema}.{table} AS {source}")
    started = time.monotonic()
    mart, stats = build_recommendations(conn, read_run_context(conn), RespondConfig())
    print(f"respond: {time.monotonic() - started:.1f} s", stats)
    print(mart["action_type"].value_counts().to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
