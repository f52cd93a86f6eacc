"""Recommendations through the real pipeline: one landing zone, one case per SKU (one run, ~20 s)."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from support import AS_OF, minimal_network, monday, run_soe, write_landing_zone


def _add_sku(net: dict, sku: str, stock: dict[str, float], *, demand: float = 70.0, safety: dict[str, float] | None = None,
             extra_orders: list[tuple[str, int, float]] = ()) -> None:
    """A SKU with plan, orders and weekly POs matching demand at the given DCs: level from week 1 at stock - demand."""
    net["skus"].append({"sku_id": sku, "product_family": "test", "unit_cost": 20.0, "unit_price": 50.0})
    for loc, qty in stock.items():
        ss = (safety or {}).get(loc, 30.0)
        net["sop_plan"] += [{"plan_version": "2026-11", "committed_at": "2026-11-02T09:00:00", "sku_id": sku,
                             "location_id": loc, "week_start": monday(w).isoformat(), "demand_qty": demand,
                             "supply_qty": demand, "safety_stock_qty": ss} for w in range(-2, 13)]
        net["inventory_snapshots"].append({"snapshot_date": AS_OF.isoformat(), "sku_id": sku, "location_id": loc,
                                           "on_hand_qty": qty, "quality_hold_qty": 0.0})
        net["purchase_orders"] += [{"po_id": f"PO-{sku}-{loc}-{w}", "line_no": 1, "supplier_id": "SUP-1", "sku_id": sku,
                                    "location_id": loc, "order_date": (AS_OF - timedelta(days=20)).isoformat(),
                                    "promised_date": monday(w).isoformat(), "confirmed_date": monday(w).isoformat(),
                                    "ordered_qty": demand, "received_qty": 0.0, "received_date": "", "status": "open"}
                                   for w in range(1, 13)]
        orders = [(loc, 0, demand), (loc, 1, demand)] + [o for o in extra_orders if o[0] == loc]
        net["sales_orders"] += [{"order_id": f"SO-{sku}-{loc}-{w}-{i}", "line_no": 1, "customer_id": f"CUST-{i % 2 + 1}",
                                 "sku_id": sku, "location_id": loc, "order_date": (AS_OF - timedelta(days=3)).isoformat(),
                                 "requested_date": (monday(w) + timedelta(days=4)).isoformat(),
                                 "promised_date": (monday(w) + timedelta(days=4)).isoformat(), "ordered_qty": qty,
                                 "shipped_qty": 0.0, "ship_date": "", "status": "open"}
                                for i, (_, w, qty) in enumerate(orders)]


def _add_full_line(net: dict, resource: str, short: tuple[str, float, float], other: tuple[str, float, float],
                   orders: list[tuple[str, int, float]]) -> None:
    """Two SKUs made on ``resource`` at PLANT-1, which is full every week (capacity = load): ``short`` (sku,
    weekly demand, stock; no safety stock) and ``other`` (the same, safety stock 100), with their released
    production orders (sku, week, qty), each finishing on the Friday of its week."""
    net["skus"] += [{"sku_id": sku, "product_family": "test", "unit_cost": 20.0, "unit_price": 50.0}
                    for sku, _, _ in (short, other)]
    net["sop_plan"] += [{"plan_version": "2026-11", "committed_at": "2026-11-02T09:00:00", "sku_id": sku,
                         "location_id": "PLANT-1", "week_start": monday(w).isoformat(), "demand_qty": demand,
                         "supply_qty": demand, "safety_stock_qty": ss}
                        for (sku, demand, _), ss in ((short, 0.0), (other, 100.0)) for w in range(-2, 13)]
    net["inventory_snapshots"] += [{"snapshot_date": AS_OF.isoformat(), "sku_id": sku, "location_id": "PLANT-1",
                                    "on_hand_qty": stock, "quality_hold_qty": 0.0} for sku, _, stock in (short, other)]
    net["production_orders"] += [
        {"production_order_id": f"MO-{sku[-1]}-{w}", "sku_id": sku, "location_id": "PLANT-1", "resource_id": resource,
         "planned_start_date": monday(w).isoformat(), "planned_finish_date": (monday(w) + timedelta(days=4)).isoformat(),
         "planned_qty": qty, "completed_qty": 0.0, "actual_finish_date": "", "status": "released"}
        for sku, w, qty in orders]
    load = pd.DataFrame(orders, columns=["sku", "week", "qty"]).groupby("week")["qty"].sum()
    net["resource_capacity"] += [{"location_id": "PLANT-1", "resource_id": resource, "week_start": monday(w).isoformat(),
                                  "capacity_qty": float(load.get(w, 100.0))} for w in range(-8, 13)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    net = minimal_network()
    # SKU-R: DC-1 has nothing (70 short from week 0); DC-2 holds 400 against a safety stock of 30.
    _add_sku(net, "SKU-R", {"DC-1": 0.0, "DC-2": 400.0})
    # SKU-D: DC-1 short; the only neighbour holding it sits below its own safety stock: a decoy.
    _add_sku(net, "SKU-D", {"DC-1": 0.0, "DC-2": 120.0}, safety={"DC-2": 60.0})
    # SKU-F: fine inside the fence, a 600-unit order in week 6 makes DC-1 short beyond it.
    _add_sku(net, "SKU-F", {"DC-1": 150.0}, extra_orders=[("DC-1", 6, 600.0)])
    # SKU-P: the plant runs short until MO-P-3 (400) finishes in week 3; LINE-2 is idle until then, and that
    # week it has capacity for 250 only: an overload of 150 the pull-ins clear.
    net["skus"].append({"sku_id": "SKU-P", "product_family": "test", "unit_cost": 20.0, "unit_price": 50.0})
    net["sop_plan"] += [{"plan_version": "2026-11", "committed_at": "2026-11-02T09:00:00", "sku_id": "SKU-P",
                         "location_id": "PLANT-1", "week_start": monday(w).isoformat(), "demand_qty": 100.0,
                         "supply_qty": 100.0, "safety_stock_qty": 0.0} for w in range(-2, 13)]
    net["inventory_snapshots"].append({"snapshot_date": AS_OF.isoformat(), "sku_id": "SKU-P", "location_id": "PLANT-1",
                                       "on_hand_qty": 50.0, "quality_hold_qty": 0.0})
    net["production_orders"] += [
        {"production_order_id": f"MO-P-{w}", "sku_id": "SKU-P", "location_id": "PLANT-1", "resource_id": "LINE-2",
         "planned_start_date": monday(w).isoformat(), "planned_finish_date": (monday(w) + timedelta(days=4)).isoformat(),
         "planned_qty": 400.0 if w == 3 else 100.0, "completed_qty": 0.0, "actual_finish_date": "", "status": "released"}
        for w in range(3, 13)]
    net["resource_capacity"] += [{"location_id": "PLANT-1", "resource_id": "LINE-2", "week_start": monday(w).isoformat(),
                                  "capacity_qty": 250.0 if w == 3 else 500.0} for w in range(-8, 13)]
    # SKU-S: the plant is 57 short in week 3 until MO-S-4 (400) finishes on Fri 12-18 (week 4). LINE-3 is full
    # every week (capacity = load), so no pull-in fits; MO-T-3 (100 units of SKU-T, Fri 12-11) shares its slot and
    # SKU-T sits far above its safety stock (~320 against 100): run MO-S-4 first, MO-T-3's units move to 12-18.
    _add_full_line(net, "LINE-3", short=("SKU-S", 100.0, 300.0), other=("SKU-T", 50.0, 350.0),
                   orders=[("SKU-S", w, 400.0 if w == 4 else 100.0) for w in range(4, 13)]
                   + [("SKU-T", w, 100.0 if w == 3 else 50.0) for w in range(1, 13)])
    # SKU-U: the plant is 38 short in week 0 (20 - 100 x 4/7) until MO-U-1 (200) finishes on Fri 11-27 (week 1).
    # LINE-4 is full every week; this week's slot is MO-V-0's (100 units of SKU-V, Fri 11-20, after as_of), and
    # SKU-V sits far above its safety stock: run MO-U-1 first (finishing Sun 11-22), MO-V-0's units move to 11-27.
    _add_full_line(net, "LINE-4", short=("SKU-U", 100.0, 20.0), other=("SKU-V", 50.0, 500.0),
                   orders=[("SKU-U", w, 200.0 if w == 1 else 100.0) for w in range(1, 13)]
                   + [("SKU-V", w, 100.0 if w == 0 else 50.0) for w in range(0, 13)])
    root = tmp_path_factory.mktemp("respond")
    result = run_soe(root, write_landing_zone(root / "landing", net))
    assert result.ok
    return result


@pytest.fixture(scope="module")
def recs(run) -> pd.DataFrame:
    return run.query("select * from marts.recommendations")


def test_mart_has_the_contract_columns_and_nothing_creates_an_exception(recs):
    expected = ["recommendation_id", "exception_id", "resolves_exception_ids", "action_type", "sku_id",
                "from_location_id", "to_location_id", "reference_id", "qty", "cost", "impact_resolved_value",
                "creates_new_exception", "explanation", "as_of"]
    assert set(expected) <= set(recs.columns)
    assert not recs["creates_new_exception"].any()
    assert recs["recommendation_id"].is_unique
    assert recs["exception_id"].notna().all()


def test_stockout_next_to_a_donor_gets_a_reallocation_from_it(run, recs):
    r = recs[recs["sku_id"] == "SKU-R"]
    moves = r[r["action_type"] == "reallocate_stock"]
    assert moves[["from_location_id", "to_location_id"]].values.tolist() == [["DC-2", "DC-1"]]
    assert moves["qty"].iloc[0] == pytest.approx(70)
    assert moves["impact_resolved_value"].iloc[0] == pytest.approx(70 * 50)
    assert moves["cost"].iloc[0] == pytest.approx(70 * (0.5 + 0.5))
    assert "DC-2 stays at or above safety stock" in moves["explanation"].iloc[0]
    stockouts = run.query("select exception_id from marts.exceptions where exception_type = 'projected_stockout' "
                          "and sku_id = 'SKU-R' and location_id = 'DC-1'")
    if len(stockouts):
        assert moves["exception_id"].iloc[0] == stockouts["exception_id"].iloc[0]
    # DC-1 ends at about zero against a safety stock of 30: its below-safety-stock exception is not resolved
    below = run.query("select exception_id from marts.exceptions where exception_type = 'below_safety_stock' "
                      "and sku_id = 'SKU-R' and location_id = 'DC-1'")["exception_id"].tolist()
    assert below and below[0] not in moves["resolves_exception_ids"].iloc[0].split(",")


def test_donor_below_its_own_safety_stock_is_not_used_and_the_shortage_escalates(recs):
    d = recs[recs["sku_id"] == "SKU-D"]
    assert not d["action_type"].isin(["reallocate_stock", "alternate_source"]).any()
    assert (d["action_type"] == "escalate_to_sop").sum() == 1


def test_shortage_beyond_the_fence_is_escalated(recs):
    f = recs[recs["sku_id"] == "SKU-F"]
    assert f["action_type"].tolist() == ["escalate_to_sop"]
    assert "beyond the 4-week time fence" in f["explanation"].iloc[0]


def test_a_stockouts_escalation_is_the_one_the_recommendations_decide(run, recs):
    """The exceptions mart flags a stockout for S&OP exactly when the recommendations escalate it: the plant's
    SKU-P, SKU-S and SKU-U shortages have no donor along a lane but are covered by a pull-in or a swap (not
    escalated); SKU-D's only donor is below its own safety stock and SKU-F is short beyond the fence
    (escalated)."""
    stockouts = run.query("select exception_id, sku_id, location_id, escalate_to_sop from marts.exceptions "
                          "where exception_type = 'projected_stockout' and status = 'open'")
    escalated_ids = set(recs.loc[recs["action_type"].eq("escalate_to_sop"), "exception_id"])
    assert stockouts["escalate_to_sop"].tolist() == stockouts["exception_id"].isin(escalated_ids).tolist()
    flags = dict(zip(stockouts["sku_id"] + "@" + stockouts["location_id"], stockouts["escalate_to_sop"]))
    assert [flags[place] for place in ("SKU-P@PLANT-1", "SKU-S@PLANT-1", "SKU-U@PLANT-1")] == [False] * 3
    assert flags["SKU-D@DC-1"] and flags["SKU-F@DC-1"]


def test_idle_resource_gets_a_pull_in(recs):
    p = recs[(recs["sku_id"] == "SKU-P") & (recs["action_type"] == "pull_in_production")]
    assert set(p["reference_id"]) == {"MO-P-3"}
    # plant: 50 - 100 x 4/7 = -7.1 in week 0, -107.1, -207.1 in weeks 1-2: 208 whole units pulled in on idle
    # LINE-2, staged as late as each week needs (8 by week 0, 100 more by week 1, 100 more by week 2: fewer days
    # pulled)
    assert p["qty"].sum() == pytest.approx(208)
    assert sorted(p["qty"]) == pytest.approx([8, 100, 100])


def test_pull_ins_out_of_an_overloaded_week_resolve_the_overload(run, recs):
    """MO-P-3's week on LINE-2 is 150 over capacity (400 against 250); the pull-ins move 208 of it into weeks with
    spare capacity, so the overload goes with the shortage: every pull-in row lists it."""
    overload = run.query("select exception_id, week_start, shortfall_qty from marts.exception_history "
                         "where exception_type = 'capacity_overload' and reference_id = 'LINE-2' and status = 'open'")
    assert overload[["week_start", "shortfall_qty"]].values.tolist() == [[pd.Timestamp(monday(3)), 150.0]]
    pulls = recs[(recs["sku_id"] == "SKU-P") & (recs["action_type"] == "pull_in_production")]
    assert len(pulls) == 3
    assert all(overload["exception_id"].iloc[0] in ids.split(",") for ids in pulls["resolves_exception_ids"])
    # the stockout at the plant is still the exception each row serves
    assert pulls["exception_id"].nunique() == 1 and pulls["exception_id"].iloc[0] != overload["exception_id"].iloc[0]


def test_full_resource_gets_a_reprioritisation(recs):
    s = recs[recs["sku_id"] == "SKU-S"]
    assert s["action_type"].tolist() == ["reprioritise_production"]
    row = s.iloc[0]
    # plant: 300 - 100 x 4/7 = 242.9 in week 0, 142.9, 42.9, -57.1 in week 3: 58 whole units (rounded up: SKU-T
    # keeps its safety stock) in MO-T-3's slot; the value protected is the shortage's, 57.1 units
    assert row["reference_id"] == "MO-S-4" and row["qty"] == pytest.approx(58)
    assert row["impact_resolved_value"] == pytest.approx(round(400 / 7 * 50, 2))
    assert row["cost"] == pytest.approx(58 * (1.50 + 0.10 * 5))  # finishing Sun 12-13 instead of Fri 12-18
    assert row["explanation"].startswith(
        "Run MO-S-4 (58 units of SKU-S) before MO-T-3 on LINE-3 at PLANT-1 in week 2026-12-07 (finishing 2026-12-13 "
        "instead of 2026-12-18, $116): 58 units of MO-T-3 (SKU-T) move from 2026-12-11 to 2026-12-18, SKU-T stays at "
        "or above safety stock at PLANT-1")
    assert not (recs["sku_id"] == "SKU-T").any()


def test_a_full_resource_this_week_gets_a_reprioritisation_with_an_order_still_to_finish(recs):
    u = recs[recs["sku_id"] == "SKU-U"]
    assert u[["action_type", "reference_id", "qty"]].values.tolist() == [["reprioritise_production", "MO-U-1", 38.0]]
    assert u["explanation"].iloc[0].startswith(
        "Run MO-U-1 (38 units of SKU-U) before MO-V-0 on LINE-4 at PLANT-1 in week 2026-11-16 (finishing 2026-11-22 "
        "instead of 2026-11-27")


def test_every_recommended_action_applied_leaves_no_new_shortfall(run, recs):
    slw = run.query("select sku_id, location_id, week_index, projected_available_qty as proj, safety_stock_qty as ss "
                    "from marts.sku_location_week")
    moves = recs[recs["action_type"].isin(["reallocate_stock", "alternate_source"])]
    out = moves.groupby(["sku_id", "from_location_id"])["qty"].sum().rename("out").reset_index()
    donors = slw.merge(out.rename(columns={"from_location_id": "location_id"}), on=["sku_id", "location_id"])
    assert (donors["proj"] - donors["out"] >= donors[["ss", "proj"]].min(axis=1) - 1e-6).all()


def test_rows_rank_by_money_at_stake_escalations_included(recs):
    """An action ranks by the revenue it protects, an escalation by the revenue still at risk and a re-promise by
    its line's value (units x price; every SKU here sells at 50): a large escalation is not hidden below small
    actions."""
    ranked = recs.sort_values("rank")
    informational = ranked["action_type"].isin(["escalate_to_sop", "adjust_order_promise"])
    stake = ranked["impact_resolved_value"].where(~informational, ranked["qty"] * 50.0)
    assert stake.is_monotonic_decreasing
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert informational.iloc[0] and not informational.all()


def test_the_respond_stress_benchmark_runs_on_a_warehouse_soe_wrote(run):
    """benchmarks/respond_stress.py copies the respond stage's inputs out of a warehouse: every table the stage
    reads must be among them, or the script fails on the first it lacks."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "respond_stress.py"
    done = subprocess.run([sys.executable, str(script), str(run.workspace.warehouse)], capture_output=True,
                          text=True, timeout=300, cwd=script.parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("respond: ") and "'recommended_actions'" in done.stdout


def test_the_respond_stage_takes_over_the_plan_detection_made_and_recommends_the_same(run, recs):
    """Detection solves the response model for its stockouts' escalation; the respond stage of the same run takes
    that plan over instead of solving again, and recommends exactly what it recommends when it solves itself."""
    import duckdb

    from soe_assets.respond import recommend
    from soe_assets.respond.config import RespondConfig
    from soe_assets.warehouse import read_run_context

    with duckdb.connect(str(run.workspace.warehouse), read_only=True) as conn:
        context = read_run_context(conn)
        solved, _ = recommend.build_recommendations(conn, context, RespondConfig())
        recommend.decided_escalations(conn, context, RespondConfig())
        assert len(recommend._PLAN_FOR_RESPOND) == 1
        taken_over, _ = recommend.build_recommendations(conn, context, RespondConfig())
        assert not recommend._PLAN_FOR_RESPOND  # taken, not kept for another stage
    pd.testing.assert_frame_equal(solved, taken_over)
    assert sorted(solved["recommendation_id"]) == sorted(recs["recommendation_id"])
