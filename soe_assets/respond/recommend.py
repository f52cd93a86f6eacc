"""From the trusted view to the ``recommendations`` mart: candidates -> joint LP -> verification -> rows.

Besides the optimised actions, every short SKU-location whose shortage the fence cannot fully cover
gets ``adjust_order_promise`` rows (its booked order lines that cannot be met, lowest-priority
customers first, re-promised to the first week the balance is back above zero) and one
``escalate_to_sop`` row; a shortage that lies only beyond the fence is escalated directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from soe_assets.detect.config import DEFAULT_CONFIG
from soe_assets.detect.impact import exception_ids
from soe_assets.respond.candidates import Problem, load_problem
from soe_assets.respond.config import RespondConfig
from soe_assets.respond.model import Solution, expand_weeks, solve
from soe_assets.respond.report import whole_money
from soe_assets.respond.verify import find_violations, reproject, verified
from soe_assets.warehouse import RunContext, table_exists

MART_COLUMNS = [
    "recommendation_id", "exception_id", "resolves_exception_ids", "action_type", "sku_id", "from_location_id",
    "to_location_id", "reference_id", "qty", "cost", "impact_resolved_value", "creates_new_exception", "explanation",
]
SQL_TYPES = {
    "recommendation_id": "VARCHAR", "exception_id": "VARCHAR", "resolves_exception_ids": "VARCHAR",
    "action_type": "VARCHAR", "sku_id": "VARCHAR", "from_location_id": "VARCHAR", "to_location_id": "VARCHAR",
    "reference_id": "VARCHAR", "qty": "DOUBLE", "cost": "DOUBLE", "impact_resolved_value": "DOUBLE",
    "creates_new_exception": "BOOLEAN", "explanation": "VARCHAR", "week_start": "DATE", "rank": "INTEGER",
    "as_of": "DATE",
}
EXTRA_COLUMNS = ["week_start", "rank", "as_of"]

# Every warehouse table the stage reads, by schema: the trusted view and the supply, demand, network and
# capacity behind its candidates, the demand windows of the SKUs a transfer down the network may ship, the
# run's exceptions it links to. The asset's dependencies and benchmarks/respond_stress.py both take this list.
RESPOND_READS = {
    "staging": ["stg_locations", "stg_lanes", "stg_shipments", "stg_production_orders", "stg_resource_capacity",
                "stg_skus", "stg_sales_orders", "stg_pos_sales"],
    "intermediate": ["int_open_supply", "int_booked_demand", "int_committed_plan", "int_run_weeks"],
    "raw": ["run_context"],
    "marts": ["sku_location_week", "exception_history"],
}


def _n(values: pd.Series) -> pd.Series:
    """Whole numbers as such, fractions with up to two decimals: a row's 12.5 units read '12.5', not '12'."""
    return values.astype(float).round(2).map("{:,.2f}".format).str.replace(r"\.?0+$", "", regex=True)


def _units(values: pd.Series) -> pd.Series:
    """Quantities with their unit: '1 unit', '1,250 units'."""
    return _n(values) + np.where(np.abs(np.round(np.asarray(values, dtype=float), 2)) == 1, " unit", " units")


def _money(values: pd.Series) -> pd.Series:
    return "$" + pd.Series(whole_money(values), index=values.index).map("{:,.0f}".format)


def _week_label(week0: date, week_index: pd.Series) -> pd.Series:
    starts = pd.Timestamp(week0) + pd.to_timedelta(7 * week_index.astype(int), unit="D")
    return "week-" + starts.dt.isocalendar().week.astype(str) + " (" + starts.dt.strftime("%Y-%m-%d") + ")"


def rounded_up_within_items(actions: pd.DataFrame, up: pd.Series, down: pd.Series) -> pd.Series:
    """Per action: it may take its ``up`` quantity, rather than ``down``, without overdrawing an item it draws on
    (``item_key``, and the order a reprioritisation pushes later), its other actions taking theirs rounded down.
    The units an item has beyond its actions rounded down go to its earliest arrivals first (a unit landing sooner
    lifts every week after it): expedites of one 50-unit PO line split 16.7 + 16.7 + 16.6 take 17 + 17 + 16, not
    51 nor 48 and the place left 2 short. A unit an action cannot take (another item it draws on has none left)
    stays for the item's next action.

    The result is that of one pass in arrival order, each action rounding up if every item it draws on has a unit
    left after the earlier ones, decided in rounds over all actions at once: an action that fits among those not
    yet refused is granted (those granted before it can only be fewer), one that no longer fits after those
    already granted is refused; each round decides at least the earliest action still open."""
    wants = up > down  # each takes one unit more: up is at most one above down
    order = actions.assign(remainder=actions["qty"] - down).sort_values(["arrive_week", "remainder"],
                                                                         ascending=[True, False])
    position = pd.Series(np.arange(len(order)), index=order.index)
    items = ["item_key", "item_qty"]
    draws = pd.concat([actions[items], actions[["other_item_key", "other_item_qty"]].set_axis(items, axis=1)])
    draws = draws.assign(action=draws.index, down=down.reindex(draws.index).to_numpy(),
                         wants=wants.reindex(draws.index).to_numpy(), position=position.reindex(draws.index).to_numpy())
    draws = draws[draws["item_key"].notna()].reset_index(drop=True)
    draws["room"] = draws["item_qty"] - draws.groupby("item_key")["down"].transform("sum") + 1e-6
    draws = draws[draws["wants"]].sort_values(["item_key", "position"])
    draws["own"] = draws.groupby(["item_key", "action"]).cumcount() + 1  # an action may draw twice on one item
    shares = actions.index.isin(draws["action"])
    granted, undecided = wants & ~shares, wants & shares  # an action drawing on no item shares nothing
    while undecided.any():
        live = draws[(granted | undecided).reindex(draws["action"]).to_numpy()]
        fits = (live.groupby("item_key").cumcount() + 1 <= live["room"]).groupby(live["action"]).all()
        newly = undecided & fits.reindex(actions.index, fill_value=False)
        granted |= newly
        taken = granted.reindex(live["action"]).to_numpy()
        before = live.assign(taken=taken).groupby("item_key")["taken"].cumsum() - taken
        refused = (before + live["own"] > live["room"]).groupby(live["action"]).any().reindex(actions.index,
                                                                                              fill_value=False)
        undecided &= ~newly & ~refused
    return granted | ~wants


