"""End-to-end tests of the exception engine: real pipeline runs on hand-made landing zones.

One landing zone per module: the clean ``minimal_network()`` plus, on SKUs of their
own, a planted problem of every type next to a near-miss that must stay quiet.
"""

from __future__ import annotations

from datetime import timedelta
import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from support import AS_OF, minimal_network, monday, run_soe, write_landing_zone, write_source

from soe_assets.detect.config import DEFAULT_CONFIG
from soe_assets.detect.impact import escalate_to_sop
from soe_assets.detect.rules import (
    DEMAND_WINDOWS, below_safety_stock, capacity_overload, demand_below_plan, excess_inventory, late_purchase_order,
)


def add_clean_sku(network: dict, sku: str, location: str, *, weekly: float = 100.0, safety: float = 40.0,
                  stock: float = 200.0, price: float = 20.0, po_weeks: range = range(1, 13)) -> None:
    """A SKU-location that runs level: plan = orders = weekly PO receipts, stock covering safety stock."""
    network["skus"].append({"sku_id": sku, "product_family": "test", "unit_cost": price / 2, "unit_price": price})
    network["sop_plan"] += [
        {"plan_version": "2026-11", "committed_at": "2026-11-02T09:00:00", "sku_id": sku, "location_id": location,
         "week_start": monday(w).isoformat(), "demand_qty": weekly, "supply_qty": weekly, "safety_stock_qty": safety}
        for w in range(-8, 13)
    ]
    network["inventory_snapshots"].append({"snapshot_date": AS_OF.isoformat(), "sku_id": sku, "location_id": location,
                                           "on_hand_qty": stock, "quality_hold_qty": 0.0})
    set_orders(network, sku, location, {w: weekly for w in range(-8, 2)})
    network["purchase_orders"] += [
        {"po_id": f"PO-{sku}-{location}-{w}", "line_no": 1, "supplier_id": "SUP-1", "sku_id": sku, "location_id": location,
         "order_date": (AS_OF - timedelta(days=20)).isoformat(), "promised_date": monday(w).isoformat(),
         "confirmed_date": monday(w).isoformat(), "ordered_qty": weekly, "received_qty": 0.0, "received_date": "",
         "status": "open"}
        for w in po_weeks
    ]


def set_orders(network: dict, sku: str, location: str, qty_by_week: dict[int, float]) -> None:
    """Replace the sales orders of a SKU-location: one line per week, requested on the Wednesday."""
    network["sales_orders"] = [o for o in network["sales_orders"]
                               if not (o["sku_id"] == sku and o["location_id"] == location)]
    for w, qty in qty_by_week.items():
        day = monday(w) + timedelta(days=2)
        past = day < AS_OF
        network["sales_orders"].append(
            {"order_id": f"SO-{sku}-{location}-{w}", "line_no": 1, "customer_id": "CUST-1", "sku_id": sku,
             "location_id": location, "order_date": (day - timedelta(days=10)).isoformat(),
             "requested_date": day.isoformat(), "promised_date": day.isoformat(), "ordered_qty": qty,
             "shipped_qty": qty if past else 0.0, "ship_date": day.isoformat() if past else "",
             "status": "shipped" if past else "open"})


def po(network: dict, sku: str, week: int) -> dict:
    return next(p for p in network["purchase_orders"] if p["sku_id"] == sku and p["promised_date"] == monday(week).isoformat())


