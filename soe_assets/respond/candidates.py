"""Inputs of the respond stage and its candidate actions, built set-wise (DuckDB SQL + pandas, no row loops).

A candidate action is a variable of the optimisation model (``model.py``). Each has one or two
*effects* on the projection: ``(sku, location, weeks start..end, sign)`` adds ``sign x qty`` to the
end-of-week projected balance of those weeks.

- ``reallocate_stock`` / ``alternate_source``: move stock along a lane from a donor to a short
  location, departing in fence week d (week 0: tomorrow, later: the Monday) where the donor's balance
  at the start of d is not negative, arriving after the lane's transit days. Effects: -qty at the
  donor from week d on, +qty at the receiver from the arrival week on. ``alternate_source`` when the
  donor is of another tier (plant -> DC) and is not the receiver's usual source of that SKU (no
  shipment of it on that lane in the data), else ``reallocate_stock``.
- ``expedite_purchase_order`` / ``expedite_transfer``: pull an open PO line (confirmed date) or a
  departed shipment (ETA) due in week a into an earlier fence week t (limited in days). Effect:
  +qty at the receiving location in weeks t..a-1 (the receipt itself is unchanged from week a on).
- ``pull_in_production``: finish an open production order due in week a in an earlier fence week t,
  using the spare capacity of its resource in week t. Effect: +qty at the plant in weeks t..a-1.
- ``reprioritise_production``: on a resource with no spare capacity in fence week t, run order A
  (due in week a, serving a shortage) in the slot of order B (another SKU, due in week t), and B in
  A's old slot (week a): capacity-neutral in every week. Effects: +qty of A's SKU and -qty of B's
  SKU at the plant in weeks t..a-1. B's SKU-location is a donor for the model (it must stay at or
  above safety stock through the horizon), so a swap that would create an exception there is never
  chosen; the verifier re-checks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd

from soe_assets.detect.config import DetectionConfig
from soe_assets.detect.rules import RESOURCE_LOAD, demand_end_weeks, demand_windows_sql, weekly_demand_sql
from soe_assets.network import NETWORK_TIERS
from soe_assets.respond.config import RespondConfig
from soe_assets.warehouse import RunContext

ACTION_COLUMNS = [
    "action_id", "sku_id", "action_type", "reference_id", "from_location_id", "to_location_id",
    "depart_week", "arrive_week", "transit_days", "old_date", "new_date", "days_pulled", "promised_date",
    "down_the_network",  # a transfer to a location of a later network tier (demand at its donor, as replenishment)
    "cost_per_unit", "upper_qty", "item_key", "item_qty", "resource_key", "capacity_week",
    # reprioritise_production only: the order pushed later (B); other actions leave these empty
    "other_reference_id", "other_sku_id", "other_item_key", "other_item_qty", "other_old_date", "other_new_date",
]
EFFECT_COLUMNS = ["action_id", "sku_id", "location_id", "start_week", "end_week", "sign"]


@dataclass
class Problem:
    """Everything the model and the verifier need, for the SKUs with a shortage inside the fence."""

    as_of: date
    week0: date
    horizon_weeks: int
    fence_weeks: int
    positions: pd.DataFrame
    """sku_id, location_id, location_type, week_index, week_start, inside_time_fence, proj, ss, price,
    sensed_demand, later_week_demand (the average weekly demand of the excess rule, ``weekly_demand_sql``), atp,
    opening (the balance at the start of the week: the stock on hand at as_of in week 0,
    else the previous week's ``proj``), one row per SKU-location-week of the SKUs concerned."""
    shortages: pd.DataFrame
    """sku_id, location_id, short_qty (worst fence shortage), first_week (first short fence week)."""
    actions: pd.DataFrame
    effects: pd.DataFrame
    capacity: pd.DataFrame
    """resource_key, week_index, spare_qty (capacity minus planned load, >= 0)."""
    demand_windows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DEMAND_WINDOW_COLUMNS))
    """sku_id, location_id, end_week, demand_qty, plan_qty: the windows ``demand_above_plan`` judges (demand and
    plan cumulated from its first week through ``end_week``) at the customer-facing places of the SKUs concerned:
    a transfer out is demand there."""


