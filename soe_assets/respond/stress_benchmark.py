"""Stress the respond stage on a benchmark warehouse (argv[1]): 10% of SKUs made short at DC-01 from week 1."""
import sys
import time, duckdb
from soe_assets.warehouse import read_run_context
from soe_assets.respond.recommend import build_recommendations
from soe_assets.respond.config import RespondConfig
c = duckdb.connect()
c.execute(f"ATTACH '{sys.argv[1]}' AS wh (READ_ONLY)")
for schema, tables in {"staging": ["stg_locations", "stg_lanes", "stg_shipments", "stg_production_orders",
                                   "stg_resource_capacity", "stg_skus"],
                       "intermediate": ["int_open_supply", "int_booked_demand"], "raw": ["run_context"],
                       "marts": ["exceptions"]}.items():
    c.execute(f"create schema if not exists {schema}")
    for t in tables:
        c.execute(f"create table {schema}.{t} as select * from wh.{schema}.{t}")
c.execute("""create table marts.sku_location_week as
    select * replace (case when hash(sku_id) % 10 = 0 and location_id = 'DC-01' and week_index >= 1
                           then projected_available_qty - 2 * safety_stock_qty - 3 * sensed_demand_qty
                           else projected_available_qty end as projected_available_qty)
    from wh.marts.sku_location_week""")
t = time.monotonic()
mart, stats = build_recommendations(c, read_run_context(c), RespondConfig())
print(f"respond: {time.monotonic() - t:.1f} s", stats)
print(mart["action_type"].value_counts().to_dict())
