"""Unit tests of the exception engine's pure functions on hand-made frames (no pipeline run)."""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest

from soe_assets.detect.config import DetectionConfig
from soe_assets.detect.engine import apply_alert_budget
from soe_assets.detect.impact import (
    escalate_to_sop, exception_ids, held_back_impact, impact_value, link_root_causes, linked_impact, rank_priority,
)
from soe_assets.detect.lifecycle import mart_rows, track_lifecycle
from soe_assets.detect.report import format_exceptions
from soe_assets.detect.rules import _units as sql_units
from soe_assets.respond.recommend import _units as frame_units

CONFIG = DetectionConfig()


def candidates(rows: list[dict]) -> pd.DataFrame:
    base = {"sku_id": "SKU-A", "location_id": "DC-1", "reference_id": None, "week_start": date(2026, 11, 16),
            "week_index": 0, "unit_price": 100.0, "unit_cost": 40.0, "absorbable": None, "explanation": "x",
            "horizon_weeks": 13}
    return pd.DataFrame([base | row for row in rows])


@pytest.mark.parametrize(
    ("exception_type", "qty", "expected"),
    [
        ("projected_stockout", 30, 30 * 100.0),  # shortfall x unit price
        ("below_safety_stock", 12, 12 * 100.0),
        ("quality_hold", 5, 5 * 100.0),
        ("demand_above_plan", 80, 80 * 100.0),
        ("demand_below_plan", 50, 50 * 100.0),
        ("capacity_overload", 10, 10 * 100.0),
        ("late_purchase_order", 200, 200 * 40.0),  # delayed supply at cost
        ("late_transfer", 70, 70 * 40.0),
        ("production_shortfall", 76, 76 * 40.0),
        ("excess_inventory", 520, 520 * 40.0 * 0.25 * 13 / 52),  # carrying cost over the horizon = 1,300
        ("data_quality", 3, 3 * 40.0),
    ],
)
def test_impact_formula_per_type(exception_type: str, qty: float, expected: float) -> None:
    frame = candidates([{"exception_type": exception_type, "qty": qty}])
    assert impact_value(frame, CONFIG).iloc[0] == pytest.approx(expected)


def test_excess_carrying_cost_worked_example() -> None:
    # 520 excess units x 40 cost x 25 %/year x 13/52 year = 1,300
    frame = candidates([{"exception_type": "excess_inventory", "qty": 520}])
    assert impact_value(frame, CONFIG).iloc[0] == 1300.0


def test_excess_carrying_cost_runs_over_the_runs_horizon() -> None:
    # a 26-week horizon holds the excess twice as long as the default 13: 520 x 40 x 0.25 x 26/52 = 2,600
    frame = candidates([{"exception_type": "excess_inventory", "qty": 520, "horizon_weeks": 26}])
    assert impact_value(frame, CONFIG).iloc[0] == 2600.0


def test_negative_or_missing_quantities_are_worth_nothing() -> None:
    frame = candidates([{"exception_type": "projected_stockout", "qty": -5},
                        {"exception_type": "projected_stockout", "qty": None, "unit_price": None}])
    assert impact_value(frame, CONFIG).tolist() == [0.0, 0.0]


def test_exception_ids_are_stable_and_independent_of_row_order() -> None:
    frame = candidates([
        {"exception_type": "late_purchase_order", "reference_id": "PO-1:1", "qty": 1},
        {"exception_type": "late_purchase_order", "reference_id": "PO-1:2", "qty": 1},
        {"exception_type": "projected_stockout", "qty": 1},
        {"exception_type": "capacity_overload", "sku_id": None, "reference_id": "LINE-1", "qty": 1},
        {"exception_type": "capacity_overload", "sku_id": None, "reference_id": "LINE-1", "qty": 1,
         "week_start": date(2026, 11, 23)},
    ])
    ids = exception_ids(frame)
    assert ids.is_unique and ids.str.match(r"^EX-[0-9a-f]{16}$").all()
    reversed_ids = exception_ids(frame.iloc[::-1].reset_index(drop=True))
    assert reversed_ids.tolist() == ids.tolist()[::-1]
    # a different impact or week (outside capacity) does not change the id: only the problem's key does
    moved = frame.assign(qty=99, week_start=date(2026, 12, 7))
    assert exception_ids(moved).iloc[:3].tolist() == ids.iloc[:3].tolist()


