"""The exception engine: run every rule, value, link, escalate and rank the open exceptions."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from soe_assets.detect.config import DetectionConfig
from soe_assets.detect.impact import (
    escalate_to_sop, exception_ids, held_back_impact, impact_value, link_root_causes, rank_priority,
)
from soe_assets.detect.rules import RULES, shared_relations
from soe_assets.respond.config import RespondConfig
from soe_assets.respond.recommend import decided_escalations
from soe_assets.warehouse import RunContext, read_run_context

DETECTED_COLUMNS = [
    "exception_id", "exception_type", "sku_id", "location_id", "week_start", "reference_id", "impact_value",
    "priority", "escalate_to_sop", "explanation", "caused_by_exception_id", "shortfall_qty", "weeks_affected",
    "week_index",
]


@dataclass(frozen=True)
class AlertBudget:
    """What an alert budget held back: how many open exceptions and the money they represent."""

    kept: int
    held_back: int
    held_back_value: float


# Key columns a run's exceptions may leave empty throughout (no reference at all, only capacity overloads).
KEY_TEXT_COLUMNS = ("sku_id", "location_id", "reference_id")


def detect_exceptions(conn: duckdb.DuckDBPyConnection, config: DetectionConfig) -> pd.DataFrame:
    """Every open exception of this run, ranked (priority 1 = act first), one row per stable id."""
    run = read_run_context(conn)
    with shared_relations(conn, config):
        parts = [rule(conn, config) for rule in RULES.values()]
    found = [p.dropna(axis=1, how="all") for p in parts if not p.empty]  # all-NA columns would blur dtypes
    candidates = pd.concat(found, ignore_index=True).reindex(columns=parts[0].columns) if found else parts[0]
    for column in KEY_TEXT_COLUMNS:  # text even where no rule filled it (reindexed, an all-NA column is float)
        candidates[column] = candidates[column].astype(object).where(candidates[column].notna(), None)
    if candidates.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in DETECTED_COLUMNS})
    candidates["horizon_weeks"] = run.horizon_weeks
    candidates["impact_value"] = impact_value(candidates, config)
    candidates = candidates[candidates["impact_value"] >= config.min_impact_value].copy()
    candidates["week_start"] = pd.to_datetime(candidates["week_start"]).dt.date
    candidates["exception_id"] = exception_ids(candidates)
    # the same key twice (cannot happen by construction) would break the grain: keep the biggest
    candidates = candidates.sort_values("impact_value", ascending=False).drop_duplicates("exception_id")
    candidates = link_root_causes(candidates)
    candidates["escalate_to_sop"] = escalate_to_sop(candidates, run.time_fence_weeks)
    _settle_stockout_escalations(conn, run, candidates)
    candidates["priority"] = rank_priority(candidates, config)
    candidates["shortfall_qty"] = candidates["qty"].astype(float).round(2)
    return candidates.sort_values("priority")[DETECTED_COLUMNS].reset_index(drop=True)


def _settle_stockout_escalations(conn: duckdb.DuckDBPyConnection, run: RunContext, candidates: pd.DataFrame) -> None:
    """A stockout the responses plan for is escalated exactly when they escalate it: the actions inside the
    fence (transfers, expedites, pull-ins, swaps, chosen jointly for every short place) are what decides
    whether it can be absorbed there, not the spare stock reachable along lanes alone."""
    stockout = candidates["exception_type"].eq("projected_stockout")
    if not stockout.any():
        return
    decided = decided_escalations(conn, run, RespondConfig())
    decision = decided.reindex(pd.MultiIndex.from_frame(candidates[["sku_id", "location_id"]])).to_numpy()
    settled = stockout.to_numpy() & pd.notna(decision)
    candidates.loc[settled, "escalate_to_sop"] = decision[settled].astype(bool)


def apply_alert_budget(detected: pd.DataFrame, max_open: int) -> tuple[pd.DataFrame, AlertBudget]:
    """Keep the top ``max_open`` exceptions by priority (0: all); report what was held back."""
    if max_open <= 0 or len(detected) <= max_open:
        return detected, AlertBudget(kept=len(detected), held_back=0, held_back_value=0.0)
    ranked = detected.sort_values("priority")
    kept, held = ranked.iloc[:max_open], ranked.iloc[max_open:]
    return kept, AlertBudget(kept=len(kept), held_back=len(held), held_back_value=held_back_impact(kept, held))