def planted_network() -> dict:
    net = minimal_network()
    # demand above plan: orders 2x plan from week -1 (fires) / +12 % every week (near miss)
    add_clean_sku(net, "UP", "DC-1", stock=400)
    set_orders(net, "UP", "DC-1", {**{w: 100.0 for w in range(-8, -1)}, -1: 200.0, 0: 200.0, 1: 200.0})
    # 60 % above plan over weeks -2..0 but weeks 2 and 3 only partly booked yet: the most units short over
    # weeks -2..2 (+48 %), the steepest rise over -2..0, which S&OE cannot absorb (fires, escalates)
    add_clean_sku(net, "UP-STEEP", "DC-1", stock=400)
    set_orders(net, "UP-STEEP", "DC-1", {**{w: 100.0 for w in range(-8, -2)}, -2: 160.0, -1: 160.0, 0: 160.0,
                                         1: 160.0, 2: 100.0, 3: 50.0})
    for line in net["sales_orders"]:
        if line["order_id"] in ("SO-UP-STEEP-DC-1-2", "SO-UP-STEEP-DC-1-3"):
            line["order_date"] = AS_OF.isoformat()  # booked by as_of, for weeks 2 and 3
    add_clean_sku(net, "UP-NEAR", "DC-1", stock=400)
    set_orders(net, "UP-NEAR", "DC-1", {w: 112.0 for w in range(-8, 2)})
    # demand below plan: 40 % of plan since week -2 (fires) / week 1 only 30 % booked, the normal order book (near miss)
    add_clean_sku(net, "DOWN", "DC-1")
    set_orders(net, "DOWN", "DC-1", {**{w: 100.0 for w in range(-8, -2)}, -2: 40.0, -1: 40.0, 0: 40.0, 1: 40.0})
    # a DC whose only order line of the SKU was cancelled does not serve customers with it: no demand signal
    # to judge against its plan (near miss; it would read as 100 % below plan)
    add_clean_sku(net, "CANCELLED-ONLY", "DC-1")
    set_orders(net, "CANCELLED-ONLY", "DC-1", {-2: 50.0})
    net["sales_orders"][-1].update(status="cancelled", shipped_qty=0.0, ship_date="")
    add_clean_sku(net, "DOWN-NEAR", "DC-1")
    set_orders(net, "DOWN-NEAR", "DC-1", {**{w: 100.0 for w in range(-8, -2)}, -2: 88.0, -1: 90.0, 0: 95.0, 1: 30.0})
    # point-of-sale demand, daily up to as_of: 55 % of plan for three weeks (fires) / 15 % below plan, ordinary
    # noise, with week 0 sold only up to as_of while its plan covers the whole week (near miss)
    # ... and 35 % above plan (fires: week 0, sold Monday to as_of, counts at its daily rate) / 12 % above (near miss)
    for sku, share in (("POS-DOWN", 0.55), ("POS-NEAR", 0.85), ("POS-UP", 1.35), ("POS-UP-NEAR", 1.12)):
        add_clean_sku(net, sku, "DC-2")
        set_orders(net, sku, "DC-2", {})
        net.setdefault("pos_sales", []).extend(
            {"sale_date": (monday(-8) + timedelta(days=day)).isoformat(), "sku_id": sku, "location_id": "DC-2",
             "qty": 100.0 / 7 * (share if day >= 35 else 1.0)}
            for day in range((AS_OF - monday(-8)).days + 1))
    # projected stockout inside the fence, nothing spare anywhere: no receipts in weeks 1..4 (fires, escalates)
    add_clean_sku(net, "OUT", "DC-2", po_weeks=range(5, 13))
    # stockout beyond the fence: receipts stop after week 6 (fires, escalates as beyond the fence)
    add_clean_sku(net, "FAR", "DC-2", po_weeks=range(1, 7))
    # near miss: no orders ahead; week 0 draws only the 4 days after as_of of its plan (57.14), every later week
    # 100 against a receipt of 100: the balance stays 4.90 below zero, under the tolerance of 5 % of an average
    # (whole) week of 100 (the partial week 0 averaged in would make the week 96.70 and the tolerance 4.84)
    add_clean_sku(net, "OUT-WEEK0-NEAR", "DC-2", stock=52.24)
    set_orders(net, "OUT-WEEK0-NEAR", "DC-2", {w: 100.0 for w in range(-8, 0)})
    # stockout at DC-1 that DC-2's spare stock of the same SKU can absorb (fires, no escalation)
    add_clean_sku(net, "SPARE", "DC-1", po_weeks=range(3, 13))
    add_clean_sku(net, "SPARE", "DC-2", stock=600)
    net["skus"].pop()  # the SKU is already in master data
    # the same, but DC-2's receipts stop after week 7: it falls below safety stock in week 12, so sending
    # any stock would take it further below (the respond stage's donor rule): nothing is spare (escalates)
    add_clean_sku(net, "SPARE-DIP", "DC-1", po_weeks=range(3, 13))
    add_clean_sku(net, "SPARE-DIP", "DC-2", stock=600, po_weeks=range(1, 8))
    net["skus"].pop()
    # the same, with the spare stock at a DC whose only lane to DC-1 takes 40 days: it would arrive after
    # the fence, so nothing is spare (escalates) and no transfer is recommended
    net["locations"].append({"location_id": "DC-FAR", "location_type": "dc", "region": "west"})
    net["lanes"].append({"from_location_id": "DC-FAR", "to_location_id": "DC-1", "transit_days": 40,
                         "cost_per_unit": 0.1})
    add_clean_sku(net, "SPARE-SLOW", "DC-1", po_weeks=range(3, 13))
    add_clean_sku(net, "SPARE-SLOW", "DC-FAR", stock=600)
    net["skus"].pop()
    # the same, with DC-2 itself short in week 0 (no stock, a week's orders) until an extra 600 land in week 1: from
    # week 2 on it opens with 500 and can send DC-1 what it needs (absorbable; a transfer leaving in week 2 or 3)
    add_clean_sku(net, "SPARE-AFTER", "DC-1", po_weeks=range(3, 13))
    add_clean_sku(net, "SPARE-AFTER", "DC-2", stock=0)
    net["skus"].pop()
    po(net, "SPARE-AFTER", 1)["ordered_qty"] = 700.0
    # the projection runs level at stock - 100 (week 0's booked orders): below safety stock 40 by 30 without a
    # stockout (fires) / by 5, less than the 20 % tolerance (near miss)
    add_clean_sku(net, "LOW", "DC-2", stock=110)
    add_clean_sku(net, "LOW-NEAR", "DC-2", stock=135)
    # excess: 15 weeks of cover (fires) / 5 weeks (near miss)
    add_clean_sku(net, "EXCESS", "DC-2", stock=1500)
    add_clean_sku(net, "EXCESS-NEAR", "DC-2", stock=500)
    # near miss: plan and orders ending in week 0 (100 a week, safety stock 40), no receipts: 730 now, 630 at the
    # fence's end, against 40 + 6 x 100 + 10 = 650 there; the plan sets no safety stock after week 0, which must
    # not read as 0 at the fence's end (630 - 0 - 600 would pass)
    add_clean_sku(net, "EXCESS-PLAN-END", "DC-2", stock=730, po_weeks=range(0))
    set_orders(net, "EXCESS-PLAN-END", "DC-2", {w: 100.0 for w in range(-8, 1)})
    net["sop_plan"] = [p for p in net["sop_plan"]
                       if not (p["sku_id"] == "EXCESS-PLAN-END" and p["week_start"] > monday(0).isoformat())]
    # near miss: 5.5 weeks of cover under a plan that ends in week 7; the weeks after it forecast nothing, and
    # averaging them in as zero demand would read the same stock as 9 weeks of cover (excess)
    add_clean_sku(net, "EXCESS-PLAN-ENDS", "DC-2", stock=550)
    net["sop_plan"] = [row for row in net["sop_plan"]
                       if row["sku_id"] != "EXCESS-PLAN-ENDS" or row["week_start"] <= monday(7).isoformat()]
    # late PO: week-1 line confirmed 14 days after promise (fires) / 1 day (near miss)
    add_clean_sku(net, "LATEPO", "DC-2", stock=300)
    po(net, "LATEPO", 1)["confirmed_date"] = (monday(1) + timedelta(days=14)).isoformat()
    add_clean_sku(net, "LATEPO-NEAR", "DC-2", stock=300)
    po(net, "LATEPO-NEAR", 1)["confirmed_date"] = (monday(1) + timedelta(days=1)).isoformat()
    # late transfers of SKU-B into DC-2, already departed: ETA 10 days late (fires) / 1 day late (near miss)
    for shipment_id, slip in (("SH-LATE", 10), ("SH-NEAR", 1)):
        net["shipments"].append({
            "shipment_id": shipment_id, "sku_id": "SKU-B", "from_location_id": "DC-1", "to_location_id": "DC-2",
            "ship_date": (AS_OF - timedelta(days=2)).isoformat(), "planned_arrival_date": (AS_OF + timedelta(days=1)).isoformat(),
            "eta_date": (AS_OF + timedelta(days=1 + slip)).isoformat(), "actual_arrival_date": "", "qty": 5.0})
    # production: due 5 days ago and 40 % done (fires) / 1 day late (near miss) / finished 96 % (near miss)
    mo = {"sku_id": "SKU-A", "location_id": "PLANT-1", "resource_id": "LINE-9", "planned_qty": 50.0}
    net["production_orders"] += [
        mo | {"production_order_id": "MO-LATE", "planned_start_date": (AS_OF - timedelta(days=9)).isoformat(),
              "planned_finish_date": (AS_OF - timedelta(days=5)).isoformat(), "completed_qty": 20.0,
              "actual_finish_date": "", "status": "in_progress"},
        mo | {"production_order_id": "MO-NEAR", "planned_start_date": (AS_OF - timedelta(days=5)).isoformat(),
              "planned_finish_date": (AS_OF - timedelta(days=1)).isoformat(), "completed_qty": 45.0,
              "actual_finish_date": "", "status": "in_progress"},
        mo | {"production_order_id": "MO-DONE", "planned_start_date": (AS_OF - timedelta(days=8)).isoformat(),
              "planned_finish_date": (AS_OF - timedelta(days=4)).isoformat(), "completed_qty": 48.0,
              "actual_finish_date": (AS_OF - timedelta(days=4)).isoformat(), "status": "completed"},
    ]
    # finished short: judged by the day it actually finished, within the last 14 days (fire: early, long after
    # its plan) / 20 days ago (near miss)
    for order, planned_finish, finished in (("MO-SHORT-EARLY", 7, -2), ("MO-SHORT-LATE", -30, -3),
                                            ("MO-SHORT-OLD", -30, -20)):
        net["production_orders"].append(mo | {
            "production_order_id": order, "planned_start_date": (AS_OF + timedelta(days=planned_finish - 4)).isoformat(),
            "planned_finish_date": (AS_OF + timedelta(days=planned_finish)).isoformat(), "completed_qty": 25.0,
            "actual_finish_date": (AS_OF + timedelta(days=finished)).isoformat(), "status": "completed"})
    # capacity: LINE-2 loaded 150 against 100 in week 2 (fires) / LINE-3 103 against 100 (near miss) /
    # LINE-4 11 against 10 (fires: above 105 % and by one unit)
    for line, qty, capacity in (("LINE-2", 150.0, 100.0), ("LINE-3", 103.0, 100.0), ("LINE-4", 11.0, 10.0)):
        net["resource_capacity"] += [{"location_id": "PLANT-1", "resource_id": line, "week_start": monday(w).isoformat(),
                                      "capacity_qty": capacity} for w in range(0, 13)]
        net["production_orders"].append({
            "production_order_id": f"MO-{line}", "sku_id": "SKU-A", "location_id": "PLANT-1", "resource_id": line,
            "planned_start_date": monday(2).isoformat(), "planned_finish_date": (monday(2) + timedelta(days=3)).isoformat(),
            "planned_qty": qty, "completed_qty": 0.0, "actual_finish_date": "", "status": "planned"})
    # capacity counts what is still to make, as the trusted view's production receipts do: LINE-5 has 40 a week
    # and in week 2 an order already made (50) beside an open one of 30 (near miss); LINE-6 has 10 and 5 left of
    # an order of 30 (near miss); LINE-7 has 20 and, in week 0, 15 left of an order due last week beside one of
    # 10 (fires: 25 to make); LINE-8 is shut (capacity 0) and has an order of 12 in week 3 (fires)
    capacity_cases = {
        "LINE-8": (0.0, [("MO-LINE-8", 3, 12.0, 0.0, "planned")]),
        "LINE-5": (40.0, [("MO-LINE-5-DONE", 2, 50.0, 50.0, "completed"), ("MO-LINE-5-OPEN", 2, 30.0, 0.0, "planned")]),
        "LINE-6": (10.0, [("MO-LINE-6-MOSTLY", 2, 30.0, 25.0, "in_progress")]),
        "LINE-7": (20.0, [("MO-LINE-7-LATE", -1, 20.0, 5.0, "in_progress"), ("MO-LINE-7-NOW", 0, 10.0, 0.0, "released")]),
    }
    for line, (capacity, orders) in capacity_cases.items():
        net["resource_capacity"] += [{"location_id": "PLANT-1", "resource_id": line, "week_start": monday(w).isoformat(),
                                      "capacity_qty": capacity} for w in range(0, 13)]
        for order, week, planned, completed, status in orders:
            finish = monday(week) + timedelta(days=4)
            net["production_orders"].append({
                "production_order_id": order, "sku_id": "SKU-A", "location_id": "PLANT-1", "resource_id": line,
                "planned_start_date": (finish - timedelta(days=3)).isoformat(), "planned_finish_date": finish.isoformat(),
                "planned_qty": planned, "completed_qty": completed,
                "actual_finish_date": (AS_OF - timedelta(days=9)).isoformat() if status == "completed" else "",
                "status": status})
    # quality hold: 170 of 200 held, below safety stock (fires) / 50 of 300 held, plenty left (near miss) /
    # 60 of 80 held, more of the buffer missing than is held (fires; releasing it covers only part)
    add_clean_sku(net, "HOLD", "DC-1")
    add_clean_sku(net, "HOLD-NEAR", "DC-1", stock=300)
    add_clean_sku(net, "HOLD-PART", "DC-1", stock=80)
    # counts holding more than they have on hand: 30 of 20 (fires, releasing at most the 20 there) / 5 of none
    # (nothing to release: quiet, the reconciliation finding says it)
    add_clean_sku(net, "HOLD-OVER", "DC-1", stock=20)
    add_clean_sku(net, "HOLD-GONE", "DC-1", stock=0)
    for snap in net["inventory_snapshots"]:
        if snap["sku_id"] == "HOLD":
            snap["quality_hold_qty"] = 170.0
        if snap["sku_id"] == "HOLD-OVER":
            snap["quality_hold_qty"] = 30.0
        if snap["sku_id"] == "HOLD-PART":
            snap["quality_hold_qty"] = 60.0
        if snap["sku_id"] == "HOLD-NEAR":
            snap["quality_hold_qty"] = 50.0
        if snap["sku_id"] == "HOLD-GONE":
            snap["quality_hold_qty"] = 5.0
    return net


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("planted")
    landing = write_landing_zone(root / "landing", planted_network())
    # data quality: a file with a negative quantity, and a row with that and an unknown SKU (two reasons)
    bad = dict(minimal_network()["sales_orders"][0], order_id="SO-BAD", ordered_qty=-5.0)
    write_source(landing, "sales_orders", [bad, dict(bad, order_id="SO-BAD2", sku_id="SKU-NOPE")], suffix="_bad")
    return run_soe(root, landing)