def choose_actions(problem: Problem, config: RespondConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Solution]:
    """Solve, round to whole units, verify. Returns (actions, withdrawn, re-projection, the LP solution: the
    blocks the solver failed on, whose places get no action, so the run must say so).

    The LP's quantities are rounded up where the re-projection with every quantity rounded up flags
    nothing the action touches (a shortage of 32.9 units gets 33, not 32 and a unit left short) and the
    item it draws on (a PO line, shipment or production order) has the units (``rounded_up_within_items``),
    else down; should that mix still need a withdrawal, every quantity is rounded down, which never takes more
    from a donor, a resource or an item than the LP did.
    """
    solution = solve(problem, config)
    acts = solution.actions
    # the verifier reads only the chosen actions' effects: narrowed once, not at every check (1M network:
    # 1.2M candidates, a few thousand chosen)
    chosen = replace(problem, effects=problem.effects[problem.effects["action_id"].isin(acts["action_id"])])
    down = np.floor(acts["qty"] + 1e-6)
    up = acts.assign(qty=np.ceil(acts["qty"] - 1e-6))
    up_qty = up["qty"].where(~find_violations(chosen, up, reproject(chosen, up)), down)
    for qty in (up_qty.where(rounded_up_within_items(acts, up_qty, down), down), down):
        rounded = acts.assign(qty=qty)
        kept, withdrawn, projected = verified(chosen, rounded[rounded["qty"] >= config.min_action_qty])
        if withdrawn.empty:
            break
    return kept, withdrawn, projected, solution


def attribute(problem: Problem, actions: pd.DataFrame, projected: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Covered units and revenue protected per short location, shared among the actions into it by their
    Shapley values (``_share_of_cover``): units the worst shortfall never needs (they serve waiting backorders
    sooner) get 0, as do actions that only free stock at a donor (no shortage there)."""
    keys = ["sku_id", "location_id"]
    fence = projected[projected["inside_time_fence"]]
    after = fence.groupby(keys).agg(left_qty=("proj_new", lambda s: max(0.0, -s.min())), price=("price", "first"))
    short = problem.shortages.merge(after.reset_index(), on=keys, how="left")
    short["covered_qty"] = (short["short_qty"] - short["left_qty"].fillna(short["short_qty"])).clip(lower=0)
    short["protected_value"] = short["covered_qty"] * short["price"].fillna(0)
    into = actions.merge(short[["sku_id", "location_id", "protected_value", "covered_qty", "short_qty", "first_week"]]
                         .rename(columns={"location_id": "to_location_id"}), on=["sku_id", "to_location_id"], how="left")
    into["share"] = _share_of_cover(problem, into[into["short_qty"].notna()], fence).reindex(into.index, fill_value=0.0)
    # in cents here, before the explanations quote them and the rows are ranked by them
    into["impact_resolved_value"] = cents_summing_to_their_total(
        (into["protected_value"] * into["share"]).fillna(0.0), [into["sku_id"], into["to_location_id"]])
    into["covered_share_qty"] = (into["covered_qty"] * into["share"]).fillna(0.0)
    into["cost"] = into["qty"] * into["cost_per_unit"]
    return into.drop(columns="share"), short


# Up to this many actions into one short location, the cover is shared by exact Shapley values (2^n coalitions
# re-projected); beyond it (rare: the model uses few actions per place), by quantity.
EXACT_SHARE_MAX_ACTIONS = 10
# Coalition balances computed at once (coalitions x places x fence weeks): about 32 MB of float64 (its
# shortfalls and the sums that build it about as much again, for a moment).
SHARE_BLOCK_CELLS = 4_000_000


def _share_of_cover(problem: Problem, into_short: pd.DataFrame, fence: pd.DataFrame) -> pd.Series:
    """Per action into a short location (index of ``into_short``): its share of the cover, its Shapley value
    over the place's actions (its contribution to lowering the worst fence shortfall, averaged over every order
    they could be carried out in) over the cover of them all. No single week or absence tells which actions
    count: one expedite can fix week 1 and another week 3 (each needed, neither enough), several transfers can
    each be partly spare (none needed alone), one can land only after the worst week (never needed)."""
    keys = ["sku_id", "location_id"]
    if into_short.empty:
        return pd.Series(dtype=float)
    actions = (into_short[["action_id", "sku_id", "to_location_id", "qty"]]
               .rename(columns={"to_location_id": "location_id"}))
    actions["place"] = actions.groupby(keys, sort=False).ngroup()
    actions["player"] = actions.groupby("place").cumcount()
    places = actions.drop_duplicates("place").set_index("place")[keys].sort_index()
    n_weeks = problem.fence_weeks
    balance = (fence[[*keys, "week_index", "proj_new"]].merge(places.reset_index(), on=keys)
               .pivot_table(index="place", columns="week_index", values="proj_new", aggfunc="first")
               .reindex(index=places.index, columns=range(n_weeks)).to_numpy(dtype=float))
    cells = expand_weeks(problem.effects[problem.effects["action_id"].isin(actions["action_id"])])
    cells = cells[cells["week_index"] < n_weeks].merge(actions, on=["action_id", *keys])
    n_players = actions.groupby("place").size().to_numpy()
    # room for the players of the places shared exactly only: one busy place must not widen every place's row
    exact = n_players[cells["place"].to_numpy()] <= EXACT_SHARE_MAX_ACTIONS
    cells = cells[exact]
    lifts = np.zeros((len(places), min(n_players.max(), EXACT_SHARE_MAX_ACTIONS), n_weeks))
    np.add.at(lifts, (cells["place"].to_numpy(), cells["player"].to_numpy(), cells["week_index"].to_numpy()),
              (cells["sign"] * cells["qty"]).to_numpy(dtype=float))
    base = balance - lifts.sum(axis=1)  # the place without any of its actions
    exact_share = np.zeros(lifts.shape[:2])
    for n in np.unique(n_players[n_players <= EXACT_SHARE_MAX_ACTIONS]):
        group = np.flatnonzero(n_players == n)
        block = max(1, SHARE_BLOCK_CELLS // (2 ** n * n_weeks))
        for start in range(0, len(group), block):
            rows = group[start:start + block]
            exact_share[rows, :n] = _shapley_shares(base[rows], lifts[rows, :n])
    place, player = actions["place"].to_numpy(), actions["player"].to_numpy()
    qty = actions["qty"].to_numpy(dtype=float)
    busy = n_players[place] > EXACT_SHARE_MAX_ACTIONS
    share = np.zeros(len(actions))
    share[busy] = qty[busy] / np.bincount(place, weights=qty)[place[busy]]
    share[~busy] = exact_share[place[~busy], player[~busy]]
    return pd.Series(share, index=into_short.index)


def _shapley_shares(base: np.ndarray, lifts: np.ndarray) -> np.ndarray:
    """Shares of the cover (places x players; rows sum to 1, or 0 where nothing is covered) of each player's
    Shapley value in the game v(S) = the worst shortfall of ``base`` lowered by the ``lifts`` of coalition S."""
    n = lifts.shape[1]
    coalitions = np.arange(2 ** n)
    members = (coalitions[:, None] >> np.arange(n)) & 1  # coalitions x players
    balances = base[:, None, :] + np.einsum("cn,pnw->pcw", members, lifts)
    shortfall = np.maximum(-balances.min(axis=2), 0.0)  # places x coalitions
    value = shortfall[:, :1] - shortfall
    size = members.sum(axis=1)
    weight = np.array([math.factorial(s) * math.factorial(n - 1 - s) / math.factorial(n) for s in range(n)])
    phi = np.zeros((len(base), n))
    for player in range(n):  # the marginal value of joining every coalition without the player
        without = coalitions[members[:, player] == 0]
        phi[:, player] = ((value[:, without | (1 << player)] - value[:, without]) * weight[size[without]]).sum(axis=1)
    covered = value[:, -1:]
    return np.divide(phi, covered, out=np.zeros_like(phi), where=covered > 1e-9)


def _at_least_shown(values: pd.Series, shown: Callable[[pd.Series], pd.Series], rounds_to_zero: float,
                    instead: str) -> pd.Series:
    """``shown(values)``, but a positive value that would read 0 reads ``instead``: a small real share of a
    cover is not 'covers 0', which says the action covers nothing."""
    values = values.fillna(0)
    return shown(values).where(~((values > 0) & (values < rounds_to_zero)), instead)


def cents_summing_to_their_total(values: pd.Series, groups: list[pd.Series]) -> pd.Series:
    """``values`` (>= 0) in cents whose sum per group is its total's rounding (rows rounded one by one, a
    place's $950 shared in thirds read $950.01): each row is the rounded running total less the one before."""
    running = values.astype(float).groupby(groups, sort=False, dropna=False).cumsum().round(2)
    before = running.groupby(groups, sort=False, dropna=False).shift(fill_value=0.0)
    return (running - before).round(2)