def test_priority_ranks_by_money_discounted_by_distance_and_is_unique() -> None:
    frame = candidates([
        {"exception_type": "projected_stockout", "qty": 1, "week_index": 0},
        {"exception_type": "projected_stockout", "qty": 1, "week_index": 10},
        {"exception_type": "projected_stockout", "qty": 1, "week_index": 0},
        {"exception_type": "data_quality", "qty": 1, "week_index": None},
    ])
    frame["exception_id"] = ["EX-b", "EX-c", "EX-a", "EX-d"]
    # scores: 5000, 9000 / (1 + 0.1 x 10) = 4500, 5000, 2000 x 0.5 = 1000
    frame["impact_value"] = [5000.0, 9000.0, 5000.0, 2000.0]
    assert rank_priority(frame, CONFIG).tolist() == [2, 3, 1, 4]


def test_an_overdue_exception_ranks_as_week_0_not_above_it() -> None:
    """Weeks in the past count 0: an item overdue by 2 weeks is as urgent as one this week, no more."""
    frame = candidates([
        {"exception_type": "late_purchase_order", "qty": 1, "week_index": -2},
        {"exception_type": "projected_stockout", "qty": 1, "week_index": 0},
    ])
    frame["exception_id"] = ["EX-a", "EX-b"]
    frame["impact_value"] = [100.0, 105.0]  # 100 counted as 2 weeks "closer" than now would score 125
    assert rank_priority(frame, CONFIG).tolist() == [2, 1]


def test_equal_scores_rank_by_impact_before_id() -> None:
    # 2,000 without a week (x 0.5) and 1,000 in week 0 both score 1,000: the larger impact acts first
    frame = candidates([
        {"exception_type": "projected_stockout", "qty": 1, "week_index": 0},
        {"exception_type": "data_quality", "qty": 1, "week_index": None},
    ])
    frame["exception_id"] = ["EX-a", "EX-z"]
    frame["impact_value"] = [1000.0, 2000.0]
    assert rank_priority(frame, CONFIG).tolist() == [2, 1]


def test_escalation_beyond_fence_or_not_absorbable() -> None:
    frame = candidates([
        {"exception_type": "projected_stockout", "week_index": 2, "absorbable": True},
        {"exception_type": "projected_stockout", "week_index": 2, "absorbable": False},
        {"exception_type": "projected_stockout", "week_index": 4, "absorbable": True},
        {"exception_type": "late_purchase_order", "week_index": -1, "absorbable": None},
        {"exception_type": "data_quality", "week_index": None, "absorbable": True},
    ])
    assert escalate_to_sop(frame, time_fence_weeks=4).tolist() == [False, True, True, False, False]
    # without a fence nothing can be absorbed inside it: an overdue item bites now, in week 0, and escalates
    assert escalate_to_sop(frame, time_fence_weeks=0).tolist() == [True, True, True, True, False]


def test_root_cause_links_stockout_to_late_supply_and_upstream_production() -> None:
    frame = candidates([
        {"exception_type": "projected_stockout", "exception_id": "EX-so", "impact_value": 900.0},
        {"exception_type": "demand_above_plan", "exception_id": "EX-dem", "impact_value": 5000.0},
        {"exception_type": "late_purchase_order", "exception_id": "EX-po", "reference_id": "PO-7:1",
         "impact_value": 100.0},
        {"exception_type": "below_safety_stock", "sku_id": "SKU-B", "exception_id": "EX-ss", "impact_value": 50.0},
        {"exception_type": "production_shortfall", "sku_id": "SKU-B", "location_id": "PLANT-1",
         "exception_id": "EX-mo", "reference_id": "MO-3", "impact_value": 80.0},
        {"exception_type": "projected_stockout", "sku_id": "SKU-C", "exception_id": "EX-alone", "impact_value": 1.0},
    ])
    linked = link_root_causes(frame).set_index("exception_id")
    # late supply is stronger evidence than demand above plan, whatever the money
    assert linked.loc["EX-so", "caused_by_exception_id"] == "EX-po"
    assert "late purchase order PO-7:1" in linked.loc["EX-so", "explanation"]
    assert linked.loc["EX-ss", "caused_by_exception_id"] == "EX-mo"
    assert pd.isna(linked.loc["EX-alone", "caused_by_exception_id"])
    assert pd.isna(linked.loc["EX-po", "caused_by_exception_id"])


