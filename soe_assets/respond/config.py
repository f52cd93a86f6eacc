"""Cost model and limits of the respond stage (documented in ``docs/responses.md``).

Money is in the landing zone's one currency; "per unit" means per stock-keeping
unit moved, expedited or pulled in. The value of a unit of shortage covered is
the SKU's ``unit_price`` (revenue protected).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RespondConfig:
    # --- which shortages are answered (same thresholds as the exception engine's projected_stockout)
    stockout_min_units: float = 1.0
    """A projected shortage smaller than this (rounding) is not answered."""
    stockout_min_rel: float = 0.05
    """... nor one smaller than this share of an average week of sensed demand."""

    # --- reallocation / alternate source (stock moved along a lane)
    transfer_handling_cost_per_unit: float = 0.50
    """Pick, pack and book an unplanned transfer, on top of the lane's ``cost_per_unit``."""

    # --- expedite a confirmed arrival
    expedite_po_cost_per_unit: float = 2.00
    """Fixed premium per unit for asking a supplier to ship earlier (priority handling)."""
    expedite_po_cost_per_unit_day: float = 0.25
    """... plus this per unit and per day the arrival is pulled in (faster freight)."""
    max_po_pull_in_days: int = 14
    """A confirmed PO arrival is never pulled in by more than this many days."""
    expedite_transfer_cost_per_unit: float = 1.00
    """Premium per unit to re-route a shipment already in transit onto a faster service."""
    expedite_transfer_cost_per_unit_day: float = 0.50
    max_transfer_pull_in_days: int = 7
    """Only shipments that have departed are expedited (a shipment not yet departed would take stock
    earlier from its origin: that is a reallocation, not an expedite)."""

    # --- production pull-in (within the resource's spare capacity)
    pull_in_cost_per_unit: float = 1.00
    """Changeover / overtime premium per unit finished earlier than planned."""
    pull_in_cost_per_unit_day: float = 0.10
    max_production_pull_in_days: int = 21

    # --- reprioritise production (swap two orders on a full resource)
    reprioritise_cost_per_unit: float = 1.50
    """Re-sequencing premium per unit when an order is run before another on a resource with no spare
    capacity (two changeovers re-planned, the later order re-confirmed). Offered only in weeks with no
    spare capacity, and dearer than a pull-in, so where a pull-in into another week's spare capacity
    also covers the shortage the model takes the pull-in."""
    reprioritise_cost_per_unit_day: float = 0.10
    """... plus this per unit and per day the shortage's order is pulled in (as a pull-in)."""

    # --- value of serving a shortage's backorders earlier
    late_service_share_per_week: float = 0.05
    """Cost of a unit of demand waiting one fence week past its due week, as a share of its ``unit_price``
    (goodwill, customer penalties). The model's main value is the worst shortage left; without this, where
    week 0 cannot be covered (nothing arrives in time), units bringing the balance back to zero later in
    the fence would be worth nothing, and the backorders would wait past the fence."""

    # --- solver and output
    epsilon_cost_per_unit: float = 0.01
    """Tiny cost on every action unit so the LP never moves stock it does not need (ties, zero-cost lanes)."""
    min_action_qty: float = 1.0
    """LP quantities are rounded down to whole units; actions below this are dropped."""
    block_max_variables: int = 20_000
    """SKU subproblems are packed into LP blocks of at most about this many variables."""