DEMAND_WINDOW_COLUMNS = ["sku_id", "location_id", "end_week", "demand_qty", "plan_qty"]
DETECTION = DetectionConfig()  # the thresholds of the exceptions an action must not create


def above_plan_from(plan: pd.Series) -> pd.Series:
    """The demand from which the exception engine's ``demand_above_plan`` fires on a window with ``plan``: at
    least ``demand_above_rel`` and ``demand_min_units`` above it."""
    return np.maximum(plan * (1 + DETECTION.demand_above_rel), plan + DETECTION.demand_min_units)


def departures_in_demand_windows(problem: Problem, actions: pd.DataFrame) -> pd.DataFrame:
    """Each transfer down the network (a row of ``actions``) once per ``demand_above_plan`` window of its donor it
    counts in (those ending in or after its departure week; a departure after the last window counts in that
    one, as a later run's windows reach it), with ``end_week`` and ``room_qty``: the demand the window takes
    before the donor would be above plan. Only donors serving customers and not above plan in any window yet (a
    place above plan already has its exception)."""
    windows = problem.demand_windows
    above = windows["demand_qty"] >= above_plan_from(windows["plan_qty"])
    flagged = windows.loc[above, ["sku_id", "location_id"]].drop_duplicates().assign(_flagged=True)
    windows = windows.merge(flagged, on=["sku_id", "location_id"], how="left")
    windows = windows[windows["_flagged"].isna()]
    room = windows[["sku_id", "location_id", "end_week"]].assign(
        room_qty=above_plan_from(windows["plan_qty"]) - windows["demand_qty"])
    leaving = actions[(actions["depart_week"] >= 0) & actions["down_the_network"].eq(True)].rename(
        columns={"from_location_id": "location_id"})
    counted = leaving.merge(room, on=["sku_id", "location_id"])
    last_window = problem.demand_windows["end_week"].max()
    return counted[counted["depart_week"].clip(upper=last_window) <= counted["end_week"]]


def _demand_windows(conn: duckdb.DuckDBPyConnection, actions: pd.DataFrame) -> pd.DataFrame:
    """``Problem.demand_windows`` of the SKUs a transfer down the network may ship, long format (one row per place
    and end week); none without such a transfer."""
    down = actions.loc[actions["down_the_network"].eq(True), ["sku_id"]].drop_duplicates()
    if not len(down):
        return pd.DataFrame(columns=DEMAND_WINDOW_COLUMNS)
    conn.register("_down_the_network", down)
    try:
        wide = conn.execute(demand_windows_sql(DETECTION, skus="_down_the_network")).df()
    finally:
        conn.unregister("_down_the_network")
    return pd.concat(
        [wide[["sku_id", "location_id"]].assign(end_week=end, demand_qty=wide[f"demand_through_{i}"],
                                                plan_qty=wide[f"plan_through_{i}"])
         for i, end in enumerate(demand_end_weeks(DETECTION))], ignore_index=True)[DEMAND_WINDOW_COLUMNS]


SHORT_LOCATIONS_SQL = f"""
with below_zero as (
    select distinct sku_id, location_id from marts.sku_location_week where projected_available_qty < -?
),
{weekly_demand_sql('below_zero')},
flagged as (
    select slw.*, weekly_demand.avg_week_demand,
           slw.projected_available_qty < -greatest(?, ? * weekly_demand.avg_week_demand) as is_short
    from marts.sku_location_week as slw inner join weekly_demand using (sku_id, location_id)
)
select sku_id, location_id,
       max(case when inside_time_fence then greatest(-projected_available_qty, 0) else 0 end) as short_qty,
       min(case when inside_time_fence and is_short then week_index end) as first_week,
       min(case when is_short then week_index end) as first_short_week_any,
       max(greatest(-projected_available_qty, 0)) as worst_short_qty,
       any_value(unit_price) as price,
       any_value(avg_week_demand) as avg_week_demand
from flagged
group by sku_id, location_id
having bool_or(is_short)
order by sku_id, location_id
"""