@pytest.fixture(scope="module")
def planted(planted_run) -> pd.DataFrame:
    return planted_run.query("SELECT * FROM marts.exceptions")


def fired(exceptions: pd.DataFrame, exception_type: str) -> set[str]:
    rows = exceptions[exceptions["exception_type"].eq(exception_type) & exceptions["status"].eq("open")]
    return set(rows["reference_id"].where(rows["reference_id"].notna(), rows["sku_id"] + "@" + rows["location_id"]))


def test_clean_minimal_network_raises_no_exception(tmp_path: Path) -> None:
    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    run = run_soe(tmp_path, landing)
    assert run.query("SELECT * FROM marts.exceptions").empty


def test_a_run_whose_exceptions_have_no_reference(tmp_path: Path) -> None:
    """Demand above plan at one SKU-location, a stockout at another, nothing late: no exception of the run
    names a PO line, shipment, order or resource, and none explains the other (this once failed the run)."""
    net = minimal_network()
    add_clean_sku(net, "UP", "DC-1", stock=400)
    set_orders(net, "UP", "DC-1", {**{w: 100.0 for w in range(-8, -1)}, -1: 200.0, 0: 200.0, 1: 200.0})
    add_clean_sku(net, "OUT", "DC-2", po_weeks=range(5, 13))
    run = run_soe(tmp_path, write_landing_zone(tmp_path / "landing", net))
    found = run.query("SELECT * FROM marts.exceptions")
    assert fired(found, "demand_above_plan") == {"UP@DC-1"}
    assert "OUT@DC-2" in fired(found, "projected_stockout")
    assert found["reference_id"].isna().all() and found["caused_by_exception_id"].isna().all()


