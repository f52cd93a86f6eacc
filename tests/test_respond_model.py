"""The respond optimiser on hand-made frames (values worked out by hand in the comments)."""

import re
from dataclasses import replace
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from soe_assets.detect.impact import exception_ids
from soe_assets.respond.candidates import build_problem
from soe_assets.respond.config import RespondConfig
from soe_assets.respond.greedy import greedy_value
from soe_assets.respond.report import format_recommendations, whole_money
from soe_assets.respond.recommend import (
    EXACT_SHARE_MAX_ACTIONS, action_rows, attribute, below_safety_stock_after, cents_summing_to_their_total, choose_actions, escalation_rows, link_exceptions,
    overloads_cleared, promise_rows, ranked_by_money_at_stake, recommendation_ids, served_places,
)
from soe_assets.respond.verify import find_violations, reproject

AS_OF = date(2026, 11, 18)  # Wednesday; week 0 starts Monday 2026-11-16
WEEK0 = date(2026, 11, 16)
H, F = 6, 4
CONFIG = RespondConfig(transfer_handling_cost_per_unit=0.0, epsilon_cost_per_unit=0.01)


def positions(series: dict[tuple[str, str], tuple[list[float], float]], price: float = 50.0,
              types: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per SKU-location-week; week 0 opens with its balance plus the week's demand (no receipts in it)."""
    rows = []
    for (sku, loc), (proj, ss) in series.items():
        for k, p in enumerate(proj):
            rows.append({"sku_id": sku, "location_id": loc, "location_type": (types or {}).get(loc, "dc"),
                         "week_index": k, "week_start": WEEK0 + timedelta(weeks=k), "inside_time_fence": k < F,
                         "proj": p, "ss": ss, "price": price, "sensed_demand": 10.0, "later_week_demand": 10.0,
                         "atp": 0.0, "booked_out": 0.0,
                         "opening": proj[k - 1] if k else p + 10.0})
    return pd.DataFrame(rows)


def shortages(pos: pd.DataFrame) -> pd.DataFrame:
    fence = pos[pos["inside_time_fence"]]
    short = fence[fence["proj"] < -1].groupby(["sku_id", "location_id"]).agg(
        short_qty=("proj", lambda s: -s.min()), first_week=("week_index", "min")).reset_index()
    return short


def lanes(*rows: tuple[str, str, int, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["from_location_id", "to_location_id", "transit_days", "cost_per_unit"])


NO_USUAL = pd.DataFrame(columns=["sku_id", "from_location_id", "to_location_id"])
NO_SUPPLY = pd.DataFrame(columns=["supply_kind", "reference_id", "sku_id", "location_id", "resource_id", "due_date",
                                  "week_index", "qty", "ship_date"])
NO_CAPACITY = pd.DataFrame(columns=["resource_key", "week_index", "spare_qty"])


def problem(pos, lane_frame, supply=NO_SUPPLY, capacity=NO_CAPACITY):
    return build_problem(AS_OF, H, F, pos, shortages(pos), lane_frame, NO_USUAL, supply, capacity, CONFIG)


def chosen(prob):
    acts, withdrawn, projected, solution = choose_actions(prob, CONFIG)
    assert withdrawn.empty and solution.failed_blocks == 0
    return acts, projected


def moved(acts: pd.DataFrame) -> dict[tuple[str, str], float]:
    transfers = acts[acts["action_type"].isin(["reallocate_stock", "alternate_source"])]
    return transfers.groupby(["from_location_id", "to_location_id"])["qty"].sum().to_dict()


def test_stockout_next_to_donor_gets_reallocation_and_donor_stays_above_safety_stock():
    # A runs 60 short from week 1; D has 300 against a safety stock of 100 (200 spare); lane 2 days
    # (departs Thu 11-19, arrives Sat 11-21, week 0). Cheapest cover: exactly 60 units.
    pos = positions({("X", "A"): ([50, -30, -60, -60, -60, -60], 20), ("X", "D"): ([300] * 6, 100)})
    acts, projected = chosen(problem(pos, lanes(("D", "A", 2, 1.0))))
    assert moved(acts) == {("D", "A"): 60}
    donor = projected[projected["location_id"] == "D"]
    assert (donor["proj_new"] >= donor["ss"]).all() and donor["proj_new"].min() == 240
    _, short = attribute(problem(pos, lanes(("D", "A", 2, 1.0))), acts, projected)
    assert short["protected_value"].sum() == pytest.approx(60 * 50)


def test_a_block_the_solver_fails_on_gets_no_action_and_is_counted(monkeypatch):
    """A time-out or numerical failure of HiGHS leaves that block's places without actions, and says so: also
    the escalation, which must not claim that no action could cover the shortage."""
    import scipy.optimize
    from scipy.optimize import OptimizeResult

    monkeypatch.setattr(scipy.optimize, "linprog", lambda *args, **kwargs: OptimizeResult(
        status=1, message="Time limit reached", x=None))
    pos = positions({("X", "A"): ([50, -30, -60, -60, -60, -60], 20), ("X", "D"): ([300] * 6, 100)})
    prob = problem(pos, lanes(("D", "A", 2, 1.0)))
    acts, withdrawn, projected, solution = choose_actions(prob, CONFIG)
    assert solution.failed_blocks == 1 and solution.unsolved_skus == {"X"} and acts.empty
    all_short = shortages(pos).assign(worst_short_qty=60.0, avg_week_demand=10.0, price=50.0, first_short_week_any=1)
    short = all_short[["sku_id", "location_id"]].assign(covered_qty=0.0, left_qty=60.0)
    escalated = escalation_rows(prob, all_short, short, projected, CONFIG, unsolved=solution.unsolved_skus)
    assert escalated["explanation"].str.contains("the response model could not be solved for it this run").all()
    assert not escalated["explanation"].str.contains("no action inside").any()


def test_backorders_are_served_later_in_the_fence_where_the_worst_week_cannot_be_covered():
    """A is 9 short in week 0 and 11 from week 1; the only lane takes 6 days (departs Thu 11-19, arrives
    Wed 11-25, week 1), so week 0 stays 9 short whatever moves. 11 units from D bring A back to zero from
    week 1: its worst shortage is unchanged, but the backorders wait one week instead of past the fence."""
    pos = positions({("X", "A"): ([-9, -11, -11, -11, -11, -11], 0), ("X", "D"): ([300] * 6, 100)})
    acts, projected = chosen(problem(pos, lanes(("D", "A", 6, 1.0))))
    assert moved(acts) == {("D", "A"): 11}
    assert projected.loc[projected["location_id"] == "A", "proj_new"].tolist() == [-9, 0, 0, 0, 0, 0]
    # a unit waiting a week costs less than moving it (a dear lane): only what lowers the worst week moves
    acts, _ = chosen(problem(pos, lanes(("D", "A", 6, 10.0))))
    assert moved(acts) == {("D", "A"): 2}


def test_units_that_only_shorten_the_wait_of_backorders_say_so():
    """A's worst week is week 0 (11 short), which nothing reaches: 11 units from D bring it to zero from week 1.
    They protect no revenue (the worst shortfall stands) and say what they do instead of 'covers 0'."""
    pos = positions({("X", "A"): ([-11, -11, -11, -11, -11, -11], 0), ("X", "D"): ([300] * 6, 100)})
    prob = problem(pos, lanes(("D", "A", 6, 1.0)))
    acts, projected = chosen(prob)
    assert moved(acts) == {("D", "A"): 11}
    into, _ = attribute(prob, acts, projected)
    row = action_rows(prob, into, projected).iloc[0]
    assert row["impact_resolved_value"] == 0
    assert ("serves the backorders waiting at A sooner, without lowering its worst shortfall of 11 units that "
            "starts in week-47 (2026-11-16) ($0 of revenue protected)") in row["explanation"]
    assert "covers 0" not in row["explanation"]


def test_only_units_arriving_by_the_worst_week_share_the_revenue_protected():
    """A is 40 short from week 0. D1 (1-day lane) can spare 10, which reach week 0; D2 (6 days) sends 30 that
    land in week 1, after A's worst week: they shorten the wait of its backorders but leave the worst shortfall
    at 30. The 10 units cover 10 ($500); the 30 units protect $0 and say so (shared by quantity, they showed
    $375 and 'covers 7.5')."""
    pos = positions({("X", "A"): ([-40] * 6, 0), ("X", "D1"): ([110] * 6, 100), ("X", "D2"): ([300] * 6, 100)})
    prob = problem(pos, lanes(("D1", "A", 1, 0.1), ("D2", "A", 6, 0.1)))
    acts, projected = chosen(prob)
    assert moved(acts) == {("D1", "A"): 10, ("D2", "A"): 30}
    into, short = attribute(prob, acts, projected)
    rows = action_rows(prob, into, projected).set_index("from_location_id")
    assert short["protected_value"].sum() == pytest.approx(10 * 50)
    assert rows.loc["D1", "impact_resolved_value"] == pytest.approx(10 * 50)
    assert "covers 10 of the shortfall at A" in rows.loc["D1", "explanation"]
    assert rows.loc["D2", "impact_resolved_value"] == 0
    assert "serves the backorders waiting at A sooner" in rows.loc["D2", "explanation"]


def test_a_donor_keeps_the_stock_a_booked_transfer_takes_on_monday():
    """D holds 60, all booked to leave on a transfer on Monday of week 1; its refill of 60 lands later that
    week, so its weekly balance never dips. A is 40 short from week 1. Moving 40 from D tomorrow would leave 20
    for the booked 60 on Monday: D ships nothing before week 2, when it opens with the refill; the verifier
    withdraws a plan that ships earlier."""
    pos = positions({("X", "A"): ([0, -40, -40, -40, -40, -40], 0), ("X", "D"): ([60] * 6, 0)})
    pos.loc[(pos["location_id"] == "D") & (pos["week_index"] == 0), "opening"] = 60.0
    pos.loc[(pos["location_id"] == "D") & (pos["week_index"] == 1), "booked_out"] = 60.0
    prob = problem(pos, lanes(("D", "A", 1, 0.1)))
    acts, _ = chosen(prob)
    transfers = acts[acts["action_type"] == "reallocate_stock"]
    assert len(transfers) and (transfers["depart_week"] >= 2).all(), transfers[["depart_week", "qty"]]
    early = prob.actions[(prob.actions["action_type"] == "reallocate_stock") & (prob.actions["depart_week"] == 0)]
    assert len(early) == 1
    early = early.assign(qty=40.0)
    assert find_violations(prob, early, reproject(prob, early)).all()


def test_donor_that_would_fall_below_safety_stock_is_not_used():
    # D2 is at 150 now but drops to 90 (< ss 100) in week 2: anything it sends now would deepen that.
    # D1 can spare only 25 (125 - 100): A gets 25, the remaining 35 stay uncovered.
    pos = positions({("X", "A"): ([50, -30, -60, -60, -60, -60], 20), ("X", "D1"): ([125] * 6, 100),
                     ("X", "D2"): ([150, 150, 90, 90, 150, 150], 100)})
    acts, projected = chosen(problem(pos, lanes(("D1", "A", 2, 1.0), ("D2", "A", 1, 0.1))))
    assert moved(acts) == {("D1", "A"): 25}
    d2 = projected[projected["location_id"] == "D2"]
    assert (d2["proj_new"] == d2["proj"]).all()


def test_a_location_short_in_week_0_donates_from_the_week_its_receipt_ends_the_shortage():
    """D is 30 short in week 0 (a past-due order, no stock) until a receipt brings it to 470 in week 1; A runs
    100 short from week 3. D's Monday balance is negative in weeks 0 and 1 (it owes what it holds to its own
    backorders): the truck leaves Monday 11-30 (week 2), when D opens with 470, and A is covered."""
    pos = positions({("X", "A"): ([50, 50, 50, -100, -100, -100], 0), ("X", "D"): ([-30, 470, 470, 470, 470, 470], 0)})
    prob = problem(pos, lanes(("D", "A", 1, 1.0)))
    assert set(prob.actions["depart_week"]) == {2, 3}  # no departure from a negative Monday balance
    acts, projected = chosen(prob)
    assert moved(acts) == {("D", "A"): 100}
    donor = projected.loc[projected["location_id"] == "D", "proj_new"].tolist()
    assert donor[:2] == [-30, 470] and donor[-1] == 370


def test_two_shortages_competing_for_one_donor_are_served_by_value():
    # D spares 100. A is 100 short on a $1 lane, B 150 short on a $30 lane; price $50.
    # Serving A: 100 x (50 - 1) = 4,900 net; serving B: 100 x (50 - 30) = 2,000. All 100 go to A.
    pos = positions({("X", "A"): ([0, -100, -100, -100, -100, -100], 0), ("X", "B"): ([0, -150, -150, -150, -150, -150], 0),
                     ("X", "D"): ([200] * 6, 100)})
    acts, _ = chosen(problem(pos, lanes(("D", "A", 1, 1.0), ("D", "B", 1, 30.0))))
    assert moved(acts) == {("D", "A"): 100}


def test_optimiser_beats_greedy_where_greedy_takes_the_shared_donor():
    # A (100 short) can be served by D1 (1 day) or D2 (3 days); B (100 short) only by D1.
    # Greedy serves A first from its nearest donor D1 and leaves B with nothing: 100 units = 5,000.
    # The joint LP serves A from D2 and B from D1: 200 units = 10,000.
    pos = positions({("X", "A"): ([0, -100, -100, -100, -100, -100], 0), ("X", "B"): ([0, -100, -100, -100, -100, -100], 0),
                     ("X", "D1"): ([200] * 6, 100), ("X", "D2"): ([200] * 6, 100)})
    prob = problem(pos, lanes(("D1", "A", 1, 1.0), ("D2", "A", 3, 1.0), ("D1", "B", 1, 1.0)))
    acts, projected = chosen(prob)
    assert moved(acts) == {("D2", "A"): 100, ("D1", "B"): 100}
    _, short = attribute(prob, acts, projected)
    greedy, _ = greedy_value(prob)
    assert greedy == pytest.approx(5_000)
    assert short["protected_value"].sum() == pytest.approx(10_000)
    assert short["protected_value"].sum() > greedy


def test_greedy_answers_the_largest_shortage_first():
    """A (100 short) and B (60 short) share their only donor D, 100 to spare: the greedy baseline serves A, the
    larger, first and it takes all 100, B none. Served smallest first, B would take 60 and A the other 40."""
    pos = positions({("X", "A"): ([0, -100, -100, -100, -100, -100], 0), ("X", "B"): ([0, -60, -60, -60, -60, -60], 0),
                     ("X", "D"): ([200] * 6, 100)})
    value, shipped = greedy_value(problem(pos, lanes(("D", "A", 1, 1.0), ("D", "B", 1, 1.0))))
    assert shipped.values.tolist() == [["X", "D", "A", 100.0]]
    assert value == pytest.approx(100 * 50)


def test_capacity_free_resource_gets_a_pull_in_within_its_spare_capacity():
    # Plant P is 50 short in weeks 1-3 until order MO-1 (200 units) finishes on Fri 2026-12-18 (week 4).
    # Resource R has 80 spare in week 1: pull 50 units in to finish by Sunday 11-29 (19 days earlier).
    pos = positions({("X", "P"): ([10, -50, -50, -50, 150, 150], 0)}, types={"P": "plant"})
    supply = pd.DataFrame([{"supply_kind": "production", "reference_id": "MO-1", "sku_id": "X", "location_id": "P",
                            "resource_id": "R", "due_date": date(2026, 12, 18), "week_index": 4, "qty": 200.0,
                            "ship_date": None}])
    capacity = pd.DataFrame([{"resource_key": "P/R", "week_index": 1, "spare_qty": 80.0},
                             {"resource_key": "P/R", "week_index": 2, "spare_qty": 0.0}])
    acts, projected = chosen(problem(pos, lanes(), supply, capacity))
    assert acts[["action_type", "reference_id", "qty"]].values.tolist() == [["pull_in_production", "MO-1", 50.0]]
    assert acts["days_pulled"].iloc[0] == 19
    assert projected["proj_new"].tolist() == [10, 0, 0, 0, 150, 150]


@pytest.mark.parametrize("spare", [30.0, 30.5])
def test_pull_in_is_capped_by_spare_capacity(spare: float):
    """P is 50 short in weeks 1-3; R has 30 units spare in week 1, or 30.5: the optimiser pulls in 30.5, and 31
    whole units would overload the week: 30 either way."""
    pos = positions({("X", "P"): ([10, -50, -50, -50, 150, 150], 0)}, types={"P": "plant"})
    supply = pd.DataFrame([{"supply_kind": "production", "reference_id": "MO-1", "sku_id": "X", "location_id": "P",
                            "resource_id": "R", "due_date": date(2026, 12, 18), "week_index": 4, "qty": 200.0,
                            "ship_date": None}])
    capacity = pd.DataFrame([{"resource_key": "P/R", "week_index": 1, "spare_qty": spare}])
    acts, _ = chosen(problem(pos, lanes(), supply, capacity))
    assert acts["qty"].tolist() == [30.0]


def plant_feeding_a_short_dc():
    """DC-1 runs 100 short from week 2; plant P has nothing on hand until MO-1 (100 units) finishes on
    Fri 2026-12-18 (week 4); lane P -> DC-1 same day; resource R has 100 spare in every fence week."""
    pos = positions({("X", "DC-1"): ([10, 10, -100, -100, -100, -100], 0), ("X", "P"): ([0, 0, 0, 0, 100, 100], 0)},
                    types={"P": "plant"})
    supply = pd.DataFrame([{"supply_kind": "production", "reference_id": "MO-1", "sku_id": "X", "location_id": "P",
                            "resource_id": "R", "due_date": date(2026, 12, 18), "week_index": 4, "qty": 100.0,
                            "ship_date": None}])
    capacity = pd.DataFrame({"resource_key": "P/R", "week_index": range(F), "spare_qty": 100.0})
    return problem(pos, lanes(("P", "DC-1", 0, 1.0)), supply, capacity)


def test_a_transfer_leaves_only_with_stock_on_hand_at_the_start_of_its_week():
    """A transfer leaves on a Monday; a pull-in lands on a Sunday. To arrive in week 2 the transfer leaves on
    Monday 11-30, so MO-1 must be finished by Sunday 11-29 (week 1, 19 days early), not by 12-06 (week 2,
    12 days early and cheaper, but after the truck left)."""
    prob = plant_feeding_a_short_dc()
    acts, projected = chosen(prob)
    assert moved(acts) == {("P", "DC-1"): 100}
    transfer = acts[acts["action_type"] == "alternate_source"].iloc[0]
    pull_in = acts[acts["action_type"] == "pull_in_production"].iloc[0]
    assert (transfer["depart_week"], pull_in["arrive_week"], pull_in["days_pulled"]) == (2, 1, 19)
    assert (projected["proj_new"] >= 0).all()


def test_a_pull_in_that_frees_stock_for_a_transfer_serves_the_place_the_transfer_feeds():
    """MO-1's pull-in lands at plant P, which is never short: its row serves DC-1, whose shortage starts in week 2,
    and carries that week (not week 0)."""
    prob = plant_feeding_a_short_dc()
    acts, projected = chosen(prob)
    attributed, short = attribute(prob, acts, projected)
    rows = served_places(action_rows(prob, attributed, projected), short, prob.week0)
    pull_in = rows[rows["action_type"] == "pull_in_production"].iloc[0]
    assert (pull_in["to_location_id"], pull_in["to_place"]) == ("P", "DC-1")
    assert pull_in["week_start"] == pd.Timestamp(WEEK0 + timedelta(weeks=2))
    assert "frees stock at P for the transfers recommended from it" in pull_in["explanation"]


def test_the_verifier_withdraws_a_transfer_that_leaves_before_its_stock_arrives():
    """The same-week pair (MO-1 finished Sunday of week 2, the transfer leaving on its Monday) keeps every
    end-of-week balance >= 0 and is still withdrawn."""
    prob = plant_feeding_a_short_dc()
    acts = prob.actions
    same_week = acts[((acts["action_type"] == "alternate_source") & (acts["depart_week"] == 2))
                     | ((acts["action_type"] == "pull_in_production") & (acts["arrive_week"] == 2))].assign(qty=100.0)
    assert len(same_week) == 2
    projected = reproject(prob, same_week)
    assert (projected["proj_new"] >= 0).all()
    assert find_violations(prob, same_week, projected).all()


@pytest.mark.parametrize(("donor_balance", "expected"), [(300.0, 33.0), (132.5, 32.0)])
def test_quantities_are_rounded_up_to_cover_the_shortage_unless_that_breaks_the_donor(donor_balance, expected):
    """A is 32.5 short: 33 whole units cover it; a donor with exactly 32.5 above its safety stock gives 32."""
    pos = positions({("X", "A"): ([50, -30, -32.5, -32.5, -32.5, -32.5], 20), ("X", "D"): ([donor_balance] * 6, 100)})
    acts, projected = chosen(problem(pos, lanes(("D", "A", 2, 1.0))))
    assert moved(acts) == {("D", "A"): expected}
    donor = projected[projected["location_id"] == "D"]
    assert (donor["proj_new"] >= donor["ss"]).all()


def test_a_transfer_rounded_up_never_ships_more_than_its_donor_holds_on_its_monday():
    """D holds 20.5 units at as_of and 320 from the end of week 0 on; A runs short from week 1. Tomorrow's truck
    takes what D holds (20.5): 21 whole units would take half a unit D does not have yet, so it takes 20."""
    pos = positions({("X", "A"): ([0, -70, -140, -210, -210, -210], 0), ("X", "D"): ([320] * 6, 0)})
    pos.loc[pos["location_id"].eq("D") & pos["week_index"].eq(0), "opening"] = 20.5
    acts, _ = chosen(problem(pos, lanes(("D", "A", 1, 1.0))))
    assert acts.loc[acts["depart_week"].eq(0), "qty"].tolist() == [20.0]


def test_an_action_of_exactly_the_minimum_quantity_is_recommended():
    """A is 1.5 short in weeks 1-2; PO-1:1 holds a single unit, due in week 3: brought into week 1 it is one unit,
    the smallest action recommended (``min_action_qty``), and kept."""
    pos = positions({("X", "A"): ([5, -1.5, -1.5, 10, 10, 10], 0)})
    supply = pd.DataFrame([{"supply_kind": "purchase_order", "reference_id": "PO-1:1", "sku_id": "X", "location_id": "A",
                            "resource_id": None, "due_date": date(2026, 12, 9), "week_index": 3, "qty": 1.0,
                            "ship_date": None}])
    acts, _ = chosen(problem(pos, lanes(), supply))
    assert acts[["reference_id", "arrive_week", "qty"]].values.tolist() == [["PO-1:1", 1, 1.0]]


def receiver_recovering_by_the_fence_end(balance_now: float) -> pd.DataFrame:
    """A is 40 short in weeks 1-2 and recovers to 85 by the end of the fence (week 3), 5 below its excess line
    (safety stock 20 + 6 weeks of 10 + 10 units); D has 200 spare. A transfer of 40 lifts A's fence end to
    125, over the line."""
    return positions({("X", "A"): ([balance_now, -30, -40, 85, 85, 85], 20), ("X", "D"): ([300] * 6, 100)})


def test_a_transfer_that_ends_the_fence_high_is_kept_where_stock_now_is_no_excess():
    """The exception engine's excess needs stock now above the line too: A holds 15 now, so the 40 units
    that cover its shortage raise no excess and stay recommended."""
    acts, projected = chosen(problem(receiver_recovering_by_the_fence_end(5), lanes(("D", "A", 2, 1.0))))
    assert moved(acts) == {("D", "A"): 40}
    assert projected.set_index(["location_id", "week_index"]).loc[("A", 3), "proj_new"] == 125


def test_the_verifier_withdraws_a_transfer_that_creates_excess_now_and_at_the_fence_end():
    """A holds 200 now (week 0's opening balance), above the line, and would end the fence above it too."""
    prob = problem(receiver_recovering_by_the_fence_end(190), lanes(("D", "A", 2, 1.0)))
    transfer = prob.actions[prob.actions["action_type"].isin(["reallocate_stock", "alternate_source"])].head(1)
    assert len(transfer) == 1
    transfer = transfer.assign(qty=40.0)
    assert find_violations(prob, transfer, reproject(prob, transfer)).all()


def test_a_transfer_to_a_place_in_excess_already_is_kept():
    """A holds 200 now and ends the fence at 185, both above its excess line (safety stock 20 + 6 weeks of 10 + 10
    units): its excess exception is open already, and the 40 units that cover its shortage in weeks 1-2 create no
    new one."""
    pos = positions({("X", "A"): ([190, -30, -40, 185, 185, 185], 20), ("X", "D"): ([300] * 6, 100)})
    acts, _ = chosen(problem(pos, lanes(("D", "A", 2, 1.0))))
    assert moved(acts) == {("D", "A"): 40}


def demand_windows(sku: str, location: str, demand: float, plan: float) -> pd.DataFrame:
    """The donor's demand-above-plan windows (end weeks 0, 2 and 3), each with the same demand and plan so far."""
    return pd.DataFrame({"sku_id": sku, "location_id": location, "end_week": [0, 2, 3], "demand_qty": demand,
                         "plan_qty": plan})


@pytest.mark.parametrize("receiver_type, donor_demand, withdrawn",
                         [("store", 110.0, True), ("store", 60.0, False), ("dc", 110.0, False)])
def test_a_transfer_down_the_network_that_takes_its_donor_above_plan_is_withdrawn(receiver_type, donor_demand,
                                                                                  withdrawn):
    """A transfer from a DC to a store is demand at the DC (the plan covers the replenishment it ships): 60
    units more on 110 of a 100 plan make 170 (+70%, a demand_above_plan exception the DC did not have); on 60
    they make 120 (+20%: none). A reallocation between two DCs is no demand at either."""
    pos = positions({("X", "A"): ([50, -30, -60, -60, -60, -60], 20), ("X", "D"): ([300] * 6, 100)},
                    types={"A": receiver_type})

    def first_transfer(windows: pd.DataFrame):
        prob = build_problem(AS_OF, H, F, pos, shortages(pos), lanes(("D", "A", 2, 1.0)), NO_USUAL, NO_SUPPLY,
                             NO_CAPACITY, CONFIG, windows)
        transfer = prob.actions[prob.actions["action_type"].isin(["reallocate_stock", "alternate_source"])]
        transfer = transfer.head(1).assign(qty=60.0)
        assert len(transfer) == 1 and transfer["depart_week"].iloc[0] == 0
        return prob, transfer

    prob, transfer = first_transfer(demand_windows("X", "D", donor_demand, 100.0))
    assert find_violations(prob, transfer, reproject(prob, transfer)).all() == withdrawn
    # already above plan (its exception is open): more transfers out create none
    already, transfer = first_transfer(demand_windows("X", "D", 140.0, 100.0))
    assert not find_violations(already, transfer, reproject(already, transfer)).any()


def test_a_donor_ships_down_the_network_only_what_keeps_it_below_plan():
    """The optimiser knows the donor's room: D's windows run 110 against a plan of 100, so its demand may grow by
    less than 15 units (the trigger: 25 % and 5 units above plan, 125): it ships 14 whole units to the store, and
    nothing is withdrawn. Against 60 it has room for all 60."""
    pos = positions({("X", "A"): ([50, -30, -60, -60, -60, -60], 20), ("X", "D"): ([300] * 6, 100)},
                    types={"A": "store"})
    for donor_demand, shipped in ((110.0, 14.0), (60.0, 60.0)):
        prob = build_problem(AS_OF, H, F, pos, shortages(pos), lanes(("D", "A", 2, 1.0)), NO_USUAL, NO_SUPPLY,
                             NO_CAPACITY, CONFIG, demand_windows("X", "D", donor_demand, 100.0))
        acts, _ = chosen(prob)
        assert moved(acts) == {("D", "A"): shipped}


def test_rounding_up_never_takes_more_from_an_item_than_it_holds():
    """Two expedites of one 50-unit PO line the optimiser split 33.4 + 16.6: rounded up they would take 51, rounded
    down 49; the line's 50th unit goes to the one arriving first."""
    from soe_assets.respond.recommend import rounded_up_within_items

    def fits(actions: pd.DataFrame) -> list[bool]:
        return rounded_up_within_items(actions, np.ceil(actions["qty"]), np.floor(actions["qty"])).tolist()

    actions = pd.DataFrame({"item_key": ["po|PO-1:2", "po|PO-1:2", "po|PO-2:1"], "item_qty": [50.0, 50.0, 40.0],
                            "other_item_key": [None, None, None], "other_item_qty": [np.nan] * 3,
                            "arrive_week": [2, 1, 1], "qty": [33.4, 16.6, 39.5]})
    assert fits(actions) == [False, True, True]
    assert fits(actions.assign(arrive_week=[1, 2, 1])) == [True, False, True]
    # a reprioritisation draws on the order it pushes later too: 20 + 20 + 8 of PO-1:2 rounded down leave 2 units
    swap = actions.assign(other_item_key=[None, None, "po|PO-1:2"], other_item_qty=[np.nan, np.nan, 50.0],
                          qty=[20.5, 20.5, 8.5])
    assert fits(swap) == [False, True, True]
    # a unit an action cannot take stays for the item's next action: the reprioritisation, refused by PO-1:2 (its
    # one spare unit gone to the earlier expedite), leaves PO-2:1's spare unit to the expedite arriving after it
    chain = pd.DataFrame({"item_key": ["po|PO-1:2", "po|PO-1:2", "po|PO-2:1"], "item_qty": [10.0, 10.0, 10.0],
                          "other_item_key": [None, "po|PO-2:1", None], "other_item_qty": [np.nan, 10.0, np.nan],
                          "arrive_week": [0, 1, 2], "qty": [5.5, 4.5, 5.5]})
    assert fits(chain) == [True, False, True]
    # an action drawing twice on one item needs a unit from each draw: 4.5 + 4.5 of a 9-unit order cannot round up
    twice = chain.iloc[:1].assign(item_qty=9.0, other_item_key="po|PO-1:2", other_item_qty=9.0, qty=4.5)
    assert fits(twice) == [False]
    assert fits(twice.assign(item_qty=10.0, other_item_qty=10.0)) == [True]
    # 30 actions over 3 lines with 3 units each beyond their actions rounded down: no line overdrawn, and no action
    # left rounded down while every line it draws on still has a unit to give
    rng = np.random.default_rng(7)
    many = pd.DataFrame({"item_key": rng.choice(["po|A:1", "po|B:1", "po|C:1"], 30),
                         "other_item_key": rng.choice([None, "po|A:1", "po|B:1", "po|C:1"], 30),
                         "arrive_week": rng.integers(0, 5, 30), "qty": rng.uniform(0.2, 2.9, 30)})
    many.loc[many["other_item_key"].eq(many["item_key"]), "other_item_key"] = None

    def taken(qty: pd.Series) -> pd.Series:
        return pd.concat([qty.groupby(many[column]).sum() for column in ("item_key", "other_item_key")]).groupby(
            level=0).sum()

    line_qty = taken(np.floor(many["qty"])) + 3
    many = many.assign(item_qty=many["item_key"].map(line_qty), other_item_qty=many["other_item_key"].map(line_qty))
    up = pd.Series(fits(many), index=many.index)
    rounded = np.ceil(many["qty"]).where(up, np.floor(many["qty"]))
    assert (~up).sum() > 5  # the lines are tight: many actions keep their rounded-down quantity
    assert (taken(rounded) <= line_qty).all()
    spare = line_qty - taken(rounded)
    has_spare = many["item_key"].map(spare).ge(1) & many["other_item_key"].map(spare).fillna(1).ge(1)
    assert not (~up & has_spare).any()


def test_a_line_split_over_weeks_is_rounded_to_its_units_and_covers_the_shortage():
    """A is 16.7, 33.4 and 50 short in weeks 1-3 until PO-1:1 (50 units) lands in week 4: the optimiser brings
    16.7 into week 1, 16.7 into week 2 and 16.6 into week 3. Rounded up they would take 51 of the line's 50;
    all rounded down, 48, leaving A 2 units short (escalated) though the line has them. Its 2 units beyond the
    rounded-down 48 go to the earliest arrivals (a unit landing sooner lifts every week after it): 17 + 17 + 16."""
    config = replace(CONFIG, max_po_pull_in_days=28)
    pos = positions({("X", "A"): ([5, -16.7, -33.4, -50, 0, 0], 0)})
    supply = pd.DataFrame([{"supply_kind": "purchase_order", "reference_id": "PO-1:1", "sku_id": "X", "location_id": "A",
                            "resource_id": None, "due_date": date(2026, 12, 16), "week_index": 4, "qty": 50.0,
                            "ship_date": None}])
    prob = build_problem(AS_OF, H, F, pos, shortages(pos), lanes(), NO_USUAL, supply, NO_CAPACITY, config)
    acts, withdrawn, projected, _ = choose_actions(prob, config)
    assert withdrawn.empty
    assert acts[["arrive_week", "qty"]].values.tolist() == [[1, 17.0], [2, 17.0], [3, 16.0]]
    assert projected.loc[projected["inside_time_fence"], "proj_new"].min() >= 0
    _, short = attribute(prob, acts, projected)
    assert short[["covered_qty", "left_qty"]].values.tolist() == [[50.0, 0.0]]


def test_explanation_states_the_numbers():
    from soe_assets.respond.recommend import action_rows

    pos = positions({("X", "A"): ([50, -30, -60, -60, -60, -60], 20), ("X", "D"): ([300] * 6, 100)})
    prob = problem(pos, lanes(("D", "A", 2, 1.0)))
    acts, projected = chosen(prob)
    into, _ = attribute(prob, acts, projected)
    row = action_rows(prob, into, projected).iloc[0]
    assert row["explanation"] == (
        "Move 60 units of X from D to A (2 days, $60, departing 2026-11-19, arriving 2026-11-21): covers 60 of the shortfall at A that "
        "starts in week-48 (2026-11-23) and reaches 60 units ($3,000 of revenue protected); D stays at or above "
        "safety stock (lowest margin 140 units).")


# Reprioritisation: plant P is 50 short of X in weeks 2-3 until MO-1 (200 units of X) finishes on Fri 2026-12-18
# (week 4). Resource R has no spare capacity in weeks 1-3, so no pull-in fits. MO-2 (100 units of Y) and MO-3
# (100 units of Z) both finish on R on Fri 2026-12-04 (week 2). Running MO-1 in that slot (finishing Sunday
# 12-06, 12 days earlier) pushes the swapped units of the other order to MO-1's old week (12-18): -qty of
# its SKU at P in weeks 2-3.
def _swap_problem(others: list[tuple[str, str]], series: dict[tuple[str, str], tuple[list[float], float]],
                  other_due: date = date(2026, 12, 4), more_orders: tuple[tuple[str, str, date, int, float], ...] = ()):
    pos = positions({("X", "P"): ([10, 5, -50, -50, 150, 150], 0), **series}, types={"P": "plant"})
    orders = [("MO-1", "X", date(2026, 12, 18), 4, 200.0), *more_orders] + [
        (mo, sku, other_due, 2, 100.0) for mo, sku in others]
    supply = pd.DataFrame([{"supply_kind": "production", "reference_id": mo, "sku_id": sku, "location_id": "P",
                            "resource_id": "R", "due_date": due, "week_index": week, "qty": qty, "ship_date": None}
                           for mo, sku, due, week, qty in orders])
    capacity = pd.DataFrame([{"resource_key": "P/R", "week_index": w, "spare_qty": 0.0} for w in range(F)])
    return problem(pos, lanes(), supply, capacity)


def test_full_resource_gets_a_reprioritisation_and_the_pushed_order_keeps_its_sku_above_safety_stock():
    # Y at P has 300 against a safety stock of 100 (200 to spare); Z sits at its safety stock (the decoy:
    # pushing MO-3 would take Z below it). The only cover is MO-1 in MO-2's slot, 50 units: X 0 in weeks 2-3,
    # Y 250 there; Z untouched. Cost 50 x (1.50 + 0.10 x 12) = $135.
    prob = _swap_problem([("MO-2", "Y"), ("MO-3", "Z")],
                         {("Y", "P"): ([300] * 6, 100), ("Z", "P"): ([100] * 6, 100)})
    assert sorted(prob.actions["other_reference_id"]) == ["MO-2", "MO-3"]
    assert set(prob.actions["action_type"]) == {"reprioritise_production"}
    acts, projected = chosen(prob)
    assert acts[["action_type", "reference_id", "other_reference_id", "qty"]].values.tolist() == [
        ["reprioritise_production", "MO-1", "MO-2", 50.0]]
    new = projected.set_index(["sku_id", "week_index"])["proj_new"]
    assert new.loc["X"].tolist() == [10, 5, 0, 0, 150, 150]
    assert new.loc["Y"].tolist() == [300, 300, 250, 250, 300, 300]
    assert new.loc["Z"].tolist() == [100] * 6
    from soe_assets.respond.recommend import action_rows
    into, short = attribute(prob, acts, projected)
    assert short["protected_value"].sum() == pytest.approx(50 * 50)
    row = action_rows(prob, into, projected).iloc[0]
    assert row["cost"] == pytest.approx(135)
    assert row["explanation"] == (
        "Run MO-1 (50 units of X) before MO-2 on R at P in week 2026-11-30 (finishing 2026-12-06 instead of "
        "2026-12-18, $135): 50 units of MO-2 (Y) move from 2026-12-04 to 2026-12-18, Y stays at or above safety stock "
        "at P (lowest margin 150 units); covers 50 of the shortfall at P that starts in week-49 (2026-11-30) and "
        "reaches 50 units ($2,500 of revenue protected).")


def test_a_reprioritisation_swaps_with_another_skus_order_and_moves_it_by_the_weeks_its_slot_is_taken():
    """MO-2 (Y) finishes on Wed 12-02 in MO-1's target week 2; MO-4 is another order of X there (no swap: X against
    X frees nothing). MO-1 is pulled in two weeks, so MO-2's swapped units finish two weeks later, Wed 12-16 (MO-1's
    old week, same weekday), not on MO-1's old date 12-18."""
    prob = _swap_problem([("MO-2", "Y"), ("MO-4", "X")], {("Y", "P"): ([300] * 6, 100)}, other_due=date(2026, 12, 2))
    swaps = prob.actions[prob.actions["action_type"] == "reprioritise_production"]
    assert swaps[["reference_id", "other_reference_id", "arrive_week"]].values.tolist() == [["MO-1", "MO-2", 2]]
    assert swaps["other_new_date"].tolist() == [pd.Timestamp(2026, 12, 16)]


def test_two_reprioritisations_into_one_slot_swap_no_more_than_the_order_they_push_later():
    """X (50 short) and W (80 short) at P each have an order due in week 4 that could take the slot of MO-2 (100
    units of Y, week 2): the two swaps together push at most MO-2's 100 units later, not 130."""
    w_order = ("MO-5", "W", date(2026, 12, 18), 4, 200.0)
    prob = _swap_problem([("MO-2", "Y")], {("Y", "P"): ([300] * 6, 100), ("W", "P"): ([10, 5, -80, -80, 150, 150], 0)},
                         more_orders=(w_order,))
    acts, projected = chosen(prob)
    assert set(acts["reference_id"]) == {"MO-1", "MO-5"} and acts["qty"].sum() == 100
    assert projected.loc[projected["sku_id"] == "Y", "proj_new"].min() == 200


def test_reprioritisation_that_would_take_the_other_sku_below_safety_stock_is_not_chosen():
    # Only the decoy MO-3 shares the slot; Z would go below its safety stock: nothing moves, X stays 50 short.
    prob = _swap_problem([("MO-3", "Z")], {("Z", "P"): ([100] * 6, 100)})
    assert (prob.actions["action_type"] == "reprioritise_production").sum() == 1
    acts, projected = chosen(prob)
    assert acts.empty
    assert (projected["proj_new"] == projected["proj"]).all()
    # and the re-projection verifier withdraws it if it were proposed anyway
    from soe_assets.respond.verify import verified
    kept, withdrawn, _ = verified(prob, prob.actions.assign(qty=50.0))
    assert kept.empty and withdrawn["other_reference_id"].tolist() == ["MO-3"]


def test_spare_capacity_is_used_by_a_pull_in_before_any_reprioritisation():
    # Same as above but R has 80 spare in week 2: the pull-in is generated and no swap is offered there.
    prob = _swap_problem([("MO-2", "Y")], {("Y", "P"): ([300] * 6, 100)})
    cap = prob.capacity.assign(spare_qty=lambda f: f["spare_qty"].where(f["week_index"] != 2, 80.0))
    pos = prob.positions
    supply = pd.DataFrame([{"supply_kind": "production", "reference_id": mo, "sku_id": sku, "location_id": "P",
                            "resource_id": "R", "due_date": due, "week_index": week, "qty": 100.0 if mo == "MO-2" else 200.0,
                            "ship_date": None}
                           for mo, sku, due, week in [("MO-1", "X", date(2026, 12, 18), 4), ("MO-2", "Y", date(2026, 12, 4), 2)]])
    prob = problem(pos, lanes(), supply, cap)
    assert set(prob.actions["action_type"]) == {"pull_in_production"}  # week 2 has spare: no swap offered there
    acts, _ = chosen(prob)
    assert acts[["action_type", "reference_id", "qty"]].values.tolist() == [["pull_in_production", "MO-1", 50.0]]


@pytest.mark.parametrize(("avg_week_demand", "escalated"), [(100.0, False), (20.0, True), (60.0, False)])
def test_a_remainder_smaller_than_a_stockout_is_not_escalated(avg_week_demand, escalated):
    """3 units still short after the actions: rounding against 100 a week (a stockout needs 5 % of a week's
    demand, 5 units), a shortage against 20 a week (threshold 1 unit); against 60 a week exactly the threshold
    (3 units), which a stockout must exceed."""
    prob = problem(positions({("S", "DC-1"): ([-50.0] * H, 0.0)}), lanes())
    all_short = pd.DataFrame([{"sku_id": "S", "location_id": "DC-1", "first_week": 0, "first_short_week_any": 0,
                               "worst_short_qty": 50.0, "price": 50.0, "avg_week_demand": avg_week_demand}])
    short = pd.DataFrame([{"sku_id": "S", "location_id": "DC-1", "covered_qty": 47.0, "left_qty": 3.0}])
    projected = pd.DataFrame({"sku_id": "S", "location_id": "DC-1", "week_index": range(H),
                              "proj_new": [-3.0] + [0.0] * (H - 1)})
    rows = escalation_rows(prob, all_short, short, projected, CONFIG)
    assert (len(rows) == 1) is escalated


@pytest.mark.parametrize(("covered_qty", "says"), [
    # an expedite of 100 units brings supply forward: the worst week goes from 500 to 450 units short
    (100.0, "the actions inside the 4-week fence bring that down to 450 units ($22,500) for S&OP to resolve."),
    (0.0, "no action inside the 4-week fence can cover it: 450 units ($22,500) for S&OP to resolve."),
])
def test_an_escalation_states_what_is_still_short_not_the_units_moved(covered_qty, says):
    prob = problem(positions({("S", "DC-1"): ([-500.0] * H, 0.0)}), lanes())
    all_short = pd.DataFrame([{"sku_id": "S", "location_id": "DC-1", "first_week": 0, "first_short_week_any": 0,
                               "worst_short_qty": 500.0, "price": 50.0, "avg_week_demand": 100.0}])
    short = pd.DataFrame([{"sku_id": "S", "location_id": "DC-1", "covered_qty": covered_qty, "left_qty": 450.0}])
    projected = pd.DataFrame({"sku_id": "S", "location_id": "DC-1", "week_index": range(H), "proj_new": [-450.0] * H})
    row = escalation_rows(prob, all_short, short, projected, CONFIG).iloc[0]
    assert row["qty"] == 450
    assert row["explanation"] == "S at DC-1 is short 500 units from week-47 (2026-11-16); " + says


ESCALATED = pd.DataFrame({"sku_id": ["S"], "to_location_id": ["DC-1"]})  # the place the re-promise tests judge


def booked_lines(*lines: tuple[str, str, int, date]) -> pd.DataFrame:
    """S's booked lines at DC-1 (reference, customer, week, requested date; 30 units each, promised as
    requested): customer BIG holds $3,600 of open orders, SMALL $1,200."""
    frame = pd.DataFrame(lines, columns=["reference_id", "customer_id", "week_index", "due_date"])
    return frame.assign(customer_value=frame["customer_id"].map({"BIG": 3600.0, "SMALL": 1200.0}),
                        promised_date=frame["due_date"], sku_id="S", location_id="DC-1", qty=30.0)


def short_in_weeks_1_and_2():
    """S at DC-1: 30 units short in weeks 1-2 that nothing covers, back above zero from week 3."""
    balance = [10.0, -30.0, -30.0, 5.0, 5.0, 5.0]
    prob = problem(positions({("S", "DC-1"): (balance, 0.0)}), lanes())
    short = pd.DataFrame([{"sku_id": "S", "location_id": "DC-1", "short_qty": 30.0, "left_qty": 30.0,
                           "first_week": 1, "price": 50.0}])
    projected = pd.DataFrame({"sku_id": "S", "location_id": "DC-1", "week_index": range(H), "proj_new": balance})
    return prob, short, projected


def test_booked_lines_that_cannot_be_met_are_re_promised_smallest_customer_first():
    """30 units short in weeks 1-2 that nothing covers; the balance is back above zero from week 3. Of the lines
    due in the short weeks, SMALL's (less open value) moves to week 3's Monday; BIG's stays, and SMALL's
    week-0 line, due before the shortage, too. SMALL's week-3 line, due when the balance is back, neither
    moves nor counts against the 30 units."""
    prob, short, projected = short_in_weeks_1_and_2()
    lines = booked_lines(("SO-BIG:1", "BIG", 1, date(2026, 11, 25)), ("SO-SMALL:1", "SMALL", 2, date(2026, 12, 2)),
                         ("SO-SMALL:2", "SMALL", 0, date(2026, 11, 18)), ("SO-SMALL:3", "SMALL", 3, date(2026, 12, 9)))
    rows = promise_rows(prob, short, projected, lines, ESCALATED)
    assert rows["reference_id"].tolist() == ["SO-SMALL:1"]
    assert rows["explanation"].iloc[0] == (
        "Re-promise order line SO-SMALL:1 (30 units of S from DC-1, customer SMALL with $1,200 of open orders; "
        "the lines of customers with less move first) from 2026-12-02 to 2026-12-07: 30 units of the fence "
        "shortage cannot be covered and the balance after the recommended actions is back at or above zero from "
        "that week (5 that week).")


def test_no_line_is_re_promised_where_the_remainder_is_not_escalated_or_already_moved():
    """A remainder too small to escalate (rounding) moves no customer's order; a line already promised for the
    recovery week (the re-promise carried out: booked demand stays at its requested date) gets no row again and
    still accounts for its units, so no other line moves in its place."""
    prob, short, projected = short_in_weeks_1_and_2()
    lines = booked_lines(("SO-SMALL:1", "SMALL", 2, date(2026, 12, 2)), ("SO-BIG:1", "BIG", 1, date(2026, 11, 25)))
    lines.loc[0, "promised_date"] = date(2026, 12, 7)  # already moved to the recovery week's Monday
    assert promise_rows(prob, short, projected, lines, ESCALATED).empty
    # BIG's line moved instead, SMALL's as requested: BIG's 30 units account for the shortage, SMALL's stays
    big_moved = lines.assign(promised_date=[date(2026, 12, 2), date(2026, 12, 7)])
    assert promise_rows(prob, short, projected, big_moved, ESCALATED).empty
    assert promise_rows(prob, short, projected, lines.assign(promised_date=lines["due_date"]), ESCALATED)[
        "reference_id"].tolist() == ["SO-SMALL:1"]
    assert promise_rows(prob, short, projected, lines.assign(promised_date=lines["due_date"]),
                        ESCALATED.iloc[0:0]).empty
    assert promise_rows(prob, short, projected, lines, pd.DataFrame()).empty  # no escalation at all: no columns
    # the transfer before it carried out too, the shortage starts a week later, after SMALL's moved line was
    # requested: that line still accounts for its units, and BIG's keeps its date
    later = [10.0, 0.0, -30.0, 5.0, 5.0, 5.0]
    short_later = short.assign(first_week=2)
    projected_later = projected.assign(proj_new=later)
    moved_early = booked_lines(("SO-SMALL:1", "SMALL", 1, date(2026, 11, 25)), ("SO-BIG:1", "BIG", 2, date(2026, 12, 2)))
    moved_early.loc[0, "promised_date"] = date(2026, 12, 7)
    assert promise_rows(prob, short_later, projected_later, moved_early, ESCALATED).empty


def test_of_one_customers_lines_due_in_the_same_week_the_latest_requested_moves_first():
    """10 units short in week 1: of SMALL's two lines requested that week (Tue 20, Thu 10 units), the Thursday
    one accounts for the shortage alone; the Tuesday line keeps its date."""
    prob = problem(positions({("S", "DC-1"): ([10.0, -10.0, 5.0, 5.0, 5.0, 5.0], 0.0)}), lanes())
    short = pd.DataFrame([{"sku_id": "S", "location_id": "DC-1", "short_qty": 10.0, "left_qty": 10.0,
                           "first_week": 1, "price": 50.0}])
    projected = pd.DataFrame({"sku_id": "S", "location_id": "DC-1", "week_index": range(H),
                              "proj_new": [10.0, -10.0, 5.0, 5.0, 5.0, 5.0]})
    lines = pd.DataFrame([
        {"reference_id": "SO-A:1", "due_date": date(2026, 11, 24), "qty": 20.0},
        {"reference_id": "SO-B:1", "due_date": date(2026, 11, 26), "qty": 10.0},
    ]).assign(sku_id="S", location_id="DC-1", customer_id="SMALL", customer_value=1500.0, week_index=1,
              promised_date=lambda f: f["due_date"])
    assert promise_rows(prob, short, projected, lines, ESCALATED)["reference_id"].tolist() == ["SO-B:1"]


def test_lines_that_cannot_be_met_within_the_horizon_are_listed_without_a_date():
    """The balance is 30 short from week 1, back above zero in weeks 3 and 4, and short again in the horizon's last
    week: the line that accounts for the shortage is still listed for the planner, with no new date (S&OP must
    re-plan the supply first). Money reads as people round it: $900.50 is '$901'."""
    balance = [10.0, -30.0, -30.0, 5.0, 5.0, -30.0]
    prob = problem(positions({("S", "DC-1"): (balance, 0.0)}), lanes())
    short = pd.DataFrame([{"sku_id": "S", "location_id": "DC-1", "short_qty": 30.0, "left_qty": 30.0,
                           "first_week": 1, "price": 50.0}])
    projected = pd.DataFrame({"sku_id": "S", "location_id": "DC-1", "week_index": range(H), "proj_new": balance})
    lines = pd.DataFrame([{"reference_id": "SO-C8:1", "customer_id": "C8", "customer_value": 900.5, "week_index": 1,
                           "due_date": date(2026, 11, 25), "promised_date": date(2026, 11, 25)}]).assign(
        sku_id="S", location_id="DC-1", qty=30.0)
    rows = promise_rows(prob, short, projected, lines, ESCALATED)
    assert rows["reference_id"].tolist() == ["SO-C8:1"]
    assert rows["explanation"].iloc[0] == (
        f"Re-promise order line SO-C8:1 (30 units of S from DC-1, customer C8 with $901 of open orders; the lines of "
        f"customers with less move first) from 2026-11-25: 30 units of the fence shortage cannot be covered and the "
        f"balance after the recommended actions is below zero in the last week of the {H}-week horizon, so no date "
        f"can be promised yet: hold the line until S&OP re-plans the supply (escalated).")


def test_below_safety_stock_after_the_actions_uses_the_detection_measure():
    """Safety stock 30 (material gap: more than 6 units). After the actions DC-1 ends at 25 (5 short:
    lifted), DC-2 at 20 (10 short: still below), DC-3 dips to 20 only beyond the fence (lifted), DC-4 ends at 24
    (exactly 6 short: lifted)."""
    projected = positions({("S", "DC-1"): ([25.0] * H, 30.0), ("S", "DC-2"): ([40.0, 20.0] + [40.0] * (H - 2), 30.0),
                           ("S", "DC-3"): ([40.0] * F + [20.0] * (H - F), 30.0),
                           ("S", "DC-4"): ([24.0] * H, 30.0)}).rename(columns={"proj": "proj_new"})
    assert below_safety_stock_after(projected).tolist() == [("S", "DC-2")]


def test_recommendations_link_to_the_runs_exceptions_held_back_by_the_alert_budget_too():
    """DC-1's stockout is in the mart, DC-2's was held back by the alert budget (in the history only), DC-3's
    was open only in an earlier run: DC-3's action gets the id detection gives a stockout there."""
    conn = duckdb.connect()
    conn.execute("create schema marts")
    conn.execute("""create table marts.exception_history as select * from (values
        ('EX-A', 'projected_stockout', 'S', 'DC-1', null, 'open', DATE '2026-11-18', true, DATE '2026-11-16', 0.0),
        ('EX-B', 'projected_stockout', 'S', 'DC-2', null, 'open', DATE '2026-11-18', false, DATE '2026-11-16', 0.0),
        ('EX-C', 'projected_stockout', 'S', 'DC-3', null, 'open', DATE '2026-11-11', true, DATE '2026-11-16', 0.0)
    ) as t(exception_id, exception_type, sku_id, location_id, reference_id, status, as_of, in_alert_budget,
            week_start, shortfall_qty)""")
    rows = pd.DataFrame({"action_type": "reallocate_stock", "sku_id": "S", "to_place": ["DC-1", "DC-2", "DC-3"],
                         "reference_id": None, "qty": 10.0, "week_start": pd.Timestamp(WEEK0)})
    linked = link_exceptions(conn, rows, pd.MultiIndex.from_tuples([], names=["sku_id", "location_id"]), AS_OF)
    detection_id = exception_ids(pd.DataFrame({"exception_type": ["projected_stockout"], "sku_id": ["S"],
                                               "location_id": ["DC-3"], "reference_id": [None],
                                               "week_start": [WEEK0]})).iloc[0]
    assert linked["exception_id"].tolist() == ["EX-A", "EX-B", detection_id]
    assert detection_id.startswith("EX-") and len(detection_id) == 19
    assert linked["resolves_exception_ids"].tolist() == linked["exception_id"].tolist()


def test_an_expedite_claims_the_late_line_it_expedites_only_when_it_moves_all_of_it():
    """PO-1 (100 open) is expedited whole in two rows (60 + 40), PO-2 (100 open) only 80 of it: PO-1's late-PO
    exception is resolved, PO-2's is not."""
    conn = duckdb.connect()
    conn.execute("create schema marts")
    conn.execute("""create table marts.exception_history as select * from (values
        ('EX-A', 'projected_stockout', 'S', 'DC-1', null, 'open', DATE '2026-11-18', DATE '2026-11-16', 0.0),
        ('EX-P1', 'late_purchase_order', 'S', 'DC-1', 'PO-1', 'open', DATE '2026-11-18', DATE '2026-11-16', 0.0),
        ('EX-P2', 'late_purchase_order', 'S', 'DC-1', 'PO-2', 'open', DATE '2026-11-18', DATE '2026-11-16', 0.0)
    ) as t(exception_id, exception_type, sku_id, location_id, reference_id, status, as_of,
            week_start, shortfall_qty)""")
    rows = pd.DataFrame({"action_type": "expedite_purchase_order", "sku_id": "S", "to_place": "DC-1",
                         "reference_id": ["PO-1", "PO-1", "PO-2"], "qty": [60.0, 40.0, 80.0],
                         "item_qty": [100.0, 100.0, 100.0], "week_start": pd.Timestamp(WEEK0)})
    linked = link_exceptions(conn, rows, pd.MultiIndex.from_tuples([], names=["sku_id", "location_id"]), AS_OF)
    assert linked["resolves_exception_ids"].tolist() == ["EX-A,EX-P1", "EX-A,EX-P1", "EX-A"]


def test_an_expedite_claims_the_late_line_only_when_it_lands_within_the_slip_tolerance_of_its_promise():
    """PO-1 promised 11-18 is brought forward whole to 11-19 (one day late: tolerated) and resolves its late-PO
    exception; PO-2 promised 11-18 is brought forward whole to 11-29, still 11 days late: the next run finds it
    late again, so the row does not claim it. PO-3 is split over two weeks and its later part lands late."""
    conn = duckdb.connect()
    conn.execute("create schema marts")
    conn.execute("""create table marts.exception_history as select * from (values
        ('EX-A', 'projected_stockout', 'S', 'DC-1', null, 'open', DATE '2026-11-18', DATE '2026-11-16', 0.0),
        ('EX-P1', 'late_purchase_order', 'S', 'DC-1', 'PO-1', 'open', DATE '2026-11-18', DATE '2026-11-16', 0.0),
        ('EX-P2', 'late_purchase_order', 'S', 'DC-1', 'PO-2', 'open', DATE '2026-11-18', DATE '2026-11-16', 0.0),
        ('EX-P3', 'late_purchase_order', 'S', 'DC-1', 'PO-3', 'open', DATE '2026-11-18', DATE '2026-11-16', 0.0)
    ) as t(exception_id, exception_type, sku_id, location_id, reference_id, status, as_of,
            week_start, shortfall_qty)""")
    rows = pd.DataFrame({"action_type": "expedite_purchase_order", "sku_id": "S", "to_place": "DC-1",
                         "reference_id": ["PO-1", "PO-2", "PO-3", "PO-3"], "qty": [50.0, 50.0, 20.0, 30.0],
                         "item_qty": 50.0, "week_start": pd.Timestamp(WEEK0),
                         "promised_date": pd.Timestamp("2026-11-18"),
                         "new_date": pd.to_datetime(["2026-11-19", "2026-11-29", "2026-11-19", "2026-11-22"])})
    linked = link_exceptions(conn, rows, pd.MultiIndex.from_tuples([], names=["sku_id", "location_id"]), AS_OF)
    assert linked["resolves_exception_ids"].tolist() == ["EX-A,EX-P1", "EX-A", "EX-A", "EX-A"]


def test_actions_at_a_place_still_short_afterwards_do_not_claim_to_resolve_its_exceptions():
    """DC-1 is still short after its transfer and expedite (it is escalated): both rows serve its stockout
    EX-A without resolving it, but the expedite moves all of late PO-1 and resolves EX-P1. DC-2 has only a
    below-safety-stock exception the actions do not lift: nothing resolved. DC-3's stockout is covered."""
    conn = duckdb.connect()
    conn.execute("create schema marts")
    conn.execute("""create table marts.exception_history as select * from (values
        ('EX-A', 'projected_stockout', 'S', 'DC-1', null, 'open', DATE '2026-11-18', DATE '2026-11-16', 0.0),
        ('EX-P1', 'late_purchase_order', 'S', 'DC-1', 'PO-1', 'open', DATE '2026-11-18', DATE '2026-11-16', 0.0),
        ('EX-B', 'below_safety_stock', 'S', 'DC-2', null, 'open', DATE '2026-11-18', DATE '2026-11-16', 0.0),
        ('EX-C', 'projected_stockout', 'S', 'DC-3', null, 'open', DATE '2026-11-18', DATE '2026-11-16', 0.0)
    ) as t(exception_id, exception_type, sku_id, location_id, reference_id, status, as_of,
            week_start, shortfall_qty)""")
    rows = pd.DataFrame({
        "action_type": ["reallocate_stock", "expedite_purchase_order", "escalate_to_sop", "reallocate_stock",
                        "reallocate_stock"],
        "sku_id": "S", "to_place": ["DC-1", "DC-1", "DC-1", "DC-2", "DC-3"],
        "reference_id": [None, "PO-1", None, None, None], "qty": [10.0, 50.0, 30.0, 5.0, 20.0],
        "item_qty": [np.nan, 50.0, np.nan, np.nan, np.nan], "week_start": pd.Timestamp(WEEK0)})
    still_below = pd.MultiIndex.from_tuples([("S", "DC-1"), ("S", "DC-2")], names=["sku_id", "location_id"])
    linked = link_exceptions(conn, rows, still_below, AS_OF)
    assert linked["exception_id"].tolist() == ["EX-A", "EX-A", "EX-A", "EX-B", "EX-C"]
    assert linked["resolves_exception_ids"].tolist() == [None, "EX-P1", None, None, "EX-C"]  # escalating: none
    lines = format_recommendations(linked.assign(
        recommendation_id=[f"REC-{i}" for i in range(5)], from_location_id="DC-9", to_location_id=linked["to_place"],
        impact_resolved_value=0.0, cost=[22.5, 13.5, 0.0, 0.0, 0.0], explanation="x", rank=range(1, 6)))
    assert "serves EX-A without resolving it  [REC-0]" in lines
    assert "resolves EX-P1  [REC-1]" in lines
    # money as the explanations round it ($22.50 reads '$23' there), not half to even
    assert re.search(r"REC-0\]", lines) and re.search(r"cost +23\n", lines) and re.search(r"cost +14\n", lines)


def test_rows_rank_by_money_at_stake_and_ties_put_actions_first_then_re_promises_then_escalations():
    """At equal money at stake (an action's revenue protected, a re-promise's or an escalation's at_stake):
    action, re-promise, escalation, whatever order they come in; more at stake ranks higher whatever the kind."""
    rows = pd.DataFrame({
        "action_type": ["escalate_to_sop", "adjust_order_promise", "reallocate_stock", "escalate_to_sop",
                        "adjust_order_promise", "expedite_purchase_order"],
        "at_stake": [100.0, 100.0, np.nan, 900.0, 40.0, np.nan],
        "impact_resolved_value": [0.0, 0.0, 100.0, 0.0, 0.0, 50.0],
        "sku_id": "S", "to_place": "DC-1"}, index=[7, 3, 5, 0, 1, 2])
    ranked = ranked_by_money_at_stake(rows)
    assert ranked.index.tolist() == [0, 5, 3, 7, 2, 1]
    assert ranked["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert list(ranked.columns) == [*rows.columns, "rank"]


def test_an_overload_is_cleared_only_when_what_is_left_of_it_is_no_overload():
    """Capacity 100 (overload above 105 and 1 unit over): LINE-A's week is 50 over and loses 48 to pull-ins
    (2 left, within the 5 % tolerance); LINE-B's is 50 over and loses 40 (10 left: still overloaded); LINE-C's
    week has no overload; a pull-in from another week of LINE-A clears nothing."""
    week = pd.Timestamp("2026-11-30")
    overloads = pd.DataFrame({"exception_id": ["EX-A", "EX-B"], "location_id": "PLANT-1",
                              "resource_id": ["LINE-A", "LINE-B"], "week_start": week, "over_qty": 50.0,
                              "capacity_qty": 100.0})
    pulls = pd.DataFrame({"location_id": "PLANT-1", "resource_id": ["LINE-A", "LINE-A", "LINE-B", "LINE-C", "LINE-A"],
                          "week_start": [week, week, week, week, week + pd.Timedelta(days=7)],
                          "qty": [30.0, 18.0, 40.0, 60.0, 100.0]}, index=[10, 11, 12, 13, 14])
    cleared = overloads_cleared(pulls, overloads)
    assert cleared.index.tolist() == [10, 11, 12, 13, 14]
    assert cleared.tolist()[:2] == ["EX-A", "EX-A"] and cleared.iloc[2:].isna().all()
    assert overloads_cleared(pulls.iloc[:1], overloads).isna().all()  # 30 of the 50: 20 left over
    # a capacity of 10 tolerates 0.5 over, but an overload needs only 1 unit over: 1 left is still one
    assert overloads_cleared(pulls.iloc[:1].assign(qty=49.0), overloads.assign(capacity_qty=10.0)).isna().all()


def test_an_actions_id_does_not_depend_on_the_other_rows_of_its_run():
    """An escalation (no date) keeps its id whether or not the run also recommends a dated transfer, and two
    transfers differing only in their arrival date are two ids."""
    escalation = {"action_type": "escalate_to_sop", "sku_id": "Z", "from_location_id": None, "to_location_id": "DC-1",
                  "reference_id": None, "new_date": None}
    transfer = {"action_type": "reallocate_stock", "sku_id": "Y", "from_location_id": "DC-2",
                "to_location_id": "DC-1", "reference_id": None, "new_date": pd.Timestamp(2026, 11, 24)}
    alone = recommendation_ids(pd.DataFrame([escalation]))
    beside = recommendation_ids(pd.DataFrame([escalation, transfer, dict(transfer, new_date=pd.Timestamp(2026, 11, 25))]))
    assert alone.iloc[0] == beside.iloc[0]
    assert beside.is_unique and beside.str.fullmatch(r"REC-[0-9a-f]{12}").all()


def test_on_a_sunday_tomorrows_truck_is_one_departure_limited_to_the_stock_at_as_of():
    """Run on Sunday 2026-11-22, week 0's departure (tomorrow) is week 1's Monday: D, holding 20 units at as_of
    and 320 by the end of week 0 (an overdue PO counted there), ships 20 then, not 20 plus 190 more on the
    same truck."""
    pos = positions({("X", "A"): ([0, -70, -140, -210, -210, -210], 0), ("X", "D"): ([320] * 6, 0)})
    pos.loc[pos["location_id"].eq("D") & pos["week_index"].eq(0), "opening"] = 20.0
    sunday = date(2026, 11, 22)
    prob = build_problem(sunday, H, F, pos, shortages(pos), lanes(("D", "A", 1, 1.0)), NO_USUAL, NO_SUPPLY,
                         NO_CAPACITY, CONFIG)
    transfers = prob.actions[prob.actions["action_type"].eq("reallocate_stock")]
    assert 1 not in set(transfers["depart_week"]) and {0, 2} <= set(transfers["depart_week"])
    acts, _ = chosen(prob)
    tomorrow = acts[acts["depart_week"].eq(0)]
    assert tomorrow["qty"].sum() <= 20.0 + 1e-6


def test_a_plant_that_never_shipped_the_sku_to_the_dc_is_an_alternate_source():
    """A lane from plant P to DC A: P is A's usual source of X where the shipments show it sending X there (a
    reallocation), else an alternate source, though it is the only plant; a DC to DC lane is a reallocation."""
    pos = positions({("X", "A"): ([50, -30, -60, -60, -60, -60], 20), ("X", "P"): ([300] * 6, 100),
                     ("X", "D"): ([300] * 6, 100)}, types={"P": "plant"})
    usual = pd.DataFrame([{"sku_id": "X", "from_location_id": "P", "to_location_id": "A"}])

    def kinds(usual_shipments: pd.DataFrame) -> dict[str, set[str]]:
        prob = build_problem(AS_OF, H, F, pos, shortages(pos), lanes(("P", "A", 2, 1.0), ("D", "A", 1, 1.0)),
                             usual_shipments, NO_SUPPLY, NO_CAPACITY, CONFIG)
        return prob.actions.groupby("from_location_id")["action_type"].agg(set).to_dict()

    assert kinds(NO_USUAL) == {"P": {"alternate_source"}, "D": {"reallocate_stock"}}
    assert kinds(usual) == {"P": {"reallocate_stock"}, "D": {"reallocate_stock"}}


def expedites_offered(as_of: date) -> list[list]:
    """A is 20 short in weeks 1-2. PO line PO-1:1 and shipment SH-1 (departed 11-17) are due on Sunday 12-06 (week
    2), SH-2 leaves only on 11-25: (action, reference, target week, days pulled, cost per unit) of the candidates."""
    pos = positions({("X", "A"): ([5, -20, -20, 30, 30, 30], 0)})
    supply = pd.DataFrame([
        {"supply_kind": kind, "reference_id": reference, "sku_id": "X", "location_id": "A", "resource_id": None,
         "due_date": date(2026, 12, 6), "week_index": 2, "qty": 50.0, "ship_date": shipped}
        for kind, reference, shipped in [("purchase_order", "PO-1:1", None), ("transfer", "SH-1", date(2026, 11, 17)),
                                         ("transfer", "SH-2", date(2026, 11, 25))]])
    prob = build_problem(as_of, H, F, pos, shortages(pos), lanes(), NO_USUAL, supply, NO_CAPACITY, CONFIG)
    return sorted(prob.actions[["action_type", "reference_id", "arrive_week", "days_pulled", "cost_per_unit"]]
                  .values.tolist())


def test_expedites_are_offered_within_their_pull_in_limits_at_their_cost_for_departed_shipments_only():
    """To land on Sunday 11-22 (week 0) the PO line moves 14 days, its limit: $2 + 14 x $0.25; on 11-29, 7 days:
    $2 + 7 x $0.25. The shipment moves at most 7 days (11-29: $1 + 7 x $0.50). SH-2 has not left: speeding it up
    would take stock earlier from its origin (a reallocation), no expedite."""
    assert expedites_offered(AS_OF) == [["expedite_purchase_order", "PO-1:1", 0, 14, 5.5],
                                        ["expedite_purchase_order", "PO-1:1", 1, 7, 3.75],
                                        ["expedite_transfer", "SH-1", 1, 7, 4.5]]
    # run on Sunday 11-22, nothing lands in week 0 any more: its Sunday is today
    assert expedites_offered(date(2026, 11, 22)) == [["expedite_purchase_order", "PO-1:1", 1, 7, 3.75],
                                                      ["expedite_transfer", "SH-1", 1, 7, 4.5]]


def two_expedites_for_two_worst_weeks():
    """A is 20 short in weeks 1 and 3 (10 in week 2); PO-1 (20 units, due in week 2) and PO-2 (20, due in week 4)
    can be brought forward. The problem and the model's chosen actions with their re-projection."""
    pos = positions({("X", "A"): ([5, -20, -10, -20, 10, 10], 0)})
    supply = pd.DataFrame([
        {"supply_kind": "purchase_order", "reference_id": reference, "sku_id": "X", "location_id": "A",
         "resource_id": None, "due_date": WEEK0 + timedelta(weeks=week, days=2), "week_index": week, "qty": 20.0,
         "ship_date": None} for reference, week in [("PO-1:1", 2), ("PO-2:1", 4)]])
    prob = problem(pos, lanes(), supply)
    return (prob, *chosen(prob))


def test_an_expedite_lifts_the_balance_only_until_the_week_its_supply_was_due():
    """From the week its supply was due the receipt is in the projection already: PO-1 (due in week 2) brought into
    week 1 lifts week 1 only (20 units); of PO-2 (due in week 4), 10 units brought into week 2 lift weeks 2-3 and
    10 into week 3 lift week 3: A ends every fence week at 0, and from week 4 on it is as before."""
    _, acts, projected = two_expedites_for_two_worst_weeks()
    assert sorted(acts[["reference_id", "arrive_week", "qty"]].values.tolist()) == [
        ["PO-1:1", 1, 20.0], ["PO-2:1", 2, 10.0], ["PO-2:1", 3, 10.0]]
    assert projected.loc[projected["location_id"] == "A", "proj_new"].tolist() == [5, 0, 0, 0, 10, 10]


def test_actions_that_each_lower_a_different_worst_week_share_the_revenue_protected():
    """A is 20 short in weeks 1 and 3 (10 in week 2). PO-1 (20 units, due in week 2) brought into week 1
    covers week 1 only; PO-2 (20 units, due in week 4), 10 brought into week 2 and 10 into week 3, covers weeks 2-3.
    Either alone leaves the worst shortfall at 20; both bring it to 0: $1,000, half each. Shared by the first worst week
    (week 1), PO-1 showed all of it and PO-2 '$0 ... without lowering its worst shortfall'."""
    prob, acts, projected = two_expedites_for_two_worst_weeks()
    assert projected.loc[projected["location_id"] == "A", "proj_new"].min() >= 0
    into, short = attribute(prob, acts, projected)
    rows = action_rows(prob, into, projected)
    value = rows.groupby("reference_id")["impact_resolved_value"].sum()
    assert short["protected_value"].sum() == pytest.approx(20 * 50)
    assert value.to_dict() == pytest.approx({"PO-1:1": 500.0, "PO-2:1": 500.0})
    assert not rows["explanation"].str.contains("without lowering").any()


def test_transfers_that_are_each_partly_spare_share_the_cover_by_their_shapley_values():
    """A is 11 short in week 0, which no lane reaches (6 days), and 30 from week 2. D2, D3 and D4 spare 5, 14 and
    11, all landing in week 1: the worst shortfall falls from 30 to 11 (19 units, $950), and the model moves all
    30 (the backorders wait less). No transfer is needed alone (without any one the others still cover 16 to 25
    of the 19): shared by their Shapley values, v(S) = min(19, units of S): 5 -> 3 1/3, 14 -> 9 1/3, 11 -> 6 1/3
    units. Taking each away in turn credited the 14 units with all 19 and the others with '$0 ... without
    lowering its worst shortfall'."""
    pos = positions({("X", "A"): ([-11, -11, -30, -30, -30, -30], 0), ("X", "D2"): ([105] * 6, 100),
                     ("X", "D3"): ([114] * 6, 100), ("X", "D4"): ([111] * 6, 100)})
    prob = problem(pos, lanes(("D2", "A", 6, 0.1), ("D3", "A", 6, 0.1), ("D4", "A", 6, 0.1)))
    acts, projected = chosen(prob)
    assert moved(acts) == {("D2", "A"): 5, ("D3", "A"): 14, ("D4", "A"): 11}
    into, short = attribute(prob, acts, projected)
    rows = action_rows(prob, into, projected).set_index("from_location_id")
    assert short["protected_value"].sum() == pytest.approx(19 * 50)
    assert rows["impact_resolved_value"].to_dict() == pytest.approx(
        {"D2": 50 * 10 / 3, "D3": 50 * 28 / 3, "D4": 50 * 19 / 3}, abs=0.01)  # in cents that add up to $950
    assert rows["impact_resolved_value"].sum() == pytest.approx(950, abs=1e-9)
    assert "covers 9.33 of the shortfall at A" in rows.loc["D3", "explanation"]
    assert not rows["explanation"].str.contains("without lowering").any()



def test_more_actions_into_one_place_than_exact_shares_allow_share_by_quantity():
    """Eleven donors (1-day lanes) spare 2 units each for A, 22 short from week 0: eleven transfers, one more
    than the exact Shapley split takes (2^n re-projections), shared by quantity: $100 each. Beside it, a place
    with two actions keeps its exact shares (one busy place changes no other's)."""
    donors = {("X", f"D{i}"): ([102] * 6, 100) for i in range(11)}
    # Y at A as in the three-transfers test, two 6-day transfers of 14 and 16 for 19 units: 8.5 and 10.5 each
    # (v = min(19, units)), where shares by quantity would give 8.87 and 10.13
    pos = positions({("X", "A"): ([-22] * 6, 0), **donors, ("Y", "A"): ([-11, -11, -30, -30, -30, -30], 0),
                     ("Y", "E1"): ([114] * 6, 100), ("Y", "E2"): ([116] * 6, 100)})
    prob = problem(pos, lanes(*[(f"D{i}", "A", 1, 0.1) for i in range(11)], ("E1", "A", 6, 0.1), ("E2", "A", 6, 0.1)))
    acts, projected = chosen(prob)
    into, _ = attribute(prob, acts, projected)
    busy = into[into["sku_id"] == "X"]
    assert len(busy) == 11 > EXACT_SHARE_MAX_ACTIONS
    assert busy["impact_resolved_value"].tolist() == pytest.approx([2 * 50] * 11)
    exact = into[into["sku_id"] == "Y"].set_index("from_location_id")["impact_resolved_value"]
    assert exact.to_dict() == pytest.approx({"E1": 8.5 * 50, "E2": 10.5 * 50})


def test_a_places_shares_in_cents_add_up_to_its_value():
    """$950 in thirds (316.666...) read 316.67 three times, $950.01 for the place: the running total is rounded
    instead, so the rows add up to the place's value and each is within a cent of its share."""
    values = pd.Series([950 / 3, 950 / 3, 0.0, 950 / 3, 12.346, 0.0])
    sku = pd.Series(["X", "X", "X", "X", "Y", "Y"])
    place = pd.Series(["A", "A", "A", "A", None, None])  # a row without a place is a group of its own
    cents = cents_summing_to_their_total(values, [sku, place])
    assert cents.groupby(sku).sum().round(2).to_dict() == {"X": 950.0, "Y": 12.35}
    assert (abs(cents - values) <= 0.01).all() and cents[2] == 0 and cents[5] == 0



def test_a_small_real_share_of_the_cover_does_not_read_as_covering_nothing():
    """A share of 0.004 units ($0.20) printed as 'covers 0 ... ($0 ...)', which says the action covers nothing:
    it reads 'under 0.01' and 'under $1'; a share of 0 still says the action only serves waiting backorders."""
    prob, acts, projected = two_expedites_for_two_worst_weeks()
    into, _ = attribute(prob, acts, projected)
    small = into.index[into["reference_id"] == "PO-2:1"][0]
    into.loc[small, ["covered_share_qty", "impact_resolved_value"]] = [0.004, 0.2]
    text = action_rows(prob, into, projected)["explanation"]
    assert "covers under 0.01 of the shortfall at A" in text[small] and "(under $1 of revenue" in text[small]
    assert "covers under" not in text.drop(index=small).str.cat()


def test_a_rows_explanation_quotes_the_money_its_listing_shows():
    """Three identical transfers share $2,881.4775: $960.4925 each, in cents 960.50, 960.49, 960.49. The
    explanation quoted the value before the cents ($960) while the listing showed the mart's 960.50 ($961)."""
    donors = {("X", f"D{i}"): ([180] * 6, 100) for i in range(3)}
    pos = positions({("X", "A"): ([-240] * 6, 0), **donors}, price=12.00615625)
    prob = problem(pos, lanes(*[(f"D{i}", "A", 1, 0.1) for i in range(3)]))
    acts, projected = chosen(prob)
    into, _ = attribute(prob, acts, projected)
    rows = action_rows(prob, into, projected)
    assert sorted(rows["impact_resolved_value"].round(2)) == [960.49, 960.49, 960.50]
    quoted = rows["explanation"].str.extract(r"\(\$([\d,]+) of revenue protected\)")[0]
    listed = pd.Series(whole_money(rows["impact_resolved_value"]), index=rows.index).map("{:,.0f}".format)
    assert quoted.tolist() == listed.tolist() and "961" in quoted.tolist()