def action_rows(problem: Problem, acts: pd.DataFrame, projected: pd.DataFrame) -> pd.DataFrame:
    """The mart rows of the chosen actions (from ``attribute``): explanation and the served shortage's week."""
    if not len(acts):
        return pd.DataFrame(columns=MART_COLUMNS + ["week_start", "first_week"])
    week0 = problem.week0
    lowered = projected[projected["delta"] < 0].assign(margin=lambda f: f["proj_new"] - f["ss"])
    lowest = lowered.loc[lowered.groupby(["sku_id", "location_id"])["margin"].idxmin()] if len(lowered) else lowered
    # typed even when no action lowers a donor (expedites only): an untyped empty frame made ``low`` an object
    donors = lowest[["sku_id", "location_id", "margin", "ss"]].rename(columns={"margin": "low", "ss": "low_ss"})
    a = acts.merge(donors.rename(columns={"location_id": "from_location_id"}), on=["sku_id", "from_location_id"], how="left")
    # a reprioritisation lowers the SKU of the order it pushes later, at the plant
    pushed = donors.rename(columns={"sku_id": "other_sku_id", "location_id": "to_location_id", "low": "other_low"})
    a = a.merge(pushed[["other_sku_id", "to_location_id", "other_low"]], on=["other_sku_id", "to_location_id"], how="left")
    has_short = a["short_qty"].notna()
    short_week = _week_label(week0, a["first_week"].fillna(0))
    # units that only shorten the wait of backorders (the worst week is out of reach) cover none of the shortfall
    waits_less = has_short & (a["covered_share_qty"].fillna(0) <= 0)
    to = a["to_location_id"].astype(str)
    covers = np.select(
        [waits_less, has_short],
        ["serves the backorders waiting at " + to + " sooner, without lowering its worst shortfall of "
         + _units(a["short_qty"].fillna(0)) + " that starts in " + short_week + " ($0 of revenue protected)",
         "covers " + _at_least_shown(a["covered_share_qty"], _n, 0.005, "under 0.01") + " of the shortfall at " + to
         + " that starts in " + short_week + " and reaches " + _units(a["short_qty"].fillna(0)) + " ("
         + _at_least_shown(a["impact_resolved_value"], _money, 0.5, "under $1") + " of revenue protected)"],
        "frees stock at " + to + " for the transfers recommended from it")
    transfer = a["action_type"].isin(["reallocate_stock", "alternate_source"])
    arrives = pd.to_datetime(a["new_date"])
    departs = arrives - pd.to_timedelta(a["transit_days"].fillna(0), unit="D")
    verb = np.where(a["action_type"] == "alternate_source", "Supply ", "Move ")
    t_text = (verb + _units(a["qty"]) + " of " + a["sku_id"] + " from " + a["from_location_id"].astype(str) + " to "
              + a["to_location_id"].astype(str) + " (" + a["transit_days"].astype("Int64").astype(str)
              + np.where(a["transit_days"] == 1, " day, ", " days, ")
              + _money(a["cost"]) + ", departing " + departs.dt.strftime("%Y-%m-%d") + ", arriving "
              + arrives.dt.strftime("%Y-%m-%d") + "): " + covers
              + "; " + a["from_location_id"].astype(str) + " stays at or above safety stock (lowest margin "
              + _units(a["low"].fillna(0)) + ").")
    ref_text = np.where(a["action_type"] == "pull_in_production", "production order ",
                        np.where(a["action_type"] == "expedite_transfer", "shipment ", "PO line "))
    verb2 = np.where(a["action_type"] == "pull_in_production", "Pull in ", "Expedite ")
    p_text = (verb2 + ref_text + a["reference_id"].astype(str) + " (" + _units(a["qty"]) + " of " + a["sku_id"]
              + " into " + a["to_location_id"].astype(str) + ") from " + pd.to_datetime(a["old_date"]).dt.strftime("%Y-%m-%d")
              + " to " + pd.to_datetime(a["new_date"]).dt.strftime("%Y-%m-%d") + " (" + a["days_pulled"].astype("Int64").astype(str)
              + np.where(a["days_pulled"] == 1, " day earlier, ", " days earlier, ") + _money(a["cost"])
              + np.where(a["action_type"] == "pull_in_production", " within the resource's spare capacity", "")
              + "): " + covers + ".")
    # reprioritise_production: A runs in B's slot, B in A's old week; B's SKU-location is the one lowered
    swap = a["action_type"] == "reprioritise_production"
    resource = a["resource_key"].astype(str).str.split("/", n=1).str[-1]
    slot = pd.Timestamp(week0) + pd.to_timedelta(7 * a["arrive_week"].astype(int), unit="D")
    s_text = ("Run " + a["reference_id"].astype(str) + " (" + _units(a["qty"]) + " of " + a["sku_id"] + ") before "
              + a["other_reference_id"].astype(str) + " on " + resource + " at " + a["to_location_id"].astype(str)
              + " in week " + slot.dt.strftime("%Y-%m-%d") + " (finishing " + pd.to_datetime(a["new_date"]).dt.strftime("%Y-%m-%d")
              + " instead of " + pd.to_datetime(a["old_date"]).dt.strftime("%Y-%m-%d") + ", " + _money(a["cost"]) + "): "
              + _units(a["qty"]) + " of " + a["other_reference_id"].astype(str) + " (" + a["other_sku_id"].astype(str)
              + ") move from " + pd.to_datetime(a["other_old_date"]).dt.strftime("%Y-%m-%d") + " to "
              + pd.to_datetime(a["other_new_date"]).dt.strftime("%Y-%m-%d") + ", " + a["other_sku_id"].astype(str)
              + " stays at or above safety stock at " + a["to_location_id"].astype(str) + " (lowest margin "
              + _units(a["other_low"].fillna(0)) + "); " + covers + ".")
    a["explanation"] = np.where(transfer, t_text, np.where(swap, s_text, p_text))
    a["week_start"] = pd.Timestamp(week0) + pd.to_timedelta(7 * a["first_week"].fillna(0).astype(int), unit="D")
    return a