@pytest.mark.parametrize(
    ("exception_type", "expected"),
    [
        ("demand_above_plan", {"UP@DC-1", "UP-STEEP@DC-1", "POS-UP@DC-2"}),
        ("demand_below_plan", {"DOWN@DC-1", "POS-DOWN@DC-2"}),
        ("excess_inventory", {"EXCESS@DC-2"}),
        ("late_purchase_order", {"PO-LATEPO-DC-2-1:1"}),
        ("late_transfer", {"SH-LATE"}),
        ("production_shortfall", {"MO-LATE", "MO-SHORT-EARLY", "MO-SHORT-LATE", "MO-LINE-7-LATE"}),
        ("capacity_overload", {"LINE-2", "LINE-4", "LINE-7", "LINE-8"}),
        ("quality_hold", {"HOLD@DC-1", "HOLD-PART@DC-1", "HOLD-OVER@DC-1"}),
    ],
)
def test_each_type_fires_on_its_plant_and_not_on_the_near_miss(planted: pd.DataFrame, exception_type: str,
                                                               expected: set[str]) -> None:
    assert fired(planted, exception_type) == expected


def test_a_capacity_overload_says_what_is_left_to_make(planted: pd.DataFrame) -> None:
    overloads = planted[planted["exception_type"].eq("capacity_overload")].set_index("reference_id")
    assert overloads.loc["LINE-7", "week_start"] == pd.Timestamp(monday(0))
    assert overloads.loc["LINE-7", "explanation"].startswith(
        f"Resource LINE-7 at PLANT-1 has 25 units to make in the week of {monday(0)} against a capacity of 20: "
        "5 units over (+25%)")
    assert (f"has 12 units to make in the week of {monday(3)} against a capacity of 0: 12 units over "
            "(no capacity that week)") in overloads.loc["LINE-8", "explanation"]


def test_shortages_fire_where_stock_runs_short_only(planted: pd.DataFrame) -> None:
    stockouts = fired(planted, "projected_stockout")
    assert {"OUT@DC-2", "FAR@DC-2", "SPARE@DC-1", "HOLD@DC-1"} <= stockouts
    assert not stockouts & {"LOW@DC-2", "LOW-NEAR@DC-2", "UP-NEAR@DC-1", "LATEPO-NEAR@DC-2", "EXCESS@DC-2",
                            "OUT-WEEK0-NEAR@DC-2"}
    below = fired(planted, "below_safety_stock")
    assert {"LOW@DC-2", "OUT@DC-2", "HOLD@DC-1"} <= below
    assert not below & {"LOW-NEAR@DC-2", "FAR@DC-2", "HOLD-NEAR@DC-1", "EXCESS-NEAR@DC-2"}


def rules_warehouse() -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse with what every detection rule reads besides its own inputs: the run's parameters
    (as_of, 13 weeks, a fence of 4) and SKU-A's prices."""
    conn = duckdb.connect()
    for schema in ("raw", "staging", "intermediate"):
        conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute("CREATE TABLE raw.run_context AS SELECT ?::DATE AS as_of, 13 AS horizon_weeks, 4 AS time_fence_weeks",
                 [AS_OF])
    conn.execute("CREATE TABLE staging.stg_skus AS SELECT 'SKU-A' AS sku_id, 20.0 AS unit_price, 10.0 AS unit_cost")
    return conn


@pytest.mark.parametrize(("load", "fires"), [(105.0, False), (106.0, True)])
def test_a_resource_week_is_overloaded_only_above_105_percent_of_capacity(load: float, fires: bool) -> None:
    """Exactly 5 % over capacity is within the tolerance: only a load above capacity x 1.05 is an overload."""
    conn = rules_warehouse()
    conn.execute("CREATE TABLE staging.stg_resource_capacity AS SELECT 'PLANT-1' AS location_id, "
                 "'LINE-1' AS resource_id, ?::DATE AS week_start, 100.0 AS capacity_qty", [monday(2)])
    conn.execute("CREATE TABLE intermediate.int_open_supply AS SELECT 'PLANT-1' AS location_id, "
                 "'LINE-1' AS resource_id, 2 AS week_index, ? AS qty, 'SKU-A' AS sku_id, "
                 "'production' AS supply_kind", [load])
    assert (len(capacity_overload(conn, DEFAULT_CONFIG)) == 1) == fires


def test_an_overload_that_earlier_fence_weeks_have_exactly_the_room_for_is_absorbable() -> None:
    """LINE-1 (capacity 100) has 90 to make in week 1 and 110 in week 2: the 10 over fit exactly in week 1's 10 free
    units, so the overload can be pulled in (absorbable, not escalated); 111 in week 2 cannot."""
    def overload(week_2_load: float) -> pd.Series:
        conn = rules_warehouse()
        conn.execute("CREATE TABLE staging.stg_resource_capacity AS SELECT 'PLANT-1' AS location_id, "
                     "'LINE-1' AS resource_id, unnest([?::DATE, ?::DATE]) AS week_start, 100.0 AS capacity_qty",
                     [monday(1), monday(2)])
        conn.execute("CREATE TABLE intermediate.int_open_supply AS SELECT 'PLANT-1' AS location_id, "
                     "'LINE-1' AS resource_id, unnest([1, 2]) AS week_index, unnest([90.0, ?]) AS qty, "
                     "'SKU-A' AS sku_id, 'production' AS supply_kind", [week_2_load])
        found = capacity_overload(conn, DEFAULT_CONFIG)
        assert len(found) == 1
        return found.iloc[0]

    assert bool(overload(110.0)["absorbable"]) is True
    assert bool(overload(111.0)["absorbable"]) is False


def test_a_late_po_line_is_judged_in_its_promised_week_not_the_week_it_now_arrives() -> None:
    """Promised in week 2 (inside the fence of 4), now confirmed for week 5: the supply bites from week 2 and its
    escalation is left to the shortage it causes; its arrival week only serves the root-cause link."""
    conn = rules_warehouse()
    conn.execute("CREATE TABLE intermediate.int_open_supply AS SELECT 'purchase_order' AS supply_kind, 'PO-1:1' AS "
                 "reference_id, 'SUP-1' AS supplier_id, 'SKU-A' AS sku_id, 'DC-1' AS location_id, ?::DATE AS "
                 "promised_date, ?::DATE AS due_date, 50.0 AS qty", [monday(2), monday(5) + timedelta(days=2)])
    late = late_purchase_order(conn, DEFAULT_CONFIG)
    assert len(late) == 1
    row = late.iloc[0]
    assert (row["week_index"], row["arrival_week"]) == (2, 5)
    assert pd.Timestamp(row["week_start"]) == pd.Timestamp(monday(2))
    assert not escalate_to_sop(late, time_fence_weeks=4).iloc[0]