def load_problem(conn: duckdb.DuckDBPyConnection, run: RunContext, config: RespondConfig) -> tuple[Problem, pd.DataFrame]:
    """Read the trusted view and the open supply; return the problem and every shortage of the horizon.

    The second frame lists all short SKU-locations (``first_week`` NULL when the shortage lies only
    beyond the fence): the caller escalates what the model cannot cover.
    """
    week0 = run.as_of - timedelta(days=run.as_of.weekday())
    all_short = conn.execute(SHORT_LOCATIONS_SQL, [config.stockout_min_units, config.stockout_min_units,
                                                   config.stockout_min_rel]).df()
    in_fence = all_short[all_short["first_week"].notna()].copy()
    in_fence["first_week"] = in_fence["first_week"].astype(int)
    conn.register("_short", in_fence[["sku_id", "location_id"]])
    conn.register("_others", in_fence[["sku_id", "location_id"]].iloc[0:0])
    try:
        # open supply of the short SKUs, plus the other production orders finishing inside the fence on
        # the resources that make a short SKU (the orders a reprioritisation could push later)
        supply = conn.execute("""
            with short_resources as (
                select distinct location_id, resource_id from intermediate.int_open_supply
                where supply_kind = 'production' and sku_id in (select distinct sku_id from _short)
            ),
            selected as (
                select s.supply_kind, s.reference_id, s.sku_id, s.location_id, s.resource_id, s.due_date, s.week_index,
                       s.qty, s.promised_date
                from intermediate.int_open_supply as s
                -- week 0 only for production still to finish after as_of: an order B a swap can push later
                -- (nothing lands before week 0, so nothing of week 0 is pulled in or expedited)
                where (s.week_index >= 1 or (s.supply_kind = 'production' and s.due_date > ?)) and s.week_index < ? and (
                    s.sku_id in (select distinct sku_id from _short)
                    or (s.supply_kind = 'production' and s.week_index < ? and exists (
                        select 1 from short_resources as r
                        where r.location_id = s.location_id and r.resource_id = s.resource_id)))
            ),
            -- only the selected transfers' shipments: joining every shipment cost ~2 s at 10M SKU-location-weeks
            shipments as (
                select shipment_id, ship_date from staging.stg_shipments
                where shipment_id in (select reference_id from selected where supply_kind = 'transfer')
            )
            select selected.*, shipments.ship_date
            from selected
            left join shipments on selected.supply_kind = 'transfer' and shipments.shipment_id = selected.reference_id
            order by selected.supply_kind, selected.reference_id
        """, [run.as_of, run.horizon_weeks, run.time_fence_weeks]).df()
        others = supply.loc[~supply["sku_id"].isin(in_fence["sku_id"]), ["sku_id", "location_id"]].drop_duplicates()
        conn.register("_others", others)
        positions = conn.execute(f"""
            with concerned as (
                select * from marts.sku_location_week as slw
                where slw.sku_id in (select distinct sku_id from _short)
                   or exists (select 1 from _others as o where o.sku_id = slw.sku_id and o.location_id = slw.location_id)
            ),
            {weekly_demand_sql('concerned')}
            select slw.sku_id, slw.location_id, coalesce(loc.location_type, '') as location_type, slw.week_index,
                   slw.week_start, slw.inside_time_fence, slw.projected_available_qty as proj,
                   slw.safety_stock_qty as ss, coalesce(slw.unit_price, 0) as price, slw.sensed_demand_qty as sensed_demand,
                   demand.avg_week_demand as later_week_demand, slw.atp_qty as atp,
                   slw.opening_available_qty as opening, slw.booked_transfer_out_qty as booked_out
            from concerned as slw
            inner join weekly_demand as demand using (sku_id, location_id)
            left join staging.stg_locations as loc using (location_id)
            order by slw.sku_id, slw.location_id, slw.week_index
        """).df()
        lanes = conn.execute("""
            select lanes.from_location_id, lanes.to_location_id, lanes.transit_days, lanes.cost_per_unit
            from staging.stg_lanes as lanes
            where lanes.to_location_id in (select distinct location_id from _short)
            order by lanes.from_location_id, lanes.to_location_id
        """).df()
        usual = conn.execute("""
            select distinct sh.sku_id, sh.from_location_id, sh.to_location_id
            from staging.stg_shipments as sh
            inner join _short on _short.sku_id = sh.sku_id and _short.location_id = sh.to_location_id
            order by all
        """).df()
        capacity = conn.execute(f"""
            with {RESOURCE_LOAD}
            select c.location_id || '/' || c.resource_id as resource_key,
                   cast(datediff('day', DATE '{week0}', c.week_start) / 7 as integer) as week_index,
                   greatest(c.capacity_qty - coalesce(load.load_qty, 0), 0) as spare_qty
            from staging.stg_resource_capacity as c
            left join resource_load as load on load.location_id = c.location_id and load.resource_id = c.resource_id
                and load.week_index = cast(datediff('day', DATE '{week0}', c.week_start) / 7 as integer)
            where c.week_start >= DATE '{week0}' and c.week_start < DATE '{week0}' + {7 * run.time_fence_weeks}
            order by resource_key, week_index
        """).df()
    finally:
        conn.unregister("_short")
        conn.unregister("_others")
    positions["week_start"] = pd.to_datetime(positions["week_start"]).dt.date
    problem = build_problem(run.as_of, run.horizon_weeks, run.time_fence_weeks, positions, in_fence, lanes, usual,
                            supply, capacity, config)
    return replace(problem, demand_windows=_demand_windows(conn, problem.actions)), all_short


