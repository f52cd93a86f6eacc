"""Dagster wrapper of the respond stage: the ``recommendations`` mart."""

import time

import dagster as dg

from orchestration.resources import WarehouseResource
from soe_assets.respond.config import RespondConfig
from soe_assets.respond.recommend import RESPOND_READS, SQL_TYPES, build_recommendations
from soe_assets.warehouse import read_run_context, record_built, replace_run_rows, replace_table

RECOMMENDATION_HISTORY = "marts.recommendation_history"


# raw.run_context comes with the ingest every one of these follows
DEPS = [dg.AssetKey("exceptions"), *(dg.AssetKey(table) for schema, tables in RESPOND_READS.items()
                                     if schema != "raw" for table in tables)]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "recommendations", group_name="respond", kinds={"python", "duckdb", "scipy"}, deps=DEPS,
            description="Coordinated responses to the shortages inside the time fence, chosen jointly by a linear "
            "programme (HiGHS) and verified by re-projection: no recommended action creates a new exception. "
            "Model: docs/responses.md.",
        ),
        dg.AssetSpec(
            "recommendation_history", group_name="respond", kinds={"python", "duckdb"}, deps=DEPS,
            description="Every run's recommendations, by as_of (re-running a day replaces its rows); the S&OP "
            "feedback counts responses repeated run after run from it.",
        ),
    ],
    can_subset=False,
)
def recommendations(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    started = time.monotonic()
    with warehouse.connect() as conn:
        run = read_run_context(conn)
        mart, stats = build_recommendations(conn, run, RespondConfig())
        replace_table(conn, "marts", "recommendations", mart, SQL_TYPES)
        # every run's recommendations, for the S&OP feedback on responses repeated run after run
        replace_run_rows(conn, RECOMMENDATION_HISTORY, mart, SQL_TYPES, run.as_of)
        record_built(conn, "marts.recommendations", RECOMMENDATION_HISTORY)
        [(history_rows, history_runs)] = conn.execute(
            f"SELECT count(*), count(DISTINCT as_of) FROM {RECOMMENDATION_HISTORY}").fetchall()
    seconds = round(time.monotonic() - started, 2)
    context.log.info(
        f"{len(mart)} recommendation(s) for {stats['shortages_in_fence']} shortage(s) inside the fence: "
        f"{stats['value_protected']:,.0f} protected for {stats['action_cost']:,.0f} of action cost, "
        f"{stats['escalations']} escalation(s) ({seconds} s)")
    if stats["solver_failed_blocks"]:
        context.log.warning(f"the solver failed on {stats['solver_failed_blocks']} block(s) of the response model: "
                            "their shortages get no action this run, and their escalations say so")
    yield dg.MaterializeResult(asset_key="recommendations", metadata={**stats, "rows": len(mart), "seconds": seconds})
    yield dg.MaterializeResult(asset_key="recommendation_history",
                               metadata={"rows": history_rows, "runs": history_runs})