def with_one_position(conn: duckdb.DuckDBPyConnection, projected: list[float], *, safety: float,
                      available_now: float | None = None, weekly_demand: float = 10.0) -> duckdb.DuckDBPyConnection:
    """``conn`` with ``marts.sku_location_week`` holding one SKU-location, SKU-A at DC-1, over the 13 weeks: the
    ``projected`` balances (the last one repeated to the horizon), a constant safety stock and a flat plan of
    ``weekly_demand``; ``available_now`` is week 0's available stock (default: its balance). No lanes."""
    balances = (projected + projected[-1:] * 13)[:13]
    conn.execute("CREATE SCHEMA marts")
    conn.execute("CREATE TABLE staging.stg_lanes (from_location_id VARCHAR, to_location_id VARCHAR, transit_days INTEGER)")
    conn.execute("""
        CREATE TABLE marts.sku_location_week AS
        SELECT 'SKU-A' AS sku_id, 'DC-1' AS location_id, k AS week_index, ?::DATE + 7 * k AS week_start,
               k < 4 AS inside_time_fence, '2026-11' AS plan_version, 20.0 AS unit_price, 10.0 AS unit_cost,
               ?::DOUBLE AS safety_stock_qty, ?::DOUBLE AS demand_plan_qty, ?::DOUBLE AS sensed_demand_qty,
               0.0 AS open_order_qty, balance AS projected_available_qty,
               coalesce(lag(balance) OVER (ORDER BY k), balance) AS opening_available_qty,
               CASE WHEN k = 0 THEN coalesce(?::DOUBLE, balance) END AS available_stock_qty
        FROM (SELECT unnest(range(13))::INTEGER AS k, unnest(?::DOUBLE[]) AS balance)
    """, [monday(0), safety, weekly_demand, weekly_demand, available_now, balances])
    return conn


@pytest.mark.parametrize(("available_now", "fence_end", "excess"), [(300.0, 200.0, 120.0), (200.0, 300.0, 120.0)])
def test_excess_is_the_smaller_of_the_excess_now_and_at_the_end_of_the_fence(available_now: float, fence_end: float,
                                                                              excess: float) -> None:
    """Safety stock 20 + 6 weeks of 10 units: 80 is enough. 300 now and 200 at the end of the fence (week 3) are 220
    and 120 beyond it: only 120 stay excess through the fence (stock consumed by then is no excess); 200 now and
    300 at the fence's end are excess by 120 now, and the stock arriving later is no excess of today's."""
    conn = with_one_position(rules_warehouse(), [available_now, available_now, fence_end, fence_end], safety=20.0,
                             available_now=available_now)
    found = excess_inventory(conn, DEFAULT_CONFIG)
    assert found[["sku_id", "location_id", "qty"]].values.tolist() == [["SKU-A", "DC-1", excess]]


@pytest.mark.parametrize(("safety", "balance", "fires"), [
    (50.0, 40.0, False), (50.0, 39.0, True),  # 20 % of the safety stock: exactly 10 below is within it
    (5.0, 3.0, False), (5.0, 2.5, True),  # at least 2 units (20 % of 5 is 1): exactly 2 below is within it
])
def test_below_safety_stock_fires_only_beyond_20_percent_of_it_and_2_units(safety: float, balance: float,
                                                                            fires: bool) -> None:
    """The shortfall against the safety stock must exceed max(20 % of it, 2 units): exactly that much is tolerated."""
    conn = with_one_position(rules_warehouse(), [safety, balance, safety, safety], safety=safety)
    found = below_safety_stock(conn, DEFAULT_CONFIG)
    assert len(found) == int(fires)
    if fires:
        assert (found.iloc[0]["week_index"], found.iloc[0]["qty"]) == (1, safety - balance)


def test_demand_half_below_plan_or_more_is_escalated_to_sop() -> None:
    """A demand variance of 50 % of plan or more is structural, S&OP material: 150 sold against 300 escalates,
    180 against 300 (-40 %) is S&OE's to absorb."""
    conn = rules_warehouse()
    conn.execute(f"CREATE TEMP TABLE {DEMAND_WINDOWS} AS SELECT * FROM (VALUES "
                 "('HALF', 'DC-1', 20.0, 10.0, 150.0, 300.0), ('FORTY', 'DC-1', 20.0, 10.0, 180.0, 300.0)) "
                 "AS t(sku_id, location_id, unit_price, unit_cost, window_demand_qty, window_plan_qty)")
    below = demand_below_plan(conn, DEFAULT_CONFIG).set_index("sku_id", drop=False)
    escalated = escalate_to_sop(below, time_fence_weeks=4)
    assert escalated.to_dict() == {"HALF": True, "FORTY": False}


def test_exceptions_date_from_their_first_affected_week_and_a_buffer_misses_at_most_itself(
        planted: pd.DataFrame) -> None:
    """OUT@DC-2 projects 100, 0, -100, -200, then -300 through the horizon against a safety stock of 40; FAR@DC-2 runs
    100 until week 6, 0 in week 7, then -100 .. -500. A shortage's week is its first affected week, and below safety
    stock the missing buffer is at most the safety stock (40 units, not the 340 the balance lies below it)."""
    def row(exception_type: str, sku: str) -> pd.Series:
        rows = planted[planted["exception_type"].eq(exception_type) & planted["sku_id"].eq(sku)
                       & planted["location_id"].eq("DC-2")]
        assert len(rows) == 1
        return rows.iloc[0]

    out = row("projected_stockout", "OUT")
    assert pd.Timestamp(out["week_start"]) == pd.Timestamp(monday(2)) and out["shortfall_qty"] == 300
    assert pd.Timestamp(row("projected_stockout", "FAR")["week_start"]) == pd.Timestamp(monday(8))
    low = row("below_safety_stock", "OUT")
    assert pd.Timestamp(low["week_start"]) == pd.Timestamp(monday(1))
    assert (low["shortfall_qty"], low["impact_value"]) == (40, 40 * 20.0)  # the whole buffer at unit price 20
    # late supply bites from the week it was promised (week 1), not the week it now arrives (week 3)
    late = planted[planted["exception_type"].eq("late_purchase_order") & planted["sku_id"].eq("LATEPO")].iloc[0]
    assert pd.Timestamp(late["week_start"]) == pd.Timestamp(monday(1))