def test_late_supply_causes_only_a_shortage_that_starts_before_it_arrives() -> None:
    """A PO line now arriving in week 2 leaves a shortage from week 5 as it is (it arrives before it either way);
    one arriving in week 6 is why the place is short from week 5. A quality hold has no arrival: it explains any."""
    frame = candidates([
        {"exception_type": "projected_stockout", "exception_id": "EX-late-short", "week_index": 5,
         "impact_value": 900.0},
        {"exception_type": "late_purchase_order", "exception_id": "EX-po-early", "reference_id": "PO-1:1",
         "week_index": 0, "arrival_week": 2, "impact_value": 500.0},
        {"exception_type": "below_safety_stock", "sku_id": "SKU-B", "exception_id": "EX-low", "week_index": 5,
         "impact_value": 300.0},
        {"exception_type": "late_transfer", "sku_id": "SKU-B", "exception_id": "EX-tr-later", "reference_id": "SH-1",
         "week_index": 1, "arrival_week": 6, "impact_value": 100.0},
        {"exception_type": "projected_stockout", "sku_id": "SKU-C", "exception_id": "EX-held", "week_index": 3,
         "impact_value": 400.0},
        {"exception_type": "late_purchase_order", "sku_id": "SKU-C", "exception_id": "EX-po-same-week",
         "reference_id": "PO-2:1", "week_index": 0, "arrival_week": 3, "impact_value": 200.0},
        {"exception_type": "quality_hold", "sku_id": "SKU-C", "exception_id": "EX-hold", "impact_value": 50.0},
    ])
    linked = link_root_causes(frame).set_index("exception_id")["caused_by_exception_id"]
    assert pd.isna(linked["EX-late-short"])
    assert linked["EX-low"] == "EX-tr-later"
    # arriving in the week the shortage starts, the PO is in that week's balance already: the hold explains it
    assert linked["EX-held"] == "EX-hold"


def no_references(frame: pd.DataFrame) -> pd.DataFrame:
    """As detection's frame comes when no exception of the run has a reference: pandas types the column float."""
    return frame.assign(reference_id=np.nan)


def test_root_cause_links_nothing_when_no_cause_meets_a_shortage() -> None:
    """A cause without a reference (demand above plan) at another SKU-location than the only shortage, in a
    run where no exception has a reference: no link, the explanations unchanged (this once failed the run)."""
    frame = no_references(candidates([
        {"exception_type": "projected_stockout", "exception_id": "EX-so", "impact_value": 900.0},
        {"exception_type": "demand_above_plan", "sku_id": "SKU-B", "exception_id": "EX-dem", "impact_value": 500.0},
    ]))
    linked = link_root_causes(frame).set_index("exception_id")
    assert linked["caused_by_exception_id"].isna().all()
    assert linked["explanation"].tolist() == frame.set_index("exception_id")["explanation"].tolist()


def test_root_cause_without_reference_is_named_by_its_type() -> None:
    frame = no_references(candidates([
        {"exception_type": "projected_stockout", "exception_id": "EX-so", "impact_value": 900.0},
        {"exception_type": "demand_above_plan", "exception_id": "EX-dem", "impact_value": 500.0},
    ]))
    linked = link_root_causes(frame).set_index("exception_id")
    assert linked.loc["EX-so", "caused_by_exception_id"] == "EX-dem"
    assert linked.loc["EX-so", "explanation"].endswith(" Cause: demand above plan (exception EX-dem).")


def detected(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "exception_id": ids, "exception_type": "projected_stockout", "sku_id": "SKU-A", "location_id": "DC-1",
        "week_start": date(2026, 11, 16), "reference_id": None, "impact_value": [100.0 * (i + 1) for i in range(len(ids))],
        "priority": list(range(1, len(ids) + 1)), "escalate_to_sop": False, "explanation": "short",
        "caused_by_exception_id": None, "shortfall_qty": 1.0, "weeks_affected": 1, "week_index": 0,
    })