def _booked_lines(conn: duckdb.DuckDBPyConnection, places: pd.DataFrame) -> pd.DataFrame:
    conn.register("_places", places[["sku_id", "location_id"]])
    try:
        return conn.execute("""
            with value as (
                select customer_id, sum(b.qty * coalesce(s.unit_price, 0)) as customer_value
                from intermediate.int_booked_demand as b left join staging.stg_skus as s using (sku_id)
                where b.demand_kind = 'sales_order' group by customer_id
            )
            select b.reference_id, b.sku_id, b.location_id, b.customer_id, b.week_index, b.qty, b.due_date,
                   b.promised_date,
                   coalesce(value.customer_value, 0) as customer_value
            from intermediate.int_booked_demand as b
            inner join _places using (sku_id, location_id)
            left join value using (customer_id)
            where b.demand_kind = 'sales_order'
            order by b.reference_id
        """).df()
    finally:
        conn.unregister("_places")


def promise_rows(problem: Problem, short: pd.DataFrame, projected: pd.DataFrame, lines: pd.DataFrame,
                 escalated: pd.DataFrame) -> pd.DataFrame:
    """Re-promise the booked lines that cannot be met: from the lowest-priority customer (smallest open
    booked value) and the latest requested line, until the uncovered fence shortage is accounted for.
    New promise: the Monday of the first week from which the re-projected balance (the actions applied)
    stays >= 0; no such week in the horizon: the line is listed without a date, to hold until
    S&OP re-plans the supply. Only at the places ``escalated`` lists (``sku_id``, ``to_location_id``): a
    remainder too small to escalate is rounding, and moves no customer's order. A line already promised
    for the new date or later (a re-promise carried out) accounts for its units without a row."""
    if not len(escalated):
        return pd.DataFrame()
    places = escalated[["sku_id", "to_location_id"]].rename(columns={"to_location_id": "location_id"})
    left = short.merge(places.drop_duplicates(), on=["sku_id", "location_id"])
    left = left[left["left_qty"].fillna(left["short_qty"]) >= 1][["sku_id", "location_id", "left_qty", "first_week", "price"]]
    if not len(left) or not len(lines):
        return pd.DataFrame()
    p = projected.sort_values(["sku_id", "location_id", "week_index"])
    neg = p.assign(neg=p["proj_new"] < -1e-6)
    last_neg = neg[neg["neg"]].groupby(["sku_id", "location_id"])["week_index"].max().rename("last_neg").reset_index()
    left = left.merge(last_neg, on=["sku_id", "location_id"], how="left")
    left["recovery_week"] = left["last_neg"].fillna(-1).astype(int) + 1
    cand = lines.merge(left, on=["sku_id", "location_id"])
    recovery_date = pd.Timestamp(problem.week0) + pd.to_timedelta(7 * cand["recovery_week"], unit="D")
    cand = cand.assign(_moved=(cand["recovery_week"] < problem.horizon_weeks)
                       & (pd.to_datetime(cand["promised_date"]) >= recovery_date))
    # only the lines due from the first short week up to the recovery week can move to it: they alone account for
    # the shortage; so does a line moved there already, whenever it was requested (once the actions before it
    # are carried out, the shortage can start after the week of a line that moved for it)
    cand = cand[((cand["week_index"] >= cand["first_week"]) | cand["_moved"]) & (cand["week_index"] < problem.fence_weeks)
                & (cand["recovery_week"] > cand["week_index"])]
    # a line already promised for the new date or later accounts for its units first, without a row; then the
    # latest requested line first (``due_date``: the requested date), not only the latest week
    cand = cand.sort_values(["sku_id", "location_id", "_moved", "customer_value", "due_date", "reference_id"],
                            ascending=[True, True, False, True, False, True])
    before = cand.groupby(["sku_id", "location_id"])["qty"].cumsum() - cand["qty"]
    cand = cand[(before < cand["left_qty"]) & ~cand["_moved"]]
    if not len(cand):
        return pd.DataFrame()
    balance = projected[["sku_id", "location_id", "week_index", "proj_new"]].rename(columns={"week_index": "recovery_week"})
    cand = cand.merge(balance, on=["sku_id", "location_id", "recovery_week"], how="left")
    new_date = pd.Timestamp(problem.week0) + pd.to_timedelta(7 * cand["recovery_week"], unit="D")
    recovers = cand["recovery_week"] < problem.horizon_weeks
    outcome = np.where(
        recovers,
        " to " + new_date.dt.strftime("%Y-%m-%d") + ": " + _units(cand["left_qty"]) + " of the fence shortage cannot "
        "be covered and the balance after the recommended actions is back at or above zero from that week ("
        + _n(cand["proj_new"].fillna(0)) + " that week).",
        ": " + _units(cand["left_qty"]) + " of the fence shortage cannot be covered and the balance after the "
        "recommended actions is below zero in the last week of the " + str(problem.horizon_weeks) + "-week horizon, "
        "so no date can be promised yet: hold the line until S&OP re-plans the supply (escalated).")
    return pd.DataFrame({
        "action_type": "adjust_order_promise", "sku_id": cand["sku_id"], "from_location_id": cand["location_id"],
        "to_location_id": None, "reference_id": cand["reference_id"], "qty": cand["qty"], "cost": 0.0,
        "impact_resolved_value": 0.0, "to_place": cand["location_id"], "at_stake": cand["qty"] * cand["price"].fillna(0),
        "week_start": pd.Timestamp(problem.week0) + pd.to_timedelta(7 * cand["first_week"].astype(int), unit="D"),
        "explanation": "Re-promise order line " + cand["reference_id"] + " (" + _units(cand["qty"]) + " of " + cand["sku_id"]
        + " from " + cand["location_id"] + ", customer " + cand["customer_id"].astype(str) + " with "
        + _money(cand["customer_value"]) + " of open orders; the lines of customers with less move first) from "
        + pd.to_datetime(cand["promised_date"]).dt.strftime("%Y-%m-%d") + outcome,
    })


