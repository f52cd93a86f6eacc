"""Dagster wrappers of the KPI stage: plan vs actual per SKU-location-week and ``marts.kpi_weekly``."""

from datetime import date

import dagster as dg
import duckdb
from dagster_dbt import get_asset_key_for_model

from orchestration.dbt import soe_dbt_models
from orchestration.resources import WarehouseResource
from soe_assets.kpis.metrics import (
    KPI_TYPES, PLAN_VS_ACTUAL_TABLE, compute_kpis, current_plan_vs_actual, write_plan_vs_actual,
)
from soe_assets.warehouse import read_run_context, record_built, replace_table

KPI_INPUTS = [
    "stg_sales_orders", "stg_pos_sales", "stg_purchase_orders", "stg_production_orders",
    "stg_inventory_snapshots", "stg_skus", "int_committed_plan",
]


def dbt_model_keys(*models: str) -> list[dg.AssetKey]:
    """The Dagster keys of dbt models (whatever prefix the dbt translation gives them)."""
    return [get_asset_key_for_model([soe_dbt_models], model) for model in models]


PLAN_VS_ACTUAL_INPUTS = ["stg_sales_orders", "stg_pos_sales", "stg_skus", "int_committed_plan"]


@dg.asset(
    group_name="kpis",
    deps=dbt_model_keys(*PLAN_VS_ACTUAL_INPUTS),
    kinds={"python", "duckdb"},
    description=f"{PLAN_VS_ACTUAL_TABLE}: committed plan and actual demand per customer-serving SKU-location and "
    "past week, the base of forecast accuracy (kpi_weekly) and of the S&OP bias feedback (sop_feedback). "
    "Definition: docs/kpis.md.",
)
def plan_vs_actual_weekly(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        rows = write_plan_vs_actual(conn, read_run_context(conn).as_of)
    return dg.MaterializeResult(metadata={"rows": rows, "table": PLAN_VS_ACTUAL_TABLE})


def shared_plan_vs_actual(
    context: dg.AssetExecutionContext, conn: duckdb.DuckDBPyConnection, as_of: date
) -> str | None:
    """The shared table for ``as_of``, or None (with a warning) when its readers must compute it themselves."""
    shared = current_plan_vs_actual(conn, as_of)
    if shared is None:
        context.log.warning(f"{PLAN_VS_ACTUAL_TABLE} is not for as_of {as_of}: computing plan vs actual here")
    return shared


@dg.asset(
    group_name="kpis",
    deps=[*dbt_model_keys(*KPI_INPUTS), plan_vs_actual_weekly, dg.AssetKey("exception_history")],
    kinds={"python", "duckdb"},
    description="Weekly KPIs of every past week (total, per product family, per location), long format "
    "with numerator and denominator. Definitions: docs/kpis.md.",
)
def kpi_weekly(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        as_of = read_run_context(conn).as_of
        frame = compute_kpis(conn, as_of, plan_vs_actual=shared_plan_vs_actual(context, conn, as_of))
        replace_table(conn, "marts", "kpi_weekly", frame, KPI_TYPES)
        record_built(conn, "marts.kpi_weekly")
    latest = frame[frame.scope_type == "total"].sort_values("week_start").groupby("kpi_name").tail(1)
    context.log.info(f"kpi_weekly: {len(frame)} rows, {frame.week_start.nunique()} weeks")
    return dg.MaterializeResult(
        metadata={
            "rows": len(frame),
            "weeks": int(frame.week_start.nunique()),
            **{f"latest.{r.kpi_name}": float(r.value) for r in latest.itertuples()},
        }
    )
