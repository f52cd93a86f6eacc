"""Dagster wrappers of the detect stage: the ``exceptions`` mart and its history across runs."""

import dagster as dg

from orchestration.dbt import soe_dbt_models
from orchestration.resources import QualitySettings, SoeSettings, WarehouseResource
from soe_assets.detect.config import DetectionConfig
from soe_assets.detect.engine import apply_alert_budget, detect_exceptions
from soe_assets.detect.lifecycle import HISTORY_TABLE, SQL_TYPES, mart_rows, previous_run, track_lifecycle, write_history
from soe_assets.detect.impact import linked_impact
from soe_assets.ingest.checks import evaluate
from soe_assets.ingest.health import Finding
from soe_assets.warehouse import read_run_context, record_built, replace_table

# dbt model names this stage reads; their asset keys are looked up on the dbt assets (the key may carry
# the schema as a prefix, e.g. marts/sku_location_week)
_DBT_KEYS = {key.path[-1]: key for key in soe_dbt_models.keys}
READS = ["sku_location_week", "int_open_supply", "int_committed_plan", "int_available_stock", "reconciliation_findings",
         "stg_sales_orders", "stg_pos_sales", "stg_shipments", "stg_production_orders", "stg_resource_capacity",
         "stg_skus", "stg_lanes", "stg_locations"]  # the last two also for the responses a stockout's escalation awaits
# data_quality exceptions read the quarantine, and the ingest log through the freshness check's verdict; the log
# is no dependency in the graph: its blocking checks (the publish gates) must hold back only the publish
DEPS = [*(_DBT_KEYS.get(name, dg.AssetKey(name)) for name in READS), dg.AssetKey(["raw", "quarantine"])]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "exceptions", group_name="detect", kinds={"python", "duckdb"},
            deps=DEPS,
            description="What needs attention, most important first: open exceptions of this run (priority 1 = "
            "act first) + those resolved since the last run. Thresholds and formulas: docs/exceptions.md.",
        ),
        dg.AssetSpec(
            "exception_history", group_name="detect", kinds={"python", "duckdb"},
            deps=DEPS,
            description="Every run's exceptions (one row per as_of and exception_id), kept across runs: "
            "first_detected_on, resolved_on, status. Re-running an as_of replaces its rows.",
        ),
    ],
    check_specs=[dg.AssetCheckSpec("priority_unique", asset="exceptions", blocking=True,
                                   description="priority unique among open exceptions; exception_id unique.")],
    can_subset=False,
)
def detected_exceptions(context: dg.AssetExecutionContext, settings: SoeSettings, warehouse: WarehouseResource,
                        quality: QualitySettings):
    """Detect every exception type, value and rank it, link root causes, track it from run to run."""
    config = DetectionConfig(freshness_days=dict(quality.freshness_days))
    with warehouse.connect() as conn:
        run = read_run_context(conn)
        detected = detect_exceptions(conn, config)
        kept, budget = apply_alert_budget(detected, settings.max_open_exceptions)
        history_rows = track_lifecycle(detected, previous_run(conn, run.as_of), run.as_of,
                                       kept_ids=set(kept["exception_id"]))
        mart = mart_rows(history_rows)
        replace_table(conn, "marts", "exceptions", mart, SQL_TYPES)
        write_history(conn, history_rows, run.as_of)
        record_built(conn, "marts.exceptions", HISTORY_TABLE)
        history_size = conn.execute("SELECT count(*), count(DISTINCT as_of) FROM marts.exception_history").fetchone()
    status = mart["status"].value_counts().to_dict()
    open_rows = mart[mart["status"].eq("open")]
    new = int(open_rows["first_detected_on"].eq(run.as_of).sum())
    open_impact = linked_impact(open_rows)
    context.log.info(
        f"{status.get('open', 0)} open exception(s) ({new} new), {status.get('resolved', 0)} resolved since the last "
        f"run, open impact {open_impact:,.0f} (linked exceptions counted once)")
    if budget.held_back:
        context.log.warning(
            f"alert budget {settings.max_open_exceptions}: held back {budget.held_back} lower-priority open "
            f"exception(s) worth {budget.held_back_value:,.0f} (kept in exception_history)")
    by_type = open_rows["exception_type"].value_counts().to_dict()
    yield dg.MaterializeResult(
        asset_key="exceptions",
        metadata={
            "open": int(status.get("open", 0)), "new": new, "resolved": int(status.get("resolved", 0)),
            "open_by_type": dg.MetadataValue.json(by_type),
            "open_impact_value": open_impact,  # linked exceptions counted once
            "held_back": budget.held_back, "held_back_value": budget.held_back_value,
        },
    )
    open_priorities = open_rows["priority"]
    unique = bool(open_priorities.is_unique and mart["exception_id"].is_unique)
    finding = Finding(unique, f"priorities unique among {len(open_priorities)} open exception(s)" if unique else
                      "two open exceptions share a priority, or two exceptions an exception_id: the ranked list "
                      "is ambiguous", {"open": len(open_priorities)})
    # through the alert sink, as every failed check
    yield from evaluate(context, [(dg.AssetKey("exceptions"), "priority_unique", finding, dg.AssetCheckSeverity.ERROR)],
                        warehouse, run.as_of.isoformat())
    yield dg.MaterializeResult(asset_key="exception_history",
                               metadata={"rows": int(history_size[0]), "runs": int(history_size[1])})