def escalation_rows(problem: Problem, all_short: pd.DataFrame, short: pd.DataFrame, projected: pd.DataFrame,
                    config: RespondConfig, unsolved: frozenset[str] = frozenset()) -> pd.DataFrame:
    """One ``escalate_to_sop`` per short SKU-location still short after the actions, by as much as a
    stockout must be (``stockout_min_units``, ``stockout_min_rel`` of an average week's demand): a remainder
    smaller than that is rounding, not a shortage. ``unsolved``: SKUs whose model the solver failed on (their
    escalation says so, not that no action can cover them)."""
    after = (-projected.groupby(["sku_id", "location_id"])["proj_new"].min()).clip(lower=0.0).rename("worst_after")
    rows = all_short.merge(after.reset_index(), on=["sku_id", "location_id"], how="left")
    rows = rows.merge(short[["sku_id", "location_id", "covered_qty", "left_qty"]], on=["sku_id", "location_id"], how="left")
    rows["worst_after"] = rows["worst_after"].fillna(rows["worst_short_qty"])
    rows["covered_qty"] = rows["covered_qty"].fillna(0.0)
    material = np.maximum(config.stockout_min_units, config.stockout_min_rel * rows["avg_week_demand"].fillna(0.0))
    rows = rows[rows["worst_after"] > material].copy()
    if not len(rows):
        return pd.DataFrame()
    beyond = rows["first_week"].isna()
    week = rows["first_week"].fillna(rows["first_short_week_any"]).astype(int)
    label = _week_label(problem.week0, week)
    fence_left = rows["left_qty"].fillna(0)
    # what is still short after the actions: not short minus the units they move, since an expedite or a
    # pull-in only brings supply forward
    remaining = np.maximum(fence_left, rows["worst_after"])
    text = np.where(
        beyond,
        rows["sku_id"] + " at " + rows["location_id"] + " is projected short " + _units(rows["worst_after"]) + " ("
        + _money(rows["worst_after"] * rows["price"]) + ") from " + label + ", beyond the " + str(problem.fence_weeks)
        + "-week time fence: escalate to S&OP to re-plan supply.",
        rows["sku_id"] + " at " + rows["location_id"] + " is short " + _units(rows["worst_short_qty"]) + " from " + label
        + np.where(rows["sku_id"].isin(unsolved),
                   "; the response model could not be solved for it this run (see the run's log): ",
                   np.where(rows["covered_qty"] > 0,
                            "; the actions inside the " + str(problem.fence_weeks) + "-week fence bring that down to ",
                            "; no action inside the " + str(problem.fence_weeks) + "-week fence can cover it: "))
        + _units(remaining) + " (" + _money(remaining * rows["price"]) + ") for S&OP to resolve.")
    return pd.DataFrame({
        "action_type": "escalate_to_sop", "sku_id": rows["sku_id"], "from_location_id": None,
        "to_location_id": rows["location_id"], "reference_id": None, "qty": remaining,
        "cost": 0.0, "impact_resolved_value": 0.0, "to_place": rows["location_id"],
        "at_stake": remaining * rows["price"].fillna(0),
        "week_start": pd.Timestamp(problem.week0) + pd.to_timedelta(7 * week, unit="D"), "explanation": text,
    })