def test_lifecycle_new_still_open_and_resolved() -> None:
    first = track_lifecycle(detected(["EX-1", "EX-2"]), pd.DataFrame(), date(2026, 11, 18))
    assert first["status"].eq("open").all() and first["first_detected_on"].eq(date(2026, 11, 18)).all()
    second = track_lifecycle(detected(["EX-2", "EX-3"]), first, date(2026, 11, 25)).set_index("exception_id")
    assert second.loc["EX-2", "status"] == "open" and second.loc["EX-2", "first_detected_on"] == date(2026, 11, 18)
    assert second.loc["EX-3", "first_detected_on"] == date(2026, 11, 25)
    assert second.loc["EX-1", "status"] == "resolved" and second.loc["EX-1", "resolved_on"] == date(2026, 11, 25)
    assert pd.isna(second.loc["EX-1", "priority"])
    # its figures are those of the run that last saw it open, and its text says so
    assert second.loc["EX-1", "explanation"] == "Resolved: no longer detected on 2026-11-25; when last open (2026-11-18): short"
    # resolved ones are reported once: the next run no longer carries them
    third = track_lifecycle(detected(["EX-2", "EX-3"]), second.reset_index(), date(2026, 12, 2))
    assert set(third["exception_id"]) == {"EX-2", "EX-3"}


def test_an_overload_no_longer_detected_on_its_weeks_sunday_is_resolved_not_lapsed() -> None:
    """On its week's Sunday the overload's week is week 0 of the run, still detectable: gone then, it was resolved.
    From the Monday after, its week has ended: it lapsed (as ``LAPSED_SQL`` reads it for the KPI)."""
    week = date(2026, 11, 16)
    overload = detected(["EX-1"]).assign(exception_type="capacity_overload", sku_id=None, week_start=week)
    first = track_lifecycle(overload, pd.DataFrame(), date(2026, 11, 18))
    on_sunday = track_lifecycle(detected([]), first, date(2026, 11, 22)).set_index("exception_id")
    assert on_sunday.loc["EX-1", "explanation"].startswith("Resolved: no longer detected on 2026-11-22")
    on_monday = track_lifecycle(detected([]), first, date(2026, 11, 23)).set_index("exception_id")
    assert on_monday.loc["EX-1", "explanation"].startswith("Lapsed: its week ended on 2026-11-22")


def test_alert_budget_keeps_top_n_and_reports_the_rest() -> None:
    frame = detected(["EX-1", "EX-2", "EX-3"])
    kept, budget = apply_alert_budget(frame, 2)
    assert kept["exception_id"].tolist() == ["EX-1", "EX-2"]
    assert (budget.held_back, budget.held_back_value) == (1, 300.0)
    rows = track_lifecycle(frame, pd.DataFrame(), date(2026, 11, 18), kept_ids=set(kept["exception_id"]))
    assert mart_rows(rows)["exception_id"].tolist() == ["EX-1", "EX-2"]
    assert apply_alert_budget(frame, 0)[1].held_back == 0


def test_planner_table_filters_and_orders() -> None:
    rows = mart_rows(track_lifecycle(detected(["EX-1", "EX-2"]), pd.DataFrame(), date(2026, 11, 18)))
    text = format_exceptions(rows, top=1)
    assert "2 open (showing the top 1)" in text and "projected_stockout" in text
    assert "nothing needs attention" in format_exceptions(rows, exception_type="late_transfer")
    everything = format_exceptions(rows, top=0)  # 0: all
    assert "showing the top" not in everything and everything.count("projected_stockout") == 2
    quiet = format_exceptions(rows.iloc[0:0])  # a run that found nothing publishes an empty mart
    # EX-2 (200) is caused by EX-1 (100), the same money from the other side: the header counts the pair once, at
    # the larger of the two, with or without its cause in view
    linked = rows.assign(caused_by_exception_id=[None, "EX-1"])
    assert "open impact 200 (linked exceptions counted once)" in format_exceptions(linked)
    assert "open impact 200 " in format_exceptions(linked[linked["exception_id"].eq("EX-2")])
    assert "open impact 100 " in format_exceptions(linked[linked["exception_id"].eq("EX-1")])
    assert quiet.startswith("exceptions of the latest run: 0 open") and "nothing needs attention" in quiet


