"""Exception lifecycle across runs on one warehouse: stable ids, resolution, idempotent re-runs."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
from support import AS_OF, minimal_network, monday, run_soe, write_landing_zone, write_source

NEXT_DAY = AS_OF + timedelta(days=1)


def network_with_problems() -> dict:
    net = minimal_network()
    # SKU-B's week-1 PO into DC-1 slips two weeks; SKU-A at DC-2 holds far too much stock
    late = next(p for p in net["purchase_orders"] if p["sku_id"] == "SKU-B" and p["promised_date"] == monday(1).isoformat())
    late["confirmed_date"] = (monday(3)).isoformat()
    for snap in net["inventory_snapshots"]:
        if (snap["sku_id"], snap["location_id"]) == ("SKU-A", "DC-2"):
            snap["on_hand_qty"] = 2000.0
    return net


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    root = tmp_path_factory.mktemp("lifecycle")
    net = network_with_problems()
    landing = write_landing_zone(root / "landing", net)
    first = run_soe(root, landing, as_of=AS_OF)
    out = {"first": first.query("SELECT * FROM marts.exceptions")}
    # next day: the supplier confirms the original date again (new PO extract); the excess is still there
    fixed = [dict(p) for p in net["purchase_orders"]]
    for p in fixed:
        p["confirmed_date"] = p["promised_date"]
    write_source(landing, "purchase_orders", fixed, extract=NEXT_DAY)
    second = run_soe(root, landing, as_of=NEXT_DAY)
    out["second"] = second.query("SELECT * FROM marts.exceptions")
    out["history_before_rerun"] = second.query("SELECT * FROM marts.exception_history")
    again = run_soe(root, landing, as_of=NEXT_DAY)
    out["again"] = again.query("SELECT * FROM marts.exceptions")
    out["history"] = again.query("SELECT * FROM marts.exception_history")
    # a backfill: the first day again, after the second
    lines: list[str] = []
    backfill = run_soe(root, landing, as_of=AS_OF, echo=lines.append)
    assert backfill.ok
    out["backfill_summary"] = pd.DataFrame({"line": lines})
    out["published_after_backfill"] = pd.read_parquet(root / "publish" / "exceptions.parquet")
    versions = sorted((root / "publish" / ".versions").glob("*/_manifest.json"))
    out["published_sets"] = pd.DataFrame([json.loads(path.read_text()) | {"path": str(path.parent)} for path in versions])
    out["current_set"] = pd.DataFrame({"path": [str((root / "publish" / "current").resolve())]})
    return out


def one(frame: pd.DataFrame, exception_type: str) -> pd.Series:
    rows = frame[frame["exception_type"].eq(exception_type)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_first_run_opens_both(runs: dict[str, pd.DataFrame]) -> None:
    first = runs["first"]
    assert one(first, "late_purchase_order")["reference_id"] == "PO-SKU-B-DC-1-1:1"
    assert one(first, "excess_inventory")["status"] == "open"
    assert first["first_detected_on"].eq(pd.Timestamp(AS_OF)).all() or (first["first_detected_on"] == AS_OF).all()


def test_same_problem_keeps_its_id_and_first_detection(runs: dict[str, pd.DataFrame]) -> None:
    before, after = one(runs["first"], "excess_inventory"), one(runs["second"], "excess_inventory")
    assert after["exception_id"] == before["exception_id"]
    assert after["status"] == "open"
    assert pd.Timestamp(after["first_detected_on"]) == pd.Timestamp(AS_OF)


def test_fixed_problem_shows_as_resolved_on_the_next_run(runs: dict[str, pd.DataFrame]) -> None:
    late = one(runs["second"], "late_purchase_order")
    assert late["exception_id"] == one(runs["first"], "late_purchase_order")["exception_id"]
    assert late["status"] == "resolved"
    assert pd.Timestamp(late["resolved_on"]) == pd.Timestamp(NEXT_DAY)
    assert pd.Timestamp(late["first_detected_on"]) == pd.Timestamp(AS_OF)
    assert pd.isna(late["priority"])


def test_rerunning_an_as_of_replaces_its_history_rows(runs: dict[str, pd.DataFrame]) -> None:
    history = runs["history"]
    assert len(history) == len(runs["history_before_rerun"])
    assert not history.duplicated(["as_of", "exception_id"]).any()
    assert sorted(history["as_of"].astype(str).str[:10].unique()) == [AS_OF.isoformat(), NEXT_DAY.isoformat()]
    # a re-run compares with the run before it, not with itself: the resolution is still reported
    assert one(runs["again"], "late_purchase_order")["status"] == "resolved"


def test_a_backfill_is_published_beside_the_later_set_and_readers_keep_the_latest(runs: dict[str, pd.DataFrame]) -> None:
    """Analysts read ``current``: a run for an earlier as_of must not take it back in time."""
    sets = runs["published_sets"].sort_values("path")
    assert sets.iloc[-1]["as_of"] == AS_OF.isoformat()  # the backfill's own set, complete and newest
    current = sets[sets["path"] == runs["current_set"]["path"].iloc[0]]
    assert current["as_of"].tolist() == [NEXT_DAY.isoformat()]
    assert (pd.to_datetime(runs["published_after_backfill"]["as_of"]) == pd.Timestamp(NEXT_DAY)).all()
    summary = " ".join(runs["backfill_summary"]["line"])
    assert f"run complete for as_of {AS_OF}" in summary
    assert f"still shows the later as_of {NEXT_DAY}" in summary
    assert f"the later published day(s) {NEXT_DAY} were computed without this day" in summary


def test_resolutions_show_only_what_was_shown_open_and_a_past_weeks_overload_lapses() -> None:
    """Yesterday: a stockout inside the alert budget, a late PO held back by it, an overload of this week and one
    of last week (yesterday was Sunday). Today none is detected: all four resolve in the history, the mart shows
    the two that were shown open, and last week's overload says it lapsed (its week ended), not that it was
    resolved."""
    from soe_assets.detect.lifecycle import HISTORY_COLUMNS, mart_rows, track_lifecycle

    monday_today = monday(0)
    yesterday = monday_today - timedelta(days=1)
    previous = pd.DataFrame([
        {"exception_id": "EX-S", "exception_type": "projected_stockout", "week_start": monday_today,
         "in_alert_budget": True},
        {"exception_id": "EX-P", "exception_type": "late_purchase_order", "week_start": None, "in_alert_budget": False},
        {"exception_id": "EX-C0", "exception_type": "capacity_overload", "week_start": monday_today,
         "in_alert_budget": True},
        {"exception_id": "EX-C1", "exception_type": "capacity_overload", "week_start": monday(-1),
         "in_alert_budget": True},
    ]).assign(status="open", as_of=yesterday, first_detected_on=yesterday - timedelta(days=3), explanation="x")
    for column in HISTORY_COLUMNS:
        if column not in previous.columns:
            previous[column] = None
    rows = track_lifecycle(pd.DataFrame(columns=HISTORY_COLUMNS), previous, monday_today)
    assert set(rows["status"]) == {"resolved"} and len(rows) == 4
    assert mart_rows(rows)["exception_id"].tolist() == ["EX-C0", "EX-C1", "EX-S"]
    explained = rows.set_index("exception_id")["explanation"]
    assert explained["EX-C1"].startswith(f"Lapsed: its week ended on {yesterday:%Y-%m-%d} (not counted as resolved")
    assert explained["EX-C0"].startswith(f"Resolved: no longer detected on {monday_today:%Y-%m-%d}")
    assert explained["EX-S"].startswith("Resolved: ")