def below_safety_stock_after(projected: pd.DataFrame) -> pd.MultiIndex:
    """(sku_id, location_id) still below safety stock inside the fence after the actions, by the measure
    detection raises ``below_safety_stock`` with (more than ``safety_stock_rel`` of it and
    ``safety_stock_min_units`` short)."""
    fence = projected[projected["inside_time_fence"] & (projected["ss"] > 0)]
    material = np.maximum(DEFAULT_CONFIG.safety_stock_rel * fence["ss"], DEFAULT_CONFIG.safety_stock_min_units)
    below = fence["ss"] - fence["proj_new"] > material
    return pd.MultiIndex.from_frame(fence.loc[below, ["sku_id", "location_id"]].drop_duplicates())


def overloads_cleared(pulls: pd.DataFrame, overloads: pd.DataFrame) -> pd.Series:
    """Per pull-in row (``pulls``: location_id, resource_id, week_start of the order's old week, qty), the
    ``capacity_overload`` exceptions its pull-ins clear, comma-separated (else NaN).

    ``overloads`` (exception_id, location_id, resource_id, week_start, over_qty, capacity_qty) are the open
    overloads. The pull-ins move their quantity out of the order's old week, and only into fence weeks
    with spare capacity (LP constraint 3), so no other week becomes overloaded. An overload is cleared when
    what is left of it no longer meets detection's rule (load above capacity x (1 +
    ``capacity_overload_rel``) and at least ``capacity_min_units`` over); every row moving units out of
    that week then resolves it.
    """
    week = ["location_id", "resource_id", "week_start"]
    if not len(pulls) or not len(overloads):
        return pd.Series(np.nan, index=pulls.index, dtype=object)
    moved = pulls.groupby(week, as_index=False)["qty"].sum()
    left = overloads.merge(moved, on=week)
    remaining = left["over_qty"] - left["qty"]
    still = (remaining > left["capacity_qty"] * DEFAULT_CONFIG.capacity_overload_rel) & (
        remaining >= DEFAULT_CONFIG.capacity_min_units)
    cleared = left.loc[~still].groupby(week)["exception_id"].agg(",".join)
    return pd.Series(cleared.reindex(pd.MultiIndex.from_frame(pulls[week])).to_numpy(), index=pulls.index)


def _overload_links(conn: duckdb.DuckDBPyConnection, rows: pd.DataFrame, exc: pd.DataFrame) -> pd.Series:
    """``overloads_cleared`` for the rows' pull-ins, read from the warehouse: each pulled order's resource and
    the week its load counts in (the trusted view's production supply), each open overload's capacity."""
    pulled = rows["action_type"].eq("pull_in_production")
    overloads = exc[exc["exception_type"] == "capacity_overload"]
    if not pulled.any() or not len(overloads):
        return pd.Series(np.nan, index=rows.index, dtype=object)
    orders = conn.execute("""
        select s.reference_id, s.location_id, s.resource_id, w.week_start
        from intermediate.int_open_supply as s join intermediate.int_run_weeks as w using (week_index)
        where s.supply_kind = 'production' and s.reference_id in (select unnest(?))""",
        [sorted(set(rows.loc[pulled, "reference_id"]))]).df()
    capacity = conn.execute("""
        select location_id, resource_id, week_start, capacity_qty from staging.stg_resource_capacity
        where resource_id in (select unnest(?))""", [sorted(set(overloads["reference_id"]))]).df()
    open_overloads = overloads.rename(columns={"reference_id": "resource_id", "shortfall_qty": "over_qty"})
    open_overloads = open_overloads.assign(week_start=pd.to_datetime(open_overloads["week_start"])).merge(
        capacity.assign(week_start=pd.to_datetime(capacity["week_start"])), on=["location_id", "resource_id", "week_start"])
    pulls = rows.loc[pulled, ["reference_id", "qty"]].merge(orders, on="reference_id", how="left").set_index(
        rows.index[pulled])
    pulls["week_start"] = pd.to_datetime(pulls["week_start"])
    return overloads_cleared(pulls, open_overloads).reindex(rows.index)


