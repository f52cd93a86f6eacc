"""Jobs and schedules: the daily S&OE run and the weekly KPI / S&OP-feedback run."""

from __future__ import annotations

import dagster as dg

DAILY_JOB = "soe_daily"
WEEKLY_JOB = "soe_weekly"

soe_daily = dg.define_asset_job(
    DAILY_JOB,
    selection=dg.AssetSelection.groups("ingest", "reconcile", "detect", "respond", "publish"),
    description="Every morning: ingest the landing zone, reconcile (dbt), detect exceptions, respond, publish.",
)
soe_weekly = dg.define_asset_job(
    WEEKLY_JOB,
    selection=dg.AssetSelection.groups("kpis", "feedback", "publish"),
    description="Every Monday: weekly KPIs of the week just ended, S&OP feedback and its report, publish.",
)

soe_daily_schedule = dg.ScheduleDefinition(
    name="soe_daily_0600", job=soe_daily, cron_schedule="0 6 * * *",
    description="Daily S&OE run at 06:00.",
)
soe_weekly_schedule = dg.ScheduleDefinition(
    name="soe_weekly_monday_0700", job=soe_weekly, cron_schedule="0 7 * * 1",
    description="Weekly KPIs and feedback, Mondays at 07:00 (after the daily run).",
)

JOBS = [soe_daily, soe_weekly]
SCHEDULES = [soe_daily_schedule, soe_weekly_schedule]