def test_data_quality_names_the_bad_file(planted: pd.DataFrame) -> None:
    # and the counts of HOLD-OVER and HOLD-GONE, which hold more than they have on hand (reconciliation findings)
    assert fired(planted, "data_quality") == {
        f"sales_orders/{AS_OF.isoformat()}_bad.csv",
        *(f"hold_above_on_hand:inventory_snapshots:{AS_OF.isoformat()}:{sku}:DC-1" for sku in ("HOLD-OVER", "HOLD-GONE"))}
    # two rows quarantined, one of them for two reasons: counted (and valued) as two rows, not three reasons
    bad_file = planted[planted["reference_id"] == f"sales_orders/{AS_OF.isoformat()}_bad.csv"].iloc[0]
    assert bad_file["shortfall_qty"] == 2
    assert bad_file["explanation"].startswith(f"2 rows of sales_orders/{AS_OF.isoformat()}_bad.csv were quarantined")


def test_stale_sources_are_judged_by_the_runs_freshness_limits(tmp_path: Path, monkeypatch) -> None:
    """Five days after the extracts: sales orders, allowed seven days by the run, are fresh; the other
    execution sources keep their two-day default; master data and the plan their 35 days. A stale source
    alerts as a warning (docs/operations.md): the run still publishes."""
    from soe_assets.alerts import ALERT_LOG_ENV, WEBHOOK_ENV, read_alert_log

    monkeypatch.setenv(ALERT_LOG_ENV, str(tmp_path / "alerts.jsonl"))
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    run = run_soe(tmp_path, landing, as_of=AS_OF + timedelta(days=5), freshness_days="sales_orders=7")
    stale_sources = {"inventory_snapshots", "purchase_orders", "production_orders", "resource_capacity", "shipments"}
    stale = run.query("SELECT reference_id, explanation FROM marts.exceptions "
                      "WHERE exception_type = 'data_quality'").set_index("reference_id")["explanation"]
    assert set(stale.index) == {f"freshness:{source}" for source in stale_sources}
    assert "5 days before as_of (limit 2 days)" in stale["freshness:shipments"]
    alerts = {a["subject"]: a["severity"] for a in read_alert_log(tmp_path / "alerts.jsonl")
              if a["kind"] == "check_failed" and a["name"] == "freshness"}
    assert alerts == {f"raw/{source}": "WARN" for source in stale_sources}


def test_a_source_without_any_extract_by_as_of_is_a_data_quality_exception(tmp_path: Path) -> None:
    """The exception follows the freshness check's verdict: shipments whose only extract is dated after as_of
    have no data for the run at all, which is more than stale."""
    network = minimal_network()
    landing = write_landing_zone(tmp_path / "landing", {k: v for k, v in network.items() if k != "shipments"})
    write_source(landing, "shipments", network["shipments"], extract=AS_OF + timedelta(days=1))
    run = run_soe(tmp_path, landing)
    stale = run.query("SELECT reference_id, explanation FROM marts.exceptions "
                      "WHERE exception_type = 'data_quality'").set_index("reference_id")["explanation"]
    assert stale.to_dict() == {"freshness:shipments": "No extract of shipments on or before as_of holds a usable "
                                                      "row: its data is missing."}


def test_a_fresh_extract_of_old_stock_counts_is_a_data_quality_exception_per_location(tmp_path: Path) -> None:
    """The inventory extract is today's, but its counts at DC-2 are ten days old: the projection starts from them
    and misses everything since. DC-1's counts are today's."""
    network = minimal_network()
    for row in network["inventory_snapshots"]:
        if row["location_id"] == "DC-2":
            row["snapshot_date"] = (AS_OF - timedelta(days=10)).isoformat()
    run = run_soe(tmp_path, write_landing_zone(tmp_path / "landing", network))
    flagged = run.query("SELECT reference_id, location_id, explanation FROM marts.exceptions "
                        "WHERE exception_type = 'data_quality' AND reference_id LIKE 'stock_count:%'")
    assert flagged.to_dict("records") == [{
        "reference_id": "stock_count:DC-2", "location_id": "DC-2",
        "explanation": f"The latest stock count at DC-2 is from {(AS_OF - timedelta(days=10)).isoformat()}, 10 days "
                       "before as_of (limit 2 days): the projection starts from it and misses every receipt and "
                       "shipment since."}]


def test_time_fence_rule(planted: pd.DataFrame) -> None:
    stockouts = planted[planted["exception_type"].eq("projected_stockout")].set_index("sku_id")
    assert stockouts.loc["FAR", "escalate_to_sop"]  # first short week beyond the fence
    assert pd.Timestamp(stockouts.loc["FAR", "week_start"]) >= pd.Timestamp(monday(4))
    assert stockouts.loc["OUT", "escalate_to_sop"]  # inside the fence but nothing can absorb it
    spare = planted[planted["exception_type"].eq("projected_stockout") & planted["sku_id"].eq("SPARE")].iloc[0]
    assert not spare["escalate_to_sop"]  # DC-2 holds enough spare SPARE along a lane
    dip = stockouts.loc["SPARE-DIP"]  # DC-2 holds plenty inside the fence but runs below safety stock later
    assert dip["escalate_to_sop"] and "; 0 units are spare at locations with a lane to it." in dip["explanation"]
    slow = stockouts.loc["SPARE-SLOW"]  # DC-FAR holds plenty, 40 days away: it cannot arrive inside the fence
    assert slow["escalate_to_sop"] and "; 0 units are spare at locations with a lane to it." in slow["explanation"]
    # DC-2, short in week 0 itself, opens week 3 (the latest departure arriving in time) with 500: 460 above safety
    after = planted[planted["exception_type"].eq("projected_stockout") & planted["sku_id"].eq("SPARE-AFTER")
                    & planted["location_id"].eq("DC-1")].iloc[0]
    assert not after["escalate_to_sop"] and "; 460 units are spare at locations with a lane to it." in after["explanation"]


@pytest.mark.parametrize("destination, fires", [("STORE-9", True), ("DC-2", False)])
def test_a_transfer_down_the_network_is_demand_and_a_reallocation_between_dcs_is_not(
        planted_run, tmp_path: Path, destination: str, fires: bool) -> None:
    """UP-NEAR at DC-1 runs 12 % above plan (336 against 300 over weeks -2..0). 100 units more shipped out in week
    0 make it 45 %: demand above plan where they replenish a store the DC serves (its plan covers that), none
    where they rebalance stock to another DC (a reallocation, as the respond stage recommends, is no demand)."""
    import duckdb

    from soe_assets.detect.config import DEFAULT_CONFIG
    from soe_assets.detect.rules import demand_above_plan, shared_relations

    copy = tmp_path / "soe.duckdb"
    shutil.copyfile(planted_run.workspace.warehouse, copy)
    with duckdb.connect(str(copy)) as conn:
        conn.execute("INSERT INTO raw.locations BY NAME SELECT 'STORE-9' AS location_id, 'store' AS location_type, "
                     "'north' AS region")
        conn.execute("INSERT INTO raw.shipments BY NAME SELECT 'SH-OUT' AS shipment_id, 'UP-NEAR' AS sku_id, "
                     "'DC-1' AS from_location_id, ? AS to_location_id, ? AS ship_date, ? AS planned_arrival_date, "
                     "? AS eta_date, 100.0 AS qty",
                     [destination, AS_OF, AS_OF + timedelta(days=2), AS_OF + timedelta(days=2)])
        with shared_relations(conn, DEFAULT_CONFIG):
            above = demand_above_plan(conn, DEFAULT_CONFIG)
    assert ("UP-NEAR" in set(above["sku_id"])) == fires