def link_exceptions(conn: duckdb.DuckDBPyConnection, rows: pd.DataFrame, still_below: pd.MultiIndex,
                    as_of: date) -> pd.DataFrame:
    """exception_id (the shortage at the place it bites) and every exception the row resolves: the place's
    ``below_safety_stock`` too where the actions lift it out of it (``still_below`` lists where they do not),
    the late PO line, shipment or production order it brings forward when the rows bringing it forward
    move its whole open quantity (``item_qty``) to dates within the slip tolerance of its ``promised_date``,
    and the capacity overload its pull-ins clear (``overloads_cleared``).
    A place still short after the actions (escalated) keeps its exceptions: the rows serving it resolve only
    the supply exceptions they clear, if any (else None); an escalation or a re-promise resolves nothing.

    The ids are those of the run's open exceptions in ``exception_history``: those the alert budget held
    back from ``exceptions`` included, since the actions serve every shortage. A place with no such
    exception gets the id detection gives its stockout."""
    columns = ["exception_id", "exception_type", "sku_id", "location_id", "reference_id", "week_start", "shortfall_qty"]
    exc = conn.execute("""select exception_id, exception_type, sku_id, location_id, coalesce(reference_id, '') as reference_id,
                                 week_start, shortfall_qty
                          from marts.exception_history where as_of = ? and status = 'open'
                          order by exception_id""", [as_of]).df() if table_exists(conn, "marts", "exception_history") \
        else pd.DataFrame(columns=columns)
    place = exc[exc["exception_type"].isin(["projected_stockout", "below_safety_stock"])]
    stockout = place[place["exception_type"] == "projected_stockout"].groupby(["sku_id", "location_id"])["exception_id"].first()
    bss = place[place["exception_type"] == "below_safety_stock"].groupby(["sku_id", "location_id"])["exception_id"].first()
    key = pd.MultiIndex.from_arrays([rows["sku_id"], rows["to_place"]])
    fallback = exception_ids(pd.DataFrame({"exception_type": "projected_stockout", "sku_id": rows["sku_id"],
                                           "location_id": rows["to_place"], "reference_id": None,
                                           "week_start": rows["week_start"]}))
    main = pd.Series(stockout.reindex(key).to_numpy(), index=rows.index)
    place_bss = pd.Series(bss.reindex(key).to_numpy(), index=rows.index)
    rows["exception_id"] = main.fillna(place_bss).fillna(fallback)
    # supply-side exceptions the action also resolves (the late PO / shipment / production order it expedites)
    by_ref = exc[exc["reference_id"] != ""].groupby("reference_id")["exception_id"].agg(",".join)
    extra_ref = pd.Series(by_ref.reindex(rows["reference_id"].fillna("")).to_numpy(), index=rows.index)
    extra_bss = place_bss.where(~key.isin(still_below))
    acting = ~rows["action_type"].isin(["escalate_to_sop", "adjust_order_promise"])
    # a place escalated after the actions stays short: they serve its exception without resolving it
    escalating = rows["action_type"] == "escalate_to_sop"
    still_short = key.isin(pd.MultiIndex.from_arrays([rows.loc[escalating, "sku_id"], rows.loc[escalating, "to_place"]]))
    bss_unlifted = key.isin(still_below) & (rows["exception_id"] == place_bss)
    # an escalation hands the shortage over and a re-promise moves a customer's date: neither resolves it
    resolved_place = rows["exception_id"].where(acting & ~still_short & ~bss_unlifted)
    extra_bss = extra_bss.where(acting & ~still_short & (extra_bss != rows["exception_id"]))
    # the supply exception only where the actions bring the item's whole open quantity forward (part of a late
    # PO line expedited leaves the rest of it late), to a date detection no longer calls late: within the slip
    # tolerance of its promise (a line promised 11-18 brought forward to 11-29 is still 11 days late)
    item = rows["action_type"] + "|" + rows["reference_id"].fillna("")  # a re-promised order line is no supply item
    moved = rows["qty"].groupby(item).transform("sum")
    whole = moved >= rows.get("item_qty", pd.Series(np.nan, index=rows.index)).fillna(np.inf) - 0.5
    slip = (pd.to_datetime(rows.get("new_date", pd.Series(pd.NaT, index=rows.index)))
            - pd.to_datetime(rows.get("promised_date", pd.Series(pd.NaT, index=rows.index)))).dt.days
    on_time = slip.isna() | slip.le(DEFAULT_CONFIG.slip_tolerance_days)
    on_time = on_time.groupby(item).transform("all")
    extra_ref = extra_ref.where(acting & whole & on_time)
    overload = _overload_links(conn, rows, exc)
    resolves = (resolved_place.fillna("") + "," + extra_bss.fillna("") + "," + extra_ref.fillna("") + ","
                + overload.fillna("")).str.replace(r",+", ",", regex=True).str.strip(",")
    rows["resolves_exception_ids"] = resolves.where(resolves != "", None)
    return rows


def served_places(rows: pd.DataFrame, short: pd.DataFrame, week0: date) -> pd.DataFrame:
    """Each action row's ``to_place``, the short place it serves: where it delivers, or for an action that only
    frees stock at a donor (a pull-in at the plant feeding a transfer), the place the donor's transfer feeds;
    such a row's ``week_start`` is that place's first short week too."""
    if not len(rows):
        return rows
    rows = rows.assign(to_place=rows["to_location_id"])
    feeds = rows[rows["action_type"].isin(["reallocate_stock", "alternate_source"])].groupby(
        ["sku_id", "from_location_id"])["to_location_id"].first()
    enabler = rows["short_qty"].isna()
    fed = pd.Series(feeds.reindex(pd.MultiIndex.from_arrays([rows["sku_id"], rows["to_location_id"]])).to_numpy(),
                    index=rows.index)
    rows.loc[enabler, "to_place"] = fed[enabler].fillna(rows.loc[enabler, "to_location_id"])
    first_week = short.set_index(["sku_id", "location_id"])["first_week"]
    fed_week = pd.Series(first_week.reindex(pd.MultiIndex.from_arrays([rows["sku_id"], rows["to_place"]])).to_numpy(),
                         index=rows.index, dtype=float)
    fed_start = pd.Timestamp(week0) + pd.to_timedelta(7 * fed_week, unit="D")
    rows.loc[enabler, "week_start"] = fed_start[enabler].fillna(rows.loc[enabler, "week_start"])
    return rows


@dataclass
class ResponsePlan:
    """The chosen actions and what they leave: every short place (``all_short``), the fence shortages with
    what the actions cover (``short``), the re-projection (``projected``)."""

    problem: Problem
    all_short: pd.DataFrame
    withdrawn: pd.DataFrame
    projected: pd.DataFrame
    attributed: pd.DataFrame
    short: pd.DataFrame
    solution: Solution

    def escalations(self, config: RespondConfig) -> pd.DataFrame:
        return escalation_rows(self.problem, self.all_short, self.short, self.projected, config,
                               unsolved=self.solution.unsolved_skus)


# The plan detection made for its stockouts' escalation, kept for the respond stage of the same run (one process:
# the in-process executor), which takes it over instead of building and solving the model again. A plan is a
# function of the ingest (the trusted view and every table it reads are rebuilt from it) and the configuration.
_PLAN_FOR_RESPOND: dict[tuple, ResponsePlan] = {}


