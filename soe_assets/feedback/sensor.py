"""The S&OP-calendar sensor: one ``sop_feedback`` run per cycle (with the plan vs actual it reads), ``lead_days``
before it."""


import os
from collections.abc import Callable
from datetime import date

import dagster as dg

from orchestration.sensors import warehouse_busy
from soe_assets.feedback.calendar import SopCalendar, due_cycle

SOP_FEEDBACK_KEY = dg.AssetKey("sop_feedback")
# Written by the KPI stage for each as_of; a feedback run after a newer daily ingest refreshes it first.
PLAN_VS_ACTUAL_KEY = dg.AssetKey("plan_vs_actual_weekly")
SENSOR_NAME = "sop_cycle_sensor"
CYCLE_TAG = "soe/sop_cycle"
# What the feedback reads from a pipeline run: the run's parameters and the committed plan.
FIRST_RUN_KEYS = (dg.AssetKey(["raw", "run_context"]), dg.AssetKey("int_committed_plan"))
# A failed feedback run (e.g. the warehouse locked by a run started by hand) is requested again on a later tick.
MAX_ATTEMPTS = 3


def run_key(cycle: date, attempt: int = 1) -> str:
    return f"sop_feedback:{cycle.isoformat()}" + (f":attempt-{attempt}" if attempt > 1 else "")


def _waiting_for_other_runs(instance: dg.DagsterInstance) -> str | None:
    """Why the feedback must wait: no pipeline run has filled the warehouse yet, or a run is writing it now (the
    warehouse takes one writer)."""
    if any(instance.get_latest_materialization_event(key) is None for key in FIRST_RUN_KEYS):
        return "waiting for a first pipeline run: the feedback reads the warehouse it fills"
    return warehouse_busy(instance, os.environ.get("SOE_WAREHOUSE", "soe.duckdb"))


def _retry(instance: dg.DagsterInstance, cycle: date) -> tuple[int | None, str]:
    """The attempt to request for ``cycle`` whose feedback was requested before (None: none), and why."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={CYCLE_TAG: cycle.isoformat()}))  # newest first
    succeeded = any(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    if runs and not succeeded and runs[0].status == dg.DagsterRunStatus.CANCELED:  # somebody stopped it: their call
        return None, (f"feedback for the S&OP cycle of {cycle} was canceled (run {runs[0].run_id[:8]}); launch "
                      f"sop_feedback from the UI when it is wanted")
    if succeeded or not runs or runs[0].status != dg.DagsterRunStatus.FAILURE:
        return None, f"feedback for the S&OP cycle of {cycle} already requested"
    if len(runs) >= MAX_ATTEMPTS:
        return None, (f"feedback for the S&OP cycle of {cycle} failed {len(runs)} times (last: run "
                      f"{runs[0].run_id[:8]}); launch sop_feedback from the UI once the cause is fixed")
    return len(runs) + 1, f"feedback for the S&OP cycle of {cycle} failed (run {runs[0].run_id[:8]}): trying again"


def build_sop_sensor(clock: Callable[[], date] = date.today) -> dg.SensorDefinition:
    """The sensor, reading the day from ``clock`` (tests pass a fixed one).

    The cursor holds the last cycle requested, so a cycle fires once even on an
    instance without run-key history; the run key makes Dagster drop repeats too.
    A requested cycle whose run failed is requested again (a new run key) on a later
    tick, up to ``MAX_ATTEMPTS`` runs; one whose run was canceled is not (as Dagster's
    own run retries, which retry failures only). No request while the warehouse has never been
    filled or a run is writing it.
    """

    @dg.sensor(
        name=SENSOR_NAME,
        asset_selection=[PLAN_VS_ACTUAL_KEY, SOP_FEEDBACK_KEY],
        minimum_interval_seconds=3600,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests the S&OP feedback (sop_feedback + HTML report) once per S&OP cycle, "
        "lead_days before the cycle date of the S&OP calendar.",
    )
    def sop_cycle_sensor(context: dg.SensorEvaluationContext, sop_calendar: SopCalendar):
        today = clock()
        cycle = due_cycle(sop_calendar.cycles(around=today), today, sop_calendar.lead_days)
        if cycle is None:
            return dg.SkipReason(f"{today}: no S&OP cycle within {sop_calendar.lead_days} days")
        attempt = 1
        if context.cursor and date.fromisoformat(context.cursor) >= cycle:
            attempt, why = _retry(context.instance, cycle)
            if attempt is None:
                return dg.SkipReason(why)
            context.log.info(why)
        waiting = _waiting_for_other_runs(context.instance)
        if waiting:
            return dg.SkipReason(f"S&OP cycle of {cycle}: {waiting}")
        context.update_cursor(cycle.isoformat())
        return dg.RunRequest(
            run_key=run_key(cycle, attempt),
            run_config={"ops": {"sop_feedback": {"config": {"sop_cycle": cycle.isoformat()}}}},
            tags={CYCLE_TAG: cycle.isoformat()},
        )

    return sop_cycle_sensor


sop_cycle_sensor = build_sop_sensor()