def test_the_demand_windows_of_some_skus_are_theirs_of_the_whole_network(planted_run) -> None:
    """The respond stage computes the windows of the SKUs it may ship down the network only: the same rows."""
    import duckdb

    from soe_assets.detect.config import DEFAULT_CONFIG
    from soe_assets.detect.rules import demand_windows_sql

    with duckdb.connect(str(planted_run.workspace.warehouse), read_only=True) as conn:
        every = conn.execute(demand_windows_sql(DEFAULT_CONFIG)).df()
        conn.register("_some", pd.DataFrame({"sku_id": ["UP", "POS-UP", "SPARE"]}))
        some = conn.execute(demand_windows_sql(DEFAULT_CONFIG, skus="_some")).df()
    expected = every[every["sku_id"].isin(["UP", "POS-UP", "SPARE"])]
    assert len(expected) >= 3
    pd.testing.assert_frame_equal(some.sort_values(["sku_id", "location_id"]).reset_index(drop=True),
                                  expected.sort_values(["sku_id", "location_id"]).reset_index(drop=True))
    # as the respond stage holds them: one row per place and window end, for the SKUs shipped down the network
    from soe_assets.respond.candidates import _demand_windows

    with duckdb.connect(str(planted_run.workspace.warehouse), read_only=True) as conn:
        long = _demand_windows(conn, pd.DataFrame({"sku_id": ["UP", "SPARE"], "down_the_network": [True, False]}))
    up = every[every["sku_id"].eq("UP")].iloc[0]
    assert set(long["sku_id"]) == {"UP"} and long["end_week"].tolist() == [0, 2, 3]
    assert long["demand_qty"].tolist() == [up["demand_through_0"], up["demand_through_1"], up["demand_through_2"]]
    assert long["plan_qty"].tolist() == [up["plan_through_0"], up["plan_through_1"], up["plan_through_2"]]


def test_a_fence_of_no_weeks_judges_excess_on_the_stock_now(planted_run, tmp_path: Path) -> None:
    """With --time-fence-weeks 0 the fence ends now: EXCESS's stock is excess on the stock alone (no fence week to
    project to made the rule find nothing)."""
    import duckdb

    from soe_assets.detect.config import DEFAULT_CONFIG
    from soe_assets.detect.rules import excess_inventory

    copy = tmp_path / "soe.duckdb"
    shutil.copyfile(planted_run.workspace.warehouse, copy)
    with duckdb.connect(str(copy)) as conn:
        fenced = excess_inventory(conn, DEFAULT_CONFIG).set_index("sku_id")
        conn.execute("UPDATE raw.run_context SET time_fence_weeks = 0")
        now_only = excess_inventory(conn, DEFAULT_CONFIG).set_index("sku_id")
    assert "EXCESS" in fenced.index and "EXCESS" in now_only.index
    assert now_only.loc["EXCESS", "qty"] >= fenced.loc["EXCESS", "qty"]  # the smaller of the two excesses before


def test_the_alert_budget_keeps_the_top_exceptions_and_the_planner_view_says_what_it_held_back(
        planted_run, planted: pd.DataFrame, tmp_path: Path, capfd) -> None:
    """--max-open-exceptions 3 on the planted network: the mart shows the top 3, the history keeps the rest open
    and flagged, and soe exceptions says how many it held back and their money."""
    from orchestration.cli import main

    budget = run_soe(tmp_path, planted_run.workspace.landing, max_open_exceptions=3)
    run_log = capfd.readouterr().out  # the run's progress lines go to the terminal itself
    shown = budget.query("SELECT * FROM marts.exceptions WHERE status = 'open'")
    everything = planted[planted["status"].eq("open")]
    assert sorted(shown["exception_id"]) == sorted(everything.nsmallest(3, "priority")["exception_id"])
    held = budget.query("SELECT * FROM marts.exception_history WHERE status = 'open' AND NOT in_alert_budget")
    assert len(held) == len(everything) - 3
    assert held["caused_by_exception_id"].isin(everything["exception_id"]).any()  # shortages linked to causes

    def money(text: str, pattern: str) -> float:
        return float(re.search(pattern, text).group(1).replace(",", ""))

    assert main(["exceptions", "--publish", str(planted_run.workspace.publish)]) == 0
    whole = money(capfd.readouterr().out, r"open impact ([\d,]+) \(linked exceptions counted once\)")
    assert main(["exceptions", "--publish", str(budget.workspace.publish)]) == 0
    out = capfd.readouterr().out
    shown_money = money(out, r"open impact ([\d,]+) \(linked exceptions counted once\)")
    held_money = money(out, rf"{len(held)} more open exception\(s\) worth ([\d,]+) held back")
    # linked exceptions counted once, and alike everywhere: the shown part is worth no more than the whole list,
    # the held-back part is the rest of it, and the run log says the same as the planner's view
    assert 0 < shown_money <= whole and abs(shown_money + held_money - whole) <= 1
    assert f"worth {held_money:,.0f} (kept in exception_history)" in run_log, run_log


def test_two_findings_sharing_a_reference_in_two_sources_are_two_exceptions(planted_run, tmp_path: Path) -> None:
    """A sales-order line and a PO line both numbered 100:1, both over-delivered at one SKU-location: two findings,
    two data_quality exceptions with their own money (they shared an id, and one's money was lost)."""
    import duckdb

    from soe_assets.detect.config import DEFAULT_CONFIG
    from soe_assets.detect.impact import exception_ids
    from soe_assets.detect.rules import data_quality

    copy = tmp_path / "soe.duckdb"
    shutil.copyfile(planted_run.workspace.warehouse, copy)
    with duckdb.connect(str(copy)) as conn:
        conn.execute("""INSERT INTO marts.reconciliation_findings BY NAME
                        SELECT 'open_line_over_delivered' AS finding_type, source, 'SKU-A' AS sku_id,
                               'DC-1' AS location_id, '100:1' AS reference_id, DATE '2026-11-18' AS event_date, qty,
                               'over-delivered' AS detail, DATE '2026-11-18' AS as_of
                        FROM (VALUES ('sales_orders', 2.0), ('purchase_orders', 10.0)) AS t(source, qty)""")
        frame = data_quality(conn, DEFAULT_CONFIG)
    shared = frame[frame["reference_id"].str.endswith(":100:1")]
    assert sorted(shared["reference_id"]) == ["open_line_over_delivered:purchase_orders:100:1",
                                              "open_line_over_delivered:sales_orders:100:1"]
    assert exception_ids(shared).nunique() == 2
    assert sorted(shared["qty"]) == [2.0, 10.0]