def _plan_key(conn: duckdb.DuckDBPyConnection, run: RunContext, config: RespondConfig) -> tuple:
    [database] = conn.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    return database, run.run_id, run.as_of, run.horizon_weeks, run.time_fence_weeks, config


def plan_responses(conn: duckdb.DuckDBPyConnection, run: RunContext, config: RespondConfig) -> ResponsePlan:
    """The chosen actions and what they leave; the plan detection kept for this ingest, if any, taken over."""
    kept = _PLAN_FOR_RESPOND.pop(_plan_key(conn, run, config), None)
    if kept is not None:
        return kept
    problem, all_short = load_problem(conn, run, config)
    acts, withdrawn, projected, solution = choose_actions(problem, config)
    attributed, short = attribute(problem, acts, projected)
    return ResponsePlan(problem, all_short, withdrawn, projected, attributed, short, solution)


def decided_escalations(conn: duckdb.DuckDBPyConnection, run: RunContext, config: RespondConfig) -> pd.Series:
    """For every short SKU-location the responses plan for, whether they escalate it to S&OP (it stays short
    after the actions inside the fence), indexed by (sku_id, location_id): detection flags its
    ``projected_stockout`` by this decision, so the exceptions and the recommendations agree. The plan is kept
    for the respond stage of the same run."""
    plan = plan_responses(conn, run, config)
    _PLAN_FOR_RESPOND.clear()  # one plan at a time: an earlier run's in a long-lived process is no use
    _PLAN_FOR_RESPOND[_plan_key(conn, run, config)] = plan
    places = pd.MultiIndex.from_frame(plan.all_short[["sku_id", "location_id"]].drop_duplicates())
    escalated = plan.escalations(config)
    escalated = pd.MultiIndex.from_frame(escalated[["sku_id", "to_location_id"]]) if len(escalated) else places[:0]
    return pd.Series(places.isin(escalated), index=places, dtype=bool)


def recommendation_ids(mart: pd.DataFrame) -> pd.Series:
    """``REC-`` + 12 hex digits of the action, SKU, places, reference and date: the same action gets the same id in
    every run, whatever else the run recommends."""
    key = (mart["action_type"].astype(str) + "|" + mart["sku_id"].astype(str) + "|" + mart["from_location_id"].fillna("").astype(str)
           + "|" + mart["to_location_id"].fillna("").astype(str) + "|" + mart["reference_id"].fillna("").astype(str)
           # the date as text, empty without one, whatever type the column took from the other rows
           + "|" + pd.to_datetime(mart.get("new_date", pd.Series(pd.NaT, index=mart.index))).dt.strftime("%Y-%m-%d").fillna(""))
    other = mart.get("other_reference_id", pd.Series(index=mart.index, dtype=object))
    key = key.where(other.isna(), key + "|" + other.astype(str))  # a reprioritisation: also the order pushed later
    return "REC-" + pd.util.hash_pandas_object(key, index=False).map("{:016x}".format).astype(str).str[:12]


def ranked_by_money_at_stake(mart: pd.DataFrame) -> pd.DataFrame:
    """The rows in ``rank`` order: an action by the revenue it protects, an escalation by the revenue still at
    risk and a re-promise by its line's value (their ``at_stake``); on a tie, actions before re-promises before
    escalations. A large escalation is never hidden below small actions."""
    at_stake = mart.get("at_stake", pd.Series(np.nan, index=mart.index)).fillna(mart["impact_resolved_value"])
    kind = mart["action_type"].map({"adjust_order_promise": 1, "escalate_to_sop": 2}).fillna(0)
    order = mart.assign(_at_stake=at_stake, _kind=kind).sort_values(
        ["_at_stake", "_kind", "sku_id", "to_place"], ascending=[False, True, True, True]).index
    return mart.loc[order].assign(rank=np.arange(1, len(mart) + 1))


def build_recommendations(conn: duckdb.DuckDBPyConnection, run: RunContext, config: RespondConfig) -> tuple[pd.DataFrame, dict]:
    """The ``recommendations`` mart (columns ``MART_COLUMNS`` + ``EXTRA_COLUMNS``) and run statistics."""
    plan = plan_responses(conn, run, config)
    problem, short, projected = plan.problem, plan.short, plan.projected
    rows = served_places(action_rows(problem, plan.attributed, projected), short, problem.week0)
    lines = _booked_lines(conn, short[["sku_id", "location_id"]]) if len(short) else pd.DataFrame()
    escalations = plan.escalations(config)
    parts = [rows, promise_rows(problem, short, projected, lines, escalations), escalations]
    mart = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else pd.DataFrame(
        columns=[*MART_COLUMNS, "to_place", "week_start"])
    mart = link_exceptions(conn, mart, below_safety_stock_after(projected), run.as_of) if len(mart) else mart.assign(exception_id=None, resolves_exception_ids=None)
    mart["creates_new_exception"] = False
    mart = ranked_by_money_at_stake(mart)
    mart["recommendation_id"] = recommendation_ids(mart)
    mart["as_of"] = run.as_of
    mart["week_start"] = pd.to_datetime(mart["week_start"]).dt.date
    for column in ["qty", "cost", "impact_resolved_value"]:
        mart[column] = mart[column].astype(float).round(2)
    stats = {
        "shortages_in_fence": int(len(problem.shortages)), "candidate_actions": int(len(problem.actions)),
        "recommended_actions": int(len(rows)), "withdrawn_by_verification": int(len(plan.withdrawn)),
        "value_protected": float(mart["impact_resolved_value"].sum()), "action_cost": float(mart["cost"].sum()),
        "escalations": int((mart["action_type"] == "escalate_to_sop").sum()),
        "solver_failed_blocks": plan.solution.failed_blocks,
    }
    return mart[MART_COLUMNS + EXTRA_COLUMNS].reset_index(drop=True), stats
