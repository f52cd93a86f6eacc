"""Money at stake, stable ids, root-cause links, time-fence escalation and priority.

Pure functions over candidate frames (no Dagster, no warehouse); the formulas
are listed in ``docs/exceptions.md`` and in ``impact_value`` below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from soe_assets.detect.config import DetectionConfig

REVENUE_TYPES = ("projected_stockout", "below_safety_stock", "quality_hold", "demand_above_plan",
                 "demand_below_plan", "capacity_overload")
SUPPLY_TYPES = ("late_purchase_order", "late_transfer", "production_shortfall")
SHORTAGE_TYPES = ("projected_stockout", "below_safety_stock")
# causes looked for at the same SKU-location, strongest evidence first
CAUSE_TYPES = ("late_purchase_order", "late_transfer", "production_shortfall", "quality_hold", "demand_above_plan")


def impact_value(candidates: pd.DataFrame, config: DetectionConfig) -> pd.Series:
    """Money at stake per candidate, by type:

    - revenue at risk, ``qty x unit_price``: projected_stockout (worst shortfall), below_safety_stock
      (missing buffer), quality_hold (releasable held units needed to restore the buffer), demand_above_plan
      (demand above plan in the window), demand_below_plan (planned revenue not realised),
      capacity_overload (units over capacity x load-weighted unit price);
    - value of delayed or missing supply, ``qty x unit_cost``: late_purchase_order, late_transfer
      (open quantity), production_shortfall (units short);
    - carrying cost, ``qty x unit_cost x carrying_cost_rate x horizon_weeks / 52``: excess_inventory
      (excess units held over the horizon);
    - data_quality: ``qty x unit_cost`` (disputed units at cost; quarantined rows x dq_value_per_row).
    """
    qty = candidates["qty"].astype(float).clip(lower=0).fillna(0.0)
    price = candidates["unit_price"].astype(float).fillna(0.0)
    cost = candidates["unit_cost"].astype(float).fillna(0.0)
    horizon = candidates.get("horizon_weeks", pd.Series(13, index=candidates.index)).astype(float)
    kind = candidates["exception_type"]
    value = np.select(
        [kind.isin(REVENUE_TYPES), kind.isin(SUPPLY_TYPES), kind.eq("excess_inventory")],
        [qty * price, qty * cost, qty * cost * config.carrying_cost_rate * horizon / 52.0],
        default=qty * cost,
    )
    return pd.Series(np.round(value, 2), index=candidates.index, name="impact_value")


def exception_ids(frame: pd.DataFrame) -> pd.Series:
    """Stable id from type + SKU + location + reference (+ week for a resource-week overload).

    ``EX-`` + 16 hex digits of pandas' keyed SipHash of the key (``hash_pandas_object`` with a fixed
    key, vectorised): the same problem keeps its id whatever the row order or the run. The history
    matches ids across runs, so a pandas release that changed this hash would start every exception
    afresh; ``tests/test_detect_impact.py`` pins known ids to catch that.
    """
    week = frame["week_start"].astype(str).where(frame["exception_type"].eq("capacity_overload"), "")
    key = (
        frame["exception_type"].astype(str) + "|" + frame["sku_id"].fillna("").astype(str) + "|"
        + frame["location_id"].fillna("").astype(str) + "|" + frame["reference_id"].fillna("").astype(str) + "|" + week
    )
    digests = pd.util.hash_pandas_object(key, index=False, hash_key="soe-exceptions01")
    return "EX-" + digests.map("{:016x}".format)


def link_root_causes(frame: pd.DataFrame) -> pd.DataFrame:
    """Point each shortage (stockout, below safety stock) to the exception that causes it.

    A cause is a late PO or transfer into the same SKU-location that now arrives after
    the shortage starts (one arriving before it would leave the shortage as it is), a
    quality hold or demand above plan there, or a production shortfall of the SKU at the
    plant the late-supplied or short location is fed from (same SKU, any plant, when no
    cause is found at the location itself). The strongest evidence wins (the order of
    ``CAUSE_TYPES``), then the biggest impact; its id goes to ``caused_by_exception_id``
    and the explanation says so.
    """
    out = frame.copy()
    out["caused_by_exception_id"] = None
    shortages = out[out["exception_type"].isin(SHORTAGE_TYPES)][["exception_id", "sku_id", "location_id", "week_index"]]
    causes = out[out["exception_type"].isin(CAUSE_TYPES)].reindex(
        columns=["exception_id", "exception_type", "sku_id", "location_id", "reference_id", "impact_value",
                 "arrival_week"]  # only late supply has an arrival week
    ).rename(columns={"exception_id": "cause_id", "exception_type": "cause_type", "reference_id": "cause_ref",
                      "impact_value": "cause_impact"})
    if shortages.empty or causes.empty:
        return out
    causes["strength"] = causes["cause_type"].map({t: len(CAUSE_TYPES) - i for i, t in enumerate(CAUSE_TYPES)})
    local = shortages.merge(causes, on=["sku_id", "location_id"], how="inner")
    arrives_too_late = local["arrival_week"].astype(float) > local["week_index"].astype(float).clip(lower=0)
    local = local[local["arrival_week"].isna() | arrives_too_late]
    # a production shortfall upstream (same SKU, at a plant) explains a shortage anywhere else
    upstream = shortages.merge(causes[causes["cause_type"].eq("production_shortfall")].drop(columns="location_id"),
                               on="sku_id", how="inner")
    upstream["strength"] = 0
    linked = pd.concat([local, upstream], ignore_index=True)
    linked = linked.sort_values(["exception_id", "strength", "cause_impact"], ascending=[True, False, False])
    linked = linked.drop_duplicates("exception_id")
    # as text whatever pandas inferred: a cause column without any reference (or no link at all) is float
    cause_ref = linked["cause_ref"].astype("string")
    label = linked["cause_type"].astype("string").str.replace("_", " ") + (" " + cause_ref).fillna("")
    linked["note"] = " Cause: " + label + " (exception " + linked["cause_id"] + ")."
    out = out.merge(linked[["exception_id", "cause_id", "note"]], on="exception_id", how="left")
    has = out["cause_id"].notna()
    out.loc[has, "caused_by_exception_id"] = out.loc[has, "cause_id"]
    out.loc[has, "explanation"] = out.loc[has, "explanation"] + out.loc[has, "note"]
    return out.drop(columns=["cause_id", "note"])


def _group_largest(rows: pd.DataFrame) -> pd.Series:
    """Per group of a cause and the rows it causes (``caused_by_exception_id``, else the row's own id), its largest
    ``impact_value``."""
    caused_by = rows.get("caused_by_exception_id", pd.Series(None, index=rows.index, dtype=object))
    group = caused_by.astype(object).where(caused_by.notna(), rows["exception_id"])
    return rows["impact_value"].astype(float).fillna(0.0).groupby(group.to_numpy()).max()


def linked_impact(rows: pd.DataFrame) -> float:
    """The money at stake in ``rows``, linked exceptions counted once: a shortage and the exception that causes
    it (``caused_by_exception_id``) describe the same money from two sides, so a cause and the rows it causes
    count as their largest row. Adding rows never lowers the total, so a part of a list is never worth more
    than the whole."""
    return float(_group_largest(rows).sum())


def held_back_impact(shown: pd.DataFrame, held: pd.DataFrame) -> float:
    """What the rows an alert budget holds back add to the shown ones' money (linked exceptions counted once):
    per group, its largest row over both less its largest shown row; exactly 0 where they add nothing."""
    whole = _group_largest(pd.concat([shown, held], ignore_index=True))
    added = whole - _group_largest(shown).reindex(whole.index, fill_value=0.0)
    return float(added[added > 0].sum())


def escalate_to_sop(frame: pd.DataFrame, time_fence_weeks: int) -> pd.Series:
    """True when the first affected week lies beyond the fence, or no response inside the fence can
    absorb it (``absorbable`` false: a shortage larger than the spare stock reachable along lanes, an
    overload larger than the free capacity of earlier fence weeks, a demand variance of
    ``escalate_demand_variance`` or more). Data quality never escalates."""
    # an overdue item (a week before week 0) bites now: it lies in week 0, beyond a fence of no weeks
    beyond = frame["week_index"].astype(float).clip(lower=0).ge(time_fence_weeks).fillna(False)
    not_absorbable = frame["absorbable"].astype("boolean").eq(False).fillna(False).astype(bool)
    escalate = (beyond | not_absorbable) & ~frame["exception_type"].eq("data_quality")
    return escalate.astype(bool)


def rank_priority(frame: pd.DataFrame, config: DetectionConfig) -> pd.Series:
    """1 = act first. score = impact_value / (1 + urgency_decay_per_week x weeks until the first
    affected week) (x unscheduled_urgency without a week); ties by impact, then id. Unique."""
    weeks_away = frame["week_index"].astype(float).clip(lower=0)
    urgency = (1.0 / (1.0 + config.urgency_decay_per_week * weeks_away)).fillna(config.unscheduled_urgency)
    score = frame["impact_value"].astype(float).fillna(0.0) * urgency
    order = pd.DataFrame({"score": score, "impact": frame["impact_value"], "id": frame["exception_id"]})
    order = order.sort_values(["score", "impact", "id"], ascending=[False, False, True])
    priority = pd.Series(np.arange(1, len(order) + 1), index=order.index)
    return priority.reindex(frame.index).astype("int64")