def test_a_demand_surge_escalates_on_its_steepest_window(planted: pd.DataFrame) -> None:
    """The quantity comes from the window with the most units above plan, the escalation from the steepest:
    later weeks of the order book are only partly booked, which dilutes the longer windows."""
    surge = planted[planted["exception_type"].eq("demand_above_plan")].set_index("sku_id")
    steep = surge.loc["UP-STEEP"]
    assert steep["shortfall_qty"] == pytest.approx(240.0)  # weeks -2..2: 740 against 500
    assert "(+48%)" in steep["explanation"] and "+60% from" in steep["explanation"]
    assert steep["escalate_to_sop"]
    assert not surge.loc["POS-UP", "escalate_to_sop"]  # +35 %


def test_the_escalation_flag_agrees_with_the_recommended_responses(planted_run) -> None:
    """What detection calls absorbable inside the fence, the respond stage covers there, and the other way
    round: SPARE and SPARE-AFTER get a transfer and no escalation; SPARE-DIP, SPARE-SLOW and OUT get no transfer (nothing
    is spare, or nothing arrives in time) and what the expedites leave is escalated."""
    recs = planted_run.query("SELECT sku_id, action_type, from_location_id, to_location_id, explanation "
                             "FROM marts.recommendations WHERE sku_id IN ('SPARE', 'SPARE-DIP', 'SPARE-SLOW', 'OUT', "
                             "'SPARE-AFTER')")
    actions = recs.groupby("sku_id")["action_type"].agg(set).to_dict()
    assert actions["SPARE"] == {"reallocate_stock"}
    # SPARE-AFTER's DC-2, short in week 0, sends DC-1 its cover once its receipt has ended that shortage
    after = recs[recs["sku_id"].eq("SPARE-AFTER") & recs["action_type"].eq("reallocate_stock")]
    assert set(zip(after["from_location_id"], after["to_location_id"])) == {("DC-2", "DC-1")}
    departures = after["explanation"].str.extract(r"departing (\d{4}-\d\d-\d\d)")[0]
    assert (pd.to_datetime(departures) >= pd.Timestamp(monday(2))).all()  # not before its Monday balance is >= 0
    for sku in ("SPARE-DIP", "SPARE-SLOW", "OUT"):
        assert "escalate_to_sop" in actions[sku] and "reallocate_stock" not in actions[sku]


def test_root_cause_is_linked(planted: pd.DataFrame) -> None:
    def row(exception_type: str) -> pd.Series:
        rows = planted[planted["exception_type"].eq(exception_type) & planted["sku_id"].eq("HOLD")]
        assert len(rows) == 1
        return rows.iloc[0]

    assert row("projected_stockout")["caused_by_exception_id"] == row("quality_hold")["exception_id"]
    assert "quality hold" in row("projected_stockout")["explanation"]
    assert pd.isna(row("quality_hold")["caused_by_exception_id"])


def test_quality_hold_says_how_much_releasing_it_covers(planted: pd.DataFrame) -> None:
    holds = planted[planted["exception_type"].eq("quality_hold")].set_index("sku_id")
    whole = holds.loc["HOLD"]  # 170 held, less of the buffer missing: releasing that much covers it
    assert whole["shortfall_qty"] < 170
    assert whole["explanation"].endswith(f"releasing {whole['shortfall_qty']:,.0f} units would cover it.")
    part = holds.loc["HOLD-PART"]  # 60 held, more missing: releasing all of it covers 60
    assert part["shortfall_qty"] == 60
    assert part["explanation"].endswith("releasing all 60 would cover that much of it; the rest needs other supply.")
    over = holds.loc["HOLD-OVER"]  # 30 held of 20 on hand, 50 missing: only the 20 there can be released
    assert (over["shortfall_qty"], over["impact_value"]) == (20, 20 * 20.0)
    assert over["explanation"].startswith("30 units of HOLD-OVER at DC-1 are on quality hold, more than the 20 on hand;")
    assert over["explanation"].endswith(
        "releasing the 20 on hand would cover that much of it; the rest needs other supply.")


def test_priority_unique_and_money_ranks(planted: pd.DataFrame) -> None:
    open_rows = planted[planted["status"].eq("open")]
    assert open_rows["priority"].is_unique and sorted(open_rows["priority"]) == list(range(1, len(open_rows) + 1))
    assert open_rows["exception_id"].is_unique
    assert (open_rows["impact_value"] >= 0).all() and open_rows["explanation"].str.len().gt(20).all()
    assert open_rows[open_rows["exception_type"].eq("capacity_overload")]["sku_id"].isna().all()
    # inside the same week, more money ranks first
    week0 = open_rows[open_rows["week_start"].eq(monday(0))].sort_values("priority")
    assert week0["impact_value"].is_monotonic_decreasing


def test_a_ranking_with_a_shared_priority_blocks_publishing_and_is_alerted(planted_run, tmp_path: Path,
                                                                           monkeypatch) -> None:
    """The priority_unique check fails the ranked list when two open exceptions share a priority: the set is not
    published and the failure reaches the alert log, as every failed check does."""
    import soe_assets.detect.assets as detect_assets
    from soe_assets.alerts import ALERT_LOG_ENV, WEBHOOK_ENV, read_alert_log

    ranked = detect_assets.mart_rows

    def tied_at_the_top(history_rows: pd.DataFrame) -> pd.DataFrame:
        mart = ranked(history_rows)
        return mart.assign(priority=mart["priority"].where(mart["priority"] != 2, 1))

    monkeypatch.setattr(detect_assets, "mart_rows", tied_at_the_top)
    monkeypatch.setenv(ALERT_LOG_ENV, str(tmp_path / "alerts.jsonl"))
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    run = run_soe(tmp_path, planted_run.workspace.landing)
    assert not run.ok and not (tmp_path / "publish" / "current").exists()
    failed = [a for a in read_alert_log(tmp_path / "alerts.jsonl")
              if a["kind"] == "check_failed" and a["subject"] == "exceptions"]
    assert [(a["name"], a["severity"]) for a in failed] == [("priority_unique", "ERROR")]
    assert "share a priority" in failed[0]["message"]
    # a check that only warns (docs/operations.md) alerts as a warning: the planted network's sources disagree
    # (HOLD-OVER holds more than it has on hand)
    reconciliation = [a["severity"] for a in read_alert_log(tmp_path / "alerts.jsonl")
                      if a["kind"] == "check_failed" and a["name"] == "no_open_findings"]
    assert reconciliation == ["WARN"]