def build_problem(as_of: date, horizon_weeks: int, fence_weeks: int, positions: pd.DataFrame, shortages: pd.DataFrame,
                  lanes: pd.DataFrame, usual: pd.DataFrame, supply: pd.DataFrame, capacity: pd.DataFrame,
                  config: RespondConfig, demand_windows: pd.DataFrame | None = None) -> Problem:
    """Assemble the candidate actions from plain frames (the unit tests call this directly)."""
    week0 = as_of - timedelta(days=as_of.weekday())
    shortages = shortages[["sku_id", "location_id", "short_qty", "first_week"]].reset_index(drop=True)
    parts = [
        _transfers(as_of, week0, horizon_weeks, fence_weeks, positions, shortages, lanes, usual, config),
        _expedites(as_of, week0, fence_weeks, shortages, supply, config),
        _pull_ins(as_of, week0, fence_weeks, shortages, lanes, supply, capacity, config),
        _reprioritisations(as_of, week0, fence_weeks, positions, shortages, lanes, supply, capacity, config),
    ]
    actions = _stacked([p[0] for p in parts], ACTION_COLUMNS)
    effects = _stacked([p[1] for p in parts], EFFECT_COLUMNS)
    # global action ids (each part numbered its own actions 0..n-1 in 'local_id')
    offsets = np.cumsum([0] + [len(p[0]) for p in parts])[:-1]
    if len(actions):
        actions["action_id"] = np.concatenate([p[0]["local_id"].to_numpy() + off for p, off in zip(parts, offsets) if len(p[0])])
        effects["action_id"] = np.concatenate([p[1]["local_id"].to_numpy() + off for p, off in zip(parts, offsets) if len(p[1])])
        text = ["other_reference_id", "other_sku_id", "other_item_key"]
        actions[text] = actions[text].astype(object)  # all-NaN (float) when no reprioritisation: keep them mergeable on ids
    return Problem(as_of=as_of, week0=week0, horizon_weeks=horizon_weeks, fence_weeks=fence_weeks,
                   positions=positions, shortages=shortages, actions=actions, effects=effects,
                   capacity=capacity[["resource_key", "week_index", "spare_qty"]] if len(capacity)
                   else pd.DataFrame(columns=["resource_key", "week_index", "spare_qty"]),
                   demand_windows=pd.DataFrame(columns=DEMAND_WINDOW_COLUMNS) if demand_windows is None
                   else demand_windows)


