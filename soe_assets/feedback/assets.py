"""Dagster wrapper of the feedback stage: ``marts.sop_feedback`` and the HTML report."""


from datetime import date

import dagster as dg
import pandas as pd

from orchestration.resources import WarehouseResource
from soe_assets.feedback.calendar import SopCalendar, next_cycle, previous_cycle
from soe_assets.feedback.patterns import FEEDBACK_TYPES, FeedbackRules, detect_patterns, feedback_window
from soe_assets.feedback.report import render_report, write_report
from soe_assets.kpis.assets import dbt_model_keys, kpi_weekly, plan_vs_actual_weekly, shared_plan_vs_actual
from soe_assets.warehouse import read_run_context, record_built, replace_table, table_exists


class SopFeedbackConfig(dg.Config):
    """``sop_cycle``: the cycle date (YYYY-MM-DD) to prepare; empty = the next cycle on or after as_of."""

    sop_cycle: str = ""
    bias_weeks: int = FeedbackRules.bias_weeks
    min_abs_bias: float = FeedbackRules.min_abs_bias
    min_occurrences: int = FeedbackRules.min_occurrences


@dg.asset(
    group_name="feedback",
    deps=[kpi_weekly, plan_vs_actual_weekly,
          *dbt_model_keys("stg_purchase_orders", "stg_production_orders", "stg_resource_capacity",
                          "int_committed_plan"),
          # repeated expedites and reallocations, today's rows included: in a full run the feedback waits for
          # them, so what it counts does not depend on which step ran first
          dg.AssetKey("exception_history"), dg.AssetKey("recommendation_history")],
    kinds={"python", "duckdb", "html"},
    description="Recurring variance since the previous S&OP cycle (persistent forecast bias, chronic supplier "
    "delay, chronic capacity shortfall, repeated expedites) with a suggested S&OP action; also renders the "
    "S&OP report, published with the marts as <publish_dir>/sop_report.html.",
)
def sop_feedback(
    context: dg.AssetExecutionContext, config: SopFeedbackConfig, warehouse: WarehouseResource,
    sop_calendar: SopCalendar,
) -> dg.MaterializeResult:
    rules = FeedbackRules(bias_weeks=config.bias_weeks, min_abs_bias=config.min_abs_bias,
                          min_occurrences=config.min_occurrences)
    with warehouse.connect() as conn:
        as_of = read_run_context(conn).as_of
        cycles = sop_calendar.cycles(around=as_of)
        cycle = date.fromisoformat(config.sop_cycle) if config.sop_cycle else next_cycle(cycles, as_of) or as_of
        previous = previous_cycle(cycles, cycle)
        feedback = detect_patterns(conn, as_of, cycle, previous, rules,
                                   plan_vs_actual=shared_plan_vs_actual(context, conn, as_of))
        replace_table(conn, "marts", "sop_feedback", feedback, FEEDBACK_TYPES)
        kpis = conn.execute("SELECT * FROM marts.kpi_weekly").df() if table_exists(conn, "marts", "kpi_weekly") \
            else pd.DataFrame(columns=["week_start", "kpi_name", "scope_type", "scope_id", "value", "numerator",
                                       "denominator"])
        window = feedback_window(as_of, previous, rules)
        page = render_report(kpis, feedback, as_of=as_of, sop_cycle=cycle, window_start=window.start)
        path = write_report(page, warehouse.files_path)  # published with the marts, under the same gates
        record_built(conn, "marts.sop_feedback")  # with its report: a set never pairs it with an older one
    context.log.info(f"sop_feedback: {len(feedback)} pattern(s) for the S&OP cycle of {cycle}; report {path.name} "
                     "(published with the marts when the run publishes)")
    return dg.MaterializeResult(
        metadata={
            "sop_cycle": str(cycle),
            "window_start": str(window.start),
            "patterns": len(feedback),
            "report": dg.MetadataValue.path(str(path)),
            **{f"patterns.{p}": int(n) for p, n in feedback.pattern.value_counts().items()},
        }
    )
