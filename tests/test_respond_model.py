"""The respond optimiser on hand-made frames (values worked out by hand in the comments)."""

from datetime import date, timedelta

import pandas as pd
import pytest

from soe_assets.respond.candidates import build_problem
from soe_assets.respond.config import RespondConfig
from soe_assets.respond.greedy import greedy_value
from soe_assets.respond.recommend import attribute, choose_actions

AS_OF = date(2026, 11, 18)  # Wednesday; week 0 starts Monday 2026-11-16
WEEK0 = date(2026, 11, 16)
H, F = 6, 4
CONFIG = RespondConfig(transfer_handling_cost_per_unit=0.0, epsilon_cost_per_unit=0.01)


def positions(series: dict[tuple[str, str], tuple[list[float], float]], price: float = 50.0,
              types: dict[str, str] | None = None) -> pd.DataFrame:
    rows = []
    for (sku, loc), (proj, ss) in series.items():
        for k, p in enumerate(proj):
            rows.append({"sku_id": sku, "location_id": loc, "location_type": (types or {}).get(loc, "dc"),
                         "week_index": k, "week_start": WEEK0 + timedelta(weeks=k), "inside_time_fence": k < F,
                         "proj": p, "ss": ss, "price": price, "sensed_demand": 10.0, "atp": 0.0})
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
    acts, withdrawn, projected = choose_actions(prob, CONFIG)
    assert withdrawn.empty
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


def test_donor_that_would_fall_below_safety_stock_is_not_used():
    # D2 is at 150 now but drops to 90 (< ss 100) in week 2: anything it sends now would deepen that.
    # D1 can spare only 25 (125 - 100): A gets 25, the remaining 35 stay uncovered.
    pos = positions({("X", "A"): ([50, -30, -60, -60, -60, -60], 20), ("X", "D1"): ([125] * 6, 100),
                     ("X", "D2"): ([150, 150, 90, 90, 150, 150], 100)})
    acts, projected = chosen(problem(pos, lanes(("D1", "A", 2, 1.0), ("D2", "A", 1, 0.1))))
    assert moved(acts) == {("D1", "A"): 25}
    d2 = projected[projected["location_id"] == "D2"]
    assert (d2["proj_new"] == d2["proj"]).all()


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


def test_pull_in_is_capped_by_spare_capacity():
    pos = positions({("X", "P"): ([10, -50, -50, -50, 150, 150], 0)}, types={"P": "plant"})
    supply = pd.DataFrame([{"supply_kind": "production", "reference_id": "MO-1", "sku_id": "X", "location_id": "P",
                            "resource_id": "R", "due_date": date(2026, 12, 18), "week_index": 4, "qty": 200.0,
                            "ship_date": None}])
    capacity = pd.DataFrame([{"resource_key": "P/R", "week_index": 1, "spare_qty": 30.0}])
    acts, _ = chosen(problem(pos, lanes(), supply, capacity))
    assert acts["qty"].sum() == 30


def test_explanation_states_the_numbers():
    from soe_assets.respond.recommend import _action_rows

    pos = positions({("X", "A"): ([50, -30, -60, -60, -60, -60], 20), ("X", "D"): ([300] * 6, 100)})
    prob = problem(pos, lanes(("D", "A", 2, 1.0)))
    acts, projected = chosen(prob)
    into, _ = attribute(prob, acts, projected)
    row = _action_rows(prob, into, projected).iloc[0]
    assert row["explanation"] == (
        "Move 60 units of X from D to A (2 days, $60, arriving 2026-11-21): covers 60 of the week-48 (2026-11-23) "
        "shortfall of 60 units at A ($3,000 of revenue protected); D stays at or above safety stock "
        "(lowest margin 140 units).")
