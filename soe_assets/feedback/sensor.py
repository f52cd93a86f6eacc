"""The S&OP-calendar sensor: one ``sop_feedback`` run per cycle (with the plan vs actual it reads), ``lead_days``
before it."""


from collections.abc import Callable
from datetime import date

import dagster as dg

from soe_assets.feedback.calendar import SopCalendar, due_cycle

SOP_FEEDBACK_KEY = dg.AssetKey("sop_feedback")
# Written by the KPI stage for each as_of; a feedback run after a newer daily ingest refreshes it first.
PLAN_VS_ACTUAL_KEY = dg.AssetKey("plan_vs_actual_weekly")
SENSOR_NAME = "sop_cycle_sensor"
CYCLE_TAG = "soe/sop_cycle"


def run_key(cycle: date) -> str:
    return f"sop_feedback:{cycle.isoformat()}"


def build_sop_sensor(clock: Callable[[], date] = date.today) -> dg.SensorDefinition:
    """The sensor, reading the day from ``clock`` (tests pass a fixed one).

    The cursor holds the last cycle requested, so a cycle fires once even on an
    instance without run-key history; the run key makes Dagster drop repeats too.
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
        if context.cursor and date.fromisoformat(context.cursor) >= cycle:
            return dg.SkipReason(f"feedback for the S&OP cycle of {cycle} already requested")
        context.update_cursor(cycle.isoformat())
        return dg.RunRequest(
            run_key=run_key(cycle),
            run_config={"ops": {"sop_feedback": {"config": {"sop_cycle": cycle.isoformat()}}}},
            tags={CYCLE_TAG: cycle.isoformat()},
        )

    return sop_cycle_sensor


sop_cycle_sensor = build_sop_sensor()
