"""Jobs and schedules: the daily S&OE run.

The daily job runs every stage, not a subset: the publish step writes every mart as one set, so a job
that published without rebuilding some of them would mix the marts of two runs (``kpi_weekly`` of
yesterday beside today's exceptions), and one without ``raw/ingest_log`` would publish without the
blocking checks that gate publishing. The S&OP feedback before a cycle comes from its sensor
(``soe_assets/feedback/sensor.py``).
"""

from __future__ import annotations

import os

import dagster as dg

from orchestration.sensors import warehouse_busy

DAILY_JOB = "soe_daily"

soe_daily = dg.define_asset_job(
    DAILY_JOB,
    selection=dg.AssetSelection.all(),
    description="Every morning, every stage: ingest, reconcile (dbt), detect, respond, KPIs, feedback, publish.",
)


@dg.schedule(name="soe_daily_0600", job=soe_daily, cron_schedule="0 6 * * *", execution_timezone="UTC",
             description="Daily S&OE run at 06:00 UTC; skipped, with the reason, while the warehouse is busy.")
def soe_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """A run requested while another holds the warehouse would fail at its start and alert as a failure: the
    tick says why it was skipped instead (the UI's tick history shows it)."""
    busy = warehouse_busy(context.instance, os.environ.get("SOE_WAREHOUSE", "soe.duckdb"))
    if busy:
        return dg.SkipReason(f"{busy}; launch soe_daily from the UI once it is free, or wait for tomorrow's run")
    return dg.RunRequest()


JOBS = [soe_daily]
SCHEDULES = [soe_daily_schedule]
