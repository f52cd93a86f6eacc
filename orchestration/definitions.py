"""The one Dagster ``Definitions`` of soe."""

from __future__ import annotations

import dagster as dg

from orchestration.checks import MART_CHECKS
from orchestration.dbt import dbt_resource, soe_dbt_models
from orchestration.progress import progress_logger
from orchestration.publishing import build_publish_asset
from orchestration.resources import QualitySettings, SoeSettings, WarehouseResource
from orchestration.schedules import JOBS, SCHEDULES
from orchestration.sensors import FULL_RUN_JOB, SENSORS
from soe_assets.detect.assets import detected_exceptions
from soe_assets.feedback.assets import sop_feedback
from soe_assets.feedback.calendar import SopCalendar
from soe_assets.feedback.sensor import sop_cycle_sensor
from soe_assets.ingest.assets import landing_zone
from soe_assets.ingest.checks import INGEST_CHECKS, INGEST_LOG_KEY
from soe_assets.kpis.assets import kpi_weekly, plan_vs_actual_weekly
from soe_assets.respond.assets import recommendations


STAGE_ASSETS = [
    landing_zone, soe_dbt_models, detected_exceptions, recommendations, plan_vs_actual_weekly, kpi_weekly, sop_feedback,
]


def build_definitions(
    settings: SoeSettings, warehouse: WarehouseResource, quality: QualitySettings | None = None
) -> dg.Definitions:
    """Definitions bound to the given resources (the CLI passes concrete paths, the UI ``EnvVar``s)."""
    produced = [key for asset in STAGE_ASSETS for key in asset.keys if key.path[0] != "raw"]
    # raw/ingest_log carries the blocking publish gates (soe_assets/ingest/checks.py).
    published_marts = build_publish_asset([*produced, INGEST_LOG_KEY])
    full_run = dg.define_asset_job(
        FULL_RUN_JOB, selection=dg.AssetSelection.all(), description="Every stage once, in order."
    )
    return dg.Definitions(
        assets=[*STAGE_ASSETS, published_marts],
        asset_checks=[*INGEST_CHECKS, *MART_CHECKS],
        jobs=[full_run, *JOBS],
        schedules=SCHEDULES,
        sensors=[sop_cycle_sensor, *SENSORS],
        resources={"settings": settings, "warehouse": warehouse, "dbt": dbt_resource(),
                   "sop_calendar": SopCalendar(), "quality": quality or QualitySettings()},
        loggers={"soe_progress": progress_logger},
        executor=dg.in_process_executor,
    )


defs = build_definitions(
    settings=SoeSettings(landing_dir=dg.EnvVar("SOE_LANDING_DIR"), publish_dir=dg.EnvVar("SOE_PUBLISH_DIR")),
    warehouse=WarehouseResource(path=dg.EnvVar("SOE_WAREHOUSE")),
    quality=QualitySettings.from_env(),
)
