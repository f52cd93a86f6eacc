"""Materiality thresholds, money rates and priority weights of the exception engine.

One place for every number the engine uses; each default is explained in
``docs/exceptions.md``. A threshold pair (relative and absolute) must both be
exceeded for an exception to fire, so ordinary noise on a big SKU and rounding
on a tiny one raise nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DetectionConfig:
    # --- demand vs committed plan (customer-facing SKU-locations only)
    demand_window_weeks: int = 3
    """Demand below plan is compared over the last this many completed weeks (-3..-1); demand above plan
    cumulated from week -2 to week 0, 2 and 3: weekly noise averages out, an order booked a week early
    cancels out."""
    demand_above_rel: float = 0.25
    """Above plan: cumulated demand >= cumulated plan x (1 + this). Weekly noise of +-15% never gets there."""
    demand_below_rel: float = 0.30
    """Below plan: demand of weeks -3..-1 <= their plan x (1 - this)."""
    demand_min_units: float = 5.0
    """... and the window gap is at least this many units."""
    demand_recent_weeks: int = 2
    """Above plan: completed past weeks whose actual demand counts (weeks -2 and -1), with week 0 (nearly all
    booked)."""
    demand_near_weeks: int = 4
    """Weeks 0..3 whose booked orders count for demand above plan (booked below plan in a later week is
    the normal shape of an order book, no signal)."""

    # --- projection (marts.sku_location_week)
    stockout_min_units: float = 1.0
    """A projected shortage smaller than this (rounding) is not a stockout."""
    stockout_min_rel: float = 0.05
    """... nor one smaller than this share of an average week of demand."""
    safety_stock_rel: float = 0.20
    """Below safety stock fires when the projection inside the fence drops more than this share of the
    safety stock below it ..."""
    safety_stock_min_units: float = 2.0
    """... by at least this many units."""
    excess_cover_weeks: float = 6.0
    """Excess = available stock above safety stock + this many weeks of forward demand, now and at the
    end of the fence (the usual target is safety stock + 1-2 weeks of cycle stock)."""
    excess_min_units: float = 10.0

    # --- supply execution
    slip_tolerance_days: int = 1
    """A day of slip raises nothing: late PO / transfer / production fire from 2 days late."""
    production_short_rel: float = 0.15
    """A finished production order is short when completed < planned x (1 - this) ..."""
    production_short_lookback_days: int = 14
    """... and it was due within this many days before as_of (older variance is history)."""
    capacity_overload_rel: float = 0.05
    """A resource-week is overloaded when planned load > capacity x (1 + this) ..."""
    capacity_min_units: float = 1.0
    """... by at least this many units."""
    quality_hold_min_units: float = 1.0

    # --- data quality
    dq_value_per_row: float = 10.0
    """Money assigned to each quarantined row (handling cost), so bad data ranks low unless large."""
    freshness_days: Mapping[str, int] = field(default_factory=dict)
    """Per-source freshness limits over the contract defaults (2 days for execution sources, 35 for master
    data and the plan): the same limits as the freshness checks (``--freshness``, ``SOE_FRESHNESS_DAYS``)."""

    # --- money
    carrying_cost_rate: float = 0.25
    """Annual inventory carrying cost as a share of unit cost."""
    min_impact_value: float = 0.0
    """Exceptions whose impact is below this are dropped (0: keep all that pass the thresholds)."""

    # --- priority
    urgency_decay_per_week: float = 0.10
    """score = impact_value / (1 + this x weeks until the first affected week)."""
    unscheduled_urgency: float = 0.5
    """Urgency factor of exceptions without a week (data quality)."""

    # --- escalation to S&OP
    escalate_demand_variance: float = 0.50
    """A demand variance of this share of plan or more cannot be absorbed inside the fence."""


DEFAULT_CONFIG = DetectionConfig()