def test_linked_exceptions_count_once_and_a_part_of_a_list_is_never_worth_more_than_it() -> None:
    """A cause and the shortages it causes count as their largest row; unlinked rows add up."""
    rows = pd.DataFrame({
        "exception_id": ["PO", "OUT", "LOW", "HOLD", "EXCESS"],
        "caused_by_exception_id": [None, "PO", "PO", None, None],
        "impact_value": [300.0, 3600.0, 500.0, 900.0, 40.0],
    })
    assert linked_impact(rows) == 3600 + 900 + 40
    # the two shortages without their cause are still one sum: not 3,600 + 500
    assert linked_impact(rows[rows["exception_id"].isin(["OUT", "LOW"])]) == 3600
    assert linked_impact(rows[rows["exception_id"].isin(["PO", "HOLD"])]) == 1200
    for size in range(len(rows) + 1):  # whatever an alert budget keeps, shown + held back = the whole list
        shown, held = rows.iloc[:size], rows.iloc[size:]
        assert linked_impact(shown) <= linked_impact(rows)
        assert linked_impact(shown) + held_back_impact(shown, held) == pytest.approx(linked_impact(rows))
    kept, budget = apply_alert_budget(detected(["EX-1", "EX-2", "EX-3"]).assign(caused_by_exception_id=[None, None, "EX-2"]), 2)
    # EX-3 (300) is EX-2's (200) money from the other side: holding it back holds back only what it adds
    assert budget.held_back_value == 100.0
    # rows worth nothing, or nothing beyond a shown row of their group, add exactly 0: not the difference of two
    # sums added in another order (3.6e-12 here; negative ones printed "worth -0")
    shown = pd.DataFrame({"exception_id": [f"S{i:03d}" for i in range(40)], "caused_by_exception_id": None,
                          "impact_value": np.random.default_rng(0).random(40) * 1000})
    held = pd.DataFrame({"exception_id": ["S005-2", "H1", "S020-2"], "caused_by_exception_id": ["S005", None, "S020"],
                         "impact_value": [0.0, 0.0, 0.0]})
    assert linked_impact(pd.concat([shown, held])) - linked_impact(shown) != 0.0  # what a difference of sums gives
    assert held_back_impact(shown, held) == 0.0


def test_planner_table_names_each_resolved_exception() -> None:
    """Several late PO lines of one SKU-location, or overloaded weeks of one resource, resolve one by one: the
    resolved line tells them apart by reference (and week), and names data-quality items by theirs."""
    first = detected(["EX-1", "EX-2", "EX-3", "EX-4"]).assign(
        exception_type=["late_purchase_order", "late_purchase_order", "capacity_overload", "data_quality"],
        sku_id=["SKU-A", "SKU-A", None, None], location_id=["DC-1", "DC-1", "P1", None],
        reference_id=["PO-1:1", "PO-1:2", "R2", "freshness:resource_capacity"],
        week_start=[date(2026, 11, 16), date(2026, 11, 16), date(2026, 11, 30), None])
    earlier = track_lifecycle(first, pd.DataFrame(), date(2026, 11, 18))
    rows = mart_rows(track_lifecycle(first.iloc[[1]], earlier, date(2026, 11, 19)))
    resolved = format_exceptions(rows).splitlines()[-1]
    assert resolved == ("resolved since the last run: late_purchase_order SKU-A @ DC-1 (PO-1:1), "
                        "capacity_overload P1 (R2 week 2026-11-30), data_quality (freshness:resource_capacity)")


@pytest.mark.parametrize("qty, text", [(1, "1 unit"), (0.999, "1 unit"), (0, "0 units"), (2, "2 units"),
                                       (1250, "1,250 units"), (12.5, "12.5 units"), (-12.5, "-12.5 units"),
                                       (144.04, "144.04 units"), (0.6, "0.6 units")])
def test_explanations_count_units_in_words_alike_in_sql_and_pandas(qty: float, text: str) -> None:
    """Detection writes its explanations in SQL, respond in pandas: both say '1 unit' and '2 units', and both
    quote a fraction as the row holds it (a shortfall of 12.5 must not read '12 units'), to two decimals."""
    assert duckdb.connect().execute(f"SELECT {sql_units(str(qty))}").fetchone()[0] == text
    assert frame_units(pd.Series([qty])).tolist() == [text]


def test_exception_ids_stay_those_earlier_runs_stored():
    """The history matches ids across runs and releases: a change of the hash (a pandas upgrade) would start every
    exception afresh. These ids were computed once and must never change."""
    frame = pd.DataFrame({"exception_type": ["late_purchase_order", "capacity_overload"], "sku_id": ["SKU-1", None],
                          "location_id": ["DC-1", "PLANT-1"], "reference_id": ["PO-1:1", "R1"],
                          "week_start": [None, date(2026, 11, 23)]})
    assert exception_ids(frame).tolist() == ["EX-0fc71a337966f5bf", "EX-39e5be1e1613856d"]