def _stacked(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The non-empty frames one under another, in ``columns``.

    A column one kind of action leaves empty (all NaN) while another fills it
    is dropped from the empty part first, so the filled values decide its type
    (pandas deprecates ignoring the empty part silently)."""
    frames = [frame for frame in frames if len(frame)]
    if not frames:
        return pd.DataFrame(columns=columns)
    filled = set().union(*(frame.columns[frame.notna().any()] for frame in frames))
    frames = [frame.drop(columns=[c for c in frame.columns if c in filled and frame[c].isna().all()])
              for frame in frames]
    return pd.concat(frames, ignore_index=True).reindex(columns=columns)


def _empty() -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.DataFrame(columns=[*ACTION_COLUMNS, "local_id"]), pd.DataFrame(columns=[*EFFECT_COLUMNS, "local_id"])


def _production_to_pull(shortages: pd.DataFrame, lanes: pd.DataFrame, supply: pd.DataFrame) -> pd.DataFrame:
    """Open production orders of a short SKU at a plant that is short itself or can ship along a lane
    to a short location of the SKU, with their ``resource_key``."""
    feeders = shortages[["sku_id", "location_id"]].rename(columns={"location_id": "to_location_id"}).merge(
        lanes[["from_location_id", "to_location_id"]], on="to_location_id")[["sku_id", "from_location_id"]]
    places = pd.concat([shortages[["sku_id", "location_id"]],
                        feeders.rename(columns={"from_location_id": "location_id"})]).drop_duplicates()
    items = supply[supply["supply_kind"] == "production"].merge(places, on=["sku_id", "location_id"])
    return items.assign(resource_key=items["location_id"] + "/" + items["resource_id"])


def _week_of(days_from_week0: pd.Series | np.ndarray) -> np.ndarray:
    return np.floor_divide(np.asarray(days_from_week0, dtype=np.int64), 7)


def _transfers(as_of, week0, horizon, fence, positions, shortages, lanes, usual, config):
    if not len(shortages) or not len(lanes):
        return _empty()
    present = positions[["sku_id", "location_id", "location_type"]].drop_duplicates()
    cand = shortages[["sku_id", "location_id"]].rename(columns={"location_id": "to_location_id"}).merge(
        lanes, on="to_location_id")
    cand = cand.merge(present.rename(columns={"location_id": "from_location_id", "location_type": "from_type"}),
                      on=["sku_id", "from_location_id"])
    cand = cand.merge(present.rename(columns={"location_id": "to_location_id", "location_type": "to_type"}),
                      on=["sku_id", "to_location_id"])
    cand = cand[cand["from_location_id"] != cand["to_location_id"]]
    # week 0's truck leaves tomorrow, on a Sunday week 1's Monday: that is one departure, not two, and it takes
    # only the stock at as_of (week 0's)
    tomorrow_is_week_1 = (as_of - week0).days == 6
    departs = pd.DataFrame({"depart_week": [w for w in range(fence) if not (tomorrow_is_week_1 and w == 1)]})
    cand = cand.merge(departs, how="cross")
    # A truck leaves only a location holding stock on its Monday (week 0: at as_of), before any action: one
    # whose balance is negative then owes all it receives to its own waiting demand. A location short in some
    # other week may donate: the donor rule keeps it at or above its safety stock from the departure on, or,
    # where it is already below, at its own balance (it gives what it holds beyond a shortage it has ended).
    opening = positions[["sku_id", "location_id", "week_index", "opening"]].rename(
        columns={"location_id": "from_location_id", "week_index": "depart_week"})
    cand = cand.merge(opening, on=["sku_id", "from_location_id", "depart_week"])
    cand = cand[cand["opening"] >= 0].drop(columns="opening")
    if not len(cand):
        return _empty()
    depart_day = np.where(cand["depart_week"] == 0, (as_of - week0).days + 1, 7 * cand["depart_week"])
    arrive_day = depart_day + cand["transit_days"].fillna(0).astype(int).to_numpy()
    cand["arrive_week"] = _week_of(arrive_day)
    cand["new_date"] = pd.Timestamp(week0) + pd.to_timedelta(arrive_day, unit="D")
    cand = cand[cand["arrive_week"] < horizon]
    usual_flag = usual.assign(_usual=True)
    cand = cand.merge(usual_flag, how="left", on=["sku_id", "from_location_id", "to_location_id"])
    other_tier = cand["from_type"] != cand["to_type"]
    tier = {location_type: position for position, location_type in enumerate(NETWORK_TIERS)}
    cand["down_the_network"] = cand["to_type"].map(tier) > cand["from_type"].map(tier)
    cand["action_type"] = np.where(other_tier & cand["_usual"].isna(), "alternate_source", "reallocate_stock")
    cand = cand.reset_index(drop=True)
    cand["local_id"] = np.arange(len(cand))
    cand["reference_id"] = None
    cand["old_date"] = pd.NaT
    cand["days_pulled"] = 0
    cand["cost_per_unit"] = cand["cost_per_unit"].fillna(0) + config.transfer_handling_cost_per_unit
    cand["upper_qty"] = np.inf
    cand["item_key"] = None
    cand["item_qty"] = np.nan
    cand["resource_key"] = None
    cand["capacity_week"] = -1
    out = pd.DataFrame({"local_id": cand["local_id"], "sku_id": cand["sku_id"], "location_id": cand["from_location_id"],
                        "start_week": cand["depart_week"], "end_week": horizon - 1, "sign": -1})
    inn = pd.DataFrame({"local_id": cand["local_id"], "sku_id": cand["sku_id"], "location_id": cand["to_location_id"],
                        "start_week": cand["arrive_week"], "end_week": horizon - 1, "sign": 1})
    return cand, pd.concat([out, inn], ignore_index=True)


def _pulled(as_of, week0, fence, items: pd.DataFrame, max_days: int) -> pd.DataFrame:
    """Cross each item due in week a with the earlier fence weeks t it can land in (new date = the
    Sunday of t, or later in week t if that is on or before as_of), within ``max_days``."""
    targets = pd.DataFrame({"target_week": np.arange(fence)})
    cand = items.merge(targets, how="cross")
    cand = cand[cand["target_week"] < cand["week_index"]]
    sunday = pd.Timestamp(week0) + pd.to_timedelta(7 * cand["target_week"] + 6, unit="D")
    cand = cand.assign(new_date=sunday)
    cand = cand[cand["new_date"] > pd.Timestamp(as_of)]
    cand["old_date"] = pd.to_datetime(cand["due_date"])
    cand["days_pulled"] = (cand["old_date"] - cand["new_date"]).dt.days
    return cand[(cand["days_pulled"] > 0) & (cand["days_pulled"] <= max_days)].reset_index(drop=True)


def _expedites(as_of, week0, fence, shortages, supply, config):
    if not len(shortages) or not len(supply):
        return _empty()
    items = supply.merge(shortages[["sku_id", "location_id"]], on=["sku_id", "location_id"])
    departed = items["ship_date"].notna() & (pd.to_datetime(items["ship_date"]) <= pd.Timestamp(as_of))
    po = items[items["supply_kind"] == "purchase_order"]
    tr = items[(items["supply_kind"] == "transfer") & departed]
    frames = []
    for kind, part, per_unit, per_day, max_days in [
        ("expedite_purchase_order", po, config.expedite_po_cost_per_unit, config.expedite_po_cost_per_unit_day,
         config.max_po_pull_in_days),
        ("expedite_transfer", tr, config.expedite_transfer_cost_per_unit, config.expedite_transfer_cost_per_unit_day,
         config.max_transfer_pull_in_days),
    ]:
        if len(part):
            cand = _pulled(as_of, week0, fence, part, max_days)
            cand["action_type"] = kind
            cand["cost_per_unit"] = per_unit + per_day * cand["days_pulled"]
            frames.append(cand)
    if not frames or not sum(len(f) for f in frames):
        return _empty()
    cand = pd.concat(frames, ignore_index=True)
    cand["local_id"] = np.arange(len(cand))
    cand["from_location_id"] = None
    cand["to_location_id"] = cand["location_id"]
    cand["depart_week"] = -1
    cand["arrive_week"] = cand["target_week"]
    cand["transit_days"] = 0
    cand["upper_qty"] = cand["qty"]
    cand["item_key"] = cand["supply_kind"] + "|" + cand["reference_id"]
    cand["item_qty"] = cand["qty"]
    cand["resource_key"] = None
    cand["capacity_week"] = -1
    eff = pd.DataFrame({"local_id": cand["local_id"], "sku_id": cand["sku_id"], "location_id": cand["location_id"],
                        "start_week": cand["target_week"], "end_week": cand["week_index"] - 1, "sign": 1})
    return cand, eff


def _pull_ins(as_of, week0, fence, shortages, lanes, supply, capacity, config):
    if not len(shortages) or not len(supply) or not len(capacity):
        return _empty()
    items = _production_to_pull(shortages, lanes, supply)
    if not len(items):
        return _empty()
    cand = _pulled(as_of, week0, fence, items, config.max_production_pull_in_days)
    cand = cand.merge(capacity.rename(columns={"week_index": "target_week"}), on=["resource_key", "target_week"])
    cand = cand[cand["spare_qty"] > 0].reset_index(drop=True)
    if not len(cand):
        return _empty()
    cand = _as_production_action(cand, "pull_in_production", config.pull_in_cost_per_unit,
                                 config.pull_in_cost_per_unit_day, upper_qty=cand["qty"])
    cand["capacity_week"] = cand["target_week"]
    return cand, _pulled_effect(cand)


def _as_production_action(cand: pd.DataFrame, action_type: str, cost_per_unit: float, cost_per_unit_day: float,
                          upper_qty: pd.Series) -> pd.DataFrame:
    """The columns every production order brought forward shares (pull-in or reprioritisation)."""
    cand = cand.reset_index(drop=True)
    cand["local_id"] = np.arange(len(cand))
    cand["action_type"] = action_type
    cand["cost_per_unit"] = cost_per_unit + cost_per_unit_day * cand["days_pulled"]
    cand["from_location_id"] = None
    cand["to_location_id"] = cand["location_id"]
    cand["depart_week"] = -1
    cand["arrive_week"] = cand["target_week"]
    cand["transit_days"] = 0
    cand["upper_qty"] = upper_qty.to_numpy()
    cand["item_key"] = "production|" + cand["reference_id"]
    cand["item_qty"] = cand["qty"]
    return cand


def _pulled_effect(cand: pd.DataFrame, sku_column: str = "sku_id", sign: int = 1) -> pd.DataFrame:
    """Stock of the order's SKU at the plant moves by the action's quantity from the new week to the old one."""
    return pd.DataFrame({"local_id": cand["local_id"], "sku_id": cand[sku_column], "location_id": cand["location_id"],
                         "start_week": cand["target_week"], "end_week": cand["week_index"] - 1, "sign": sign})


def _reprioritisations(as_of, week0, fence, positions, shortages, lanes, supply, capacity, config):
    """Order A (a short SKU's, due in week a) runs in fence week t instead of order B (another SKU on the
    same resource, due in t), where the resource has no spare capacity in t; B takes A's slot in week a."""
    if not len(shortages) or not len(supply) or not len(capacity):
        return _empty()
    items = _production_to_pull(shortages, lanes, supply)
    if not len(items):
        return _empty()
    cand = _pulled(as_of, week0, fence, items, config.max_production_pull_in_days)
    full = capacity.loc[capacity["spare_qty"] <= 1e-9, ["resource_key", "week_index"]].rename(
        columns={"week_index": "target_week"})
    cand = cand.merge(full, on=["resource_key", "target_week"])
    production = supply[supply["supply_kind"] == "production"]
    others = pd.DataFrame({
        "resource_key": production["location_id"] + "/" + production["resource_id"],
        "target_week": production["week_index"], "other_reference_id": production["reference_id"],
        "other_sku_id": production["sku_id"], "other_item_qty": production["qty"],
        "other_old_date": pd.to_datetime(production["due_date"])})
    # B's SKU-location must be in the projection: the model and the verifier guard its safety stock there
    known = positions[["sku_id", "location_id"]].drop_duplicates().rename(
        columns={"sku_id": "other_sku_id", "location_id": "_loc"})
    cand = cand.merge(others, on=["resource_key", "target_week"])
    cand = cand[cand["other_sku_id"] != cand["sku_id"]]
    cand = cand.merge(known, left_on=["other_sku_id", "location_id"], right_on=["other_sku_id", "_loc"]).drop(columns="_loc")
    cand = cand.reset_index(drop=True)
    if not len(cand):
        return _empty()
    cand = _as_production_action(cand, "reprioritise_production", config.reprioritise_cost_per_unit,
                                 config.reprioritise_cost_per_unit_day,
                                 upper_qty=np.minimum(cand["qty"], cand["other_item_qty"]))
    cand["other_item_key"] = "production|" + cand["other_reference_id"]
    # B moves into A's old week, same weekday: capacity-neutral in every week (not a capacity row)
    cand["other_new_date"] = cand["other_old_date"] + pd.to_timedelta(7 * (cand["week_index"] - cand["target_week"]), unit="D")
    cand["capacity_week"] = -1
    return cand, pd.concat([_pulled_effect(cand), _pulled_effect(cand, "other_sku_id", sign=-1)], ignore_index=True)
