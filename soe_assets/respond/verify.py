"""Verify before recommending: re-project the trusted view with the chosen actions applied.

The projection is linear in the actions, so the re-projection adds each action's effect (see
``candidates.py``) to the end-of-week balances of ``marts.sku_location_week``. An action set
*creates a new exception* when, anywhere it touches:

- a balance falls below ``min(safety stock, balance before)`` in any horizon week (a new or deeper
  stockout / below-safety-stock: donors, and the SKU of an order a reprioritisation pushes later,
  must stay at or above safety stock);
- a resource-week gets more pull-ins than its spare capacity (a new capacity overload;
  reprioritisations swap two orders' slots and leave every week's load unchanged);
- a receiving location gets excess it did not have (the exception engine's excess rule: available
  stock now and the balance at the end of the fence both more than safety stock + ``excess_cover_weeks``
  of demand, by ``excess_min_units``; no action changes the stock now);
- a donor ships in a week more than it has on hand at the start of that week (its opening balance
  after the actions of the weeks before, less the transfers booked to leave it that week): a transfer
  cannot leave with stock that arrives later that week, nor with stock a booked shipment takes;
- a donor that serves customers gets demand above plan it did not have: a transfer down the network
  (from a plant to a DC or store, from a DC to a store) is demand there for the exception engine's
  ``demand_above_plan``, against a plan that covers the replenishment it ships. A departure after the last
  window the engine judges counts in that window (a later run's windows reach it).

Actions touching a violating SKU-location or resource-week are withdrawn and the rest re-checked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from soe_assets.respond.candidates import DETECTION, Problem, departures_in_demand_windows
from soe_assets.respond.model import expand_weeks

TOLERANCE = 1e-6


def reproject(problem: Problem, actions: pd.DataFrame) -> pd.DataFrame:
    """``problem.positions`` with ``delta`` and ``proj_new`` for the given actions (``action_id``, ``qty``)."""
    cells = expand_weeks(problem.effects[problem.effects["action_id"].isin(actions["action_id"])])
    cells = cells.merge(actions[["action_id", "qty"]], on="action_id")
    cells["delta"] = cells["sign"] * cells["qty"]
    delta = cells.groupby(["sku_id", "location_id", "week_index"], as_index=False)["delta"].sum()
    out = problem.positions.merge(delta, on=["sku_id", "location_id", "week_index"], how="left")
    out["delta"] = out["delta"].astype(float).fillna(0.0)
    out["proj_new"] = out["proj"] + out["delta"]
    return out


def find_violations(problem: Problem, actions: pd.DataFrame, projected: pd.DataFrame) -> pd.Series:
    """Boolean per action (index aligned with ``actions``): it would create a new exception."""
    lower = projected["proj_new"] < np.minimum(projected["ss"], projected["proj"]) - TOLERANCE
    bad_places = projected.loc[lower, ["sku_id", "location_id"]].drop_duplicates()
    # excess where there was none, by the exception engine's rule: stock now (week 0's opening balance, which
    # no action changes) and the balance at the end of the fence both above safety stock + cover weeks
    keys = ["sku_id", "location_id"]
    fe = projected[projected["week_index"] == problem.fence_weeks - 1].set_index(keys)
    now = projected[projected["week_index"] == 0].set_index(keys).reindex(fe.index)
    cover_weeks = DETECTION.excess_cover_weeks * now["later_week_demand"].fillna(0)
    excess_now = now["opening"] - now["ss"] - cover_weeks >= DETECTION.excess_min_units
    new_excess = (excess_now & (fe["delta"] > TOLERANCE)
                  & (fe["proj_new"] - fe["ss"] - cover_weeks >= DETECTION.excess_min_units)
                  & (fe["proj"] - fe["ss"] - cover_weeks < DETECTION.excess_min_units))
    bad_places = pd.concat([bad_places, new_excess[new_excess].index.to_frame(index=False),
                            _shipped_before_on_hand(actions, projected),
                            _new_demand_above_plan(problem, actions)]).drop_duplicates()
    touched = problem.effects[["action_id", "sku_id", "location_id"]].merge(bad_places, on=["sku_id", "location_id"])
    bad = actions["action_id"].isin(touched["action_id"])
    pulls = actions[actions["resource_key"].notna() & (actions["capacity_week"] >= 0)]  # swaps are capacity-neutral
    if len(pulls):
        load = pulls.groupby(["resource_key", "capacity_week"], as_index=False)["qty"].sum().merge(
            problem.capacity.rename(columns={"week_index": "capacity_week"}), on=["resource_key", "capacity_week"], how="left")
        over = load[load["qty"] > load["spare_qty"].fillna(0) + TOLERANCE][["resource_key", "capacity_week"]]
        bad |= actions.set_index(["resource_key", "capacity_week"]).index.isin(pd.MultiIndex.from_frame(over)) \
            if len(over) else False
    return pd.Series(np.asarray(bad, dtype=bool), index=actions.index)


def _shipped_before_on_hand(actions: pd.DataFrame, projected: pd.DataFrame) -> pd.DataFrame:
    """(sku_id, location_id) of donors whose Monday stock after the actions of the weeks before does not cover
    what leaves them that Monday: their departures and the transfers booked to leave that week (no worse than
    before where it was already short)."""
    keys = ["sku_id", "location_id", "week_index"]
    leaving = actions[actions["depart_week"] >= 0].rename(
        columns={"from_location_id": "location_id", "depart_week": "week_index"}).groupby(keys, as_index=False)["qty"].sum()
    lowered = projected.loc[projected["delta"] < 0, ["sku_id", "location_id"]].drop_duplicates()
    booked = projected[projected["booked_out"] > 0].merge(lowered, on=["sku_id", "location_id"])[keys]
    weeks = pd.concat([leaving[keys], booked]).drop_duplicates().merge(leaving, on=keys, how="left")
    if not len(weeks):
        return pd.DataFrame(columns=["sku_id", "location_id"])
    before = projected[keys + ["delta"]].assign(week_index=projected["week_index"] + 1)
    weeks = weeks.merge(projected[keys + ["opening", "booked_out"]], on=keys, how="left").merge(before, on=keys, how="left")
    monday = weeks["opening"].fillna(0.0) - weeks["booked_out"].fillna(0.0)
    short = monday + weeks["delta"].fillna(0.0) - weeks["qty"].fillna(0.0) < np.minimum(monday, 0.0) - TOLERANCE
    return weeks.loc[short, ["sku_id", "location_id"]]


def _new_demand_above_plan(problem: Problem, actions: pd.DataFrame) -> pd.DataFrame:
    """(sku_id, location_id) of donors serving customers whose departures down the network push a demand window
    above plan where none of their windows was before (a place already above plan has its exception)."""
    shipped = departures_in_demand_windows(problem, actions)
    added = shipped.groupby(["sku_id", "location_id", "end_week"]).agg(qty=("qty", "sum"), room_qty=("room_qty", "first"))
    over = added[added["qty"] >= added["room_qty"]].reset_index()
    return over[["sku_id", "location_id"]].drop_duplicates()


def verified(problem: Problem, actions: pd.DataFrame, max_rounds: int = 5) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Withdraw actions that create new exceptions until none does.

    Returns (kept actions, withdrawn actions, re-projection with the kept ones).
    """
    kept = actions
    withdrawn = [actions.iloc[0:0]]
    for _ in range(max_rounds):
        projected = reproject(problem, kept)
        bad = find_violations(problem, kept, projected)
        if not bad.any():
            return kept, pd.concat(withdrawn), projected
        withdrawn.append(kept[bad])
        kept = kept[~bad]
    kept = kept.iloc[0:0]
    return kept, pd.concat([*withdrawn, actions]).drop_duplicates("action_id"), reproject(problem, kept)
