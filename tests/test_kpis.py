"""KPI definitions on hand-made rows; every expected value is worked out in the test."""

from __future__ import annotations

import math
from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest

from soe_assets.kpis import metrics
from tests.kpi_fixture import make_warehouse

AS_OF = date(2026, 11, 18)  # Wednesday of week 2026-11-16 (week 0, not yet ended)
W1 = date(2026, 11, 9)  # last past week (Mon 9 .. Sun 15)
W2 = date(2026, 11, 2)
W0 = date(2026, 11, 16)  # current week: never reported


def so(line: int, promised: date, ordered: float, shipped: float, ship_date: date | None, status: str = "shipped",
       sku: str = "A", loc: str = "DC-1", requested: date | None = None) -> dict:
    return {"order_id": "SO", "line_no": line, "customer_id": "C", "sku_id": sku, "location_id": loc,
            "order_date": promised - timedelta(days=10), "requested_date": requested or promised,
            "promised_date": promised, "ordered_qty": ordered, "shipped_qty": shipped, "ship_date": ship_date,
            "status": status}


def pick(frame: pd.DataFrame, week: date, scope_type: str = "total", scope_id: str | None = None) -> pd.Series:
    rows = frame[(frame.week_start == week) & (frame.scope_type == scope_type)]
    rows = rows[rows.scope_id.isna()] if scope_id is None else rows[rows.scope_id == scope_id]
    assert len(rows) == 1, f"expected one row for {week} {scope_type} {scope_id}, got\n{frame}"
    return rows.iloc[0]


# --- OTIF and fill rate ---------------------------------------------------------------------

ORDER_LINES = [
    so(1, W1 + timedelta(days=1), 10, 10, W1 + timedelta(days=1)),            # on time, in full
    so(2, W1 + timedelta(days=1), 10, 6, W1),                                  # partial, on time: 6 units
    so(3, W1 + timedelta(days=2), 10, 10, W1 + timedelta(days=4)),            # in full but late: 0 units
    so(4, W1 + timedelta(days=2), 10, 0, None, "cancelled"),                   # cancelled: excluded
    so(5, W1 + timedelta(days=3), 20, 25, W1 + timedelta(days=3), sku="B", loc="DC-2"),  # over-shipped: capped 20
    so(6, W1 + timedelta(days=3), 10, 0, None, "open"),                        # not shipped: 0
    so(7, W0 + timedelta(days=1), 10, 10, W0 + timedelta(days=1)),            # current week: not reported
]


def test_otif_counts_full_and_on_time_lines_only():
    conn = make_warehouse(stg_sales_orders=ORDER_LINES)
    otif = metrics.otif_line_rate(conn, AS_OF)
    # Lines 1,2,3,5,6 count (4 cancelled, 7 not past). OTIF: 1 and 5 -> 2/5.
    total = pick(otif, W1)
    assert (total.numerator, total.denominator) == (2, 5)
    assert total.value == pytest.approx(0.4)
    # DC-1: lines 1,2,3,6 -> 1/4; family parts (line 5) -> 1/1.
    assert pick(otif, W1, "location", "DC-1").value == pytest.approx(0.25)
    assert pick(otif, W1, "product_family", "parts").value == pytest.approx(1.0)
    assert set(otif.week_start) == {W1}  # W0 has not ended, W2 has no lines: no row, no divide by zero


def test_fill_rate_units_caps_at_ordered_and_ignores_late_units():
    conn = make_warehouse(stg_sales_orders=ORDER_LINES)
    fill = metrics.fill_rate_units(conn, AS_OF)
    # Units on time: 10 + 6 + 0 (late) + 20 (capped) + 0 = 36; ordered: 10+10+10+20+10 = 60.
    total = pick(fill, W1)
    assert (total.numerator, total.denominator) == (36, 60)
    assert total.value == pytest.approx(0.6)
    assert pick(fill, W1, "product_family", "bikes").value == pytest.approx(16 / 40)


def test_week_without_lines_yields_no_row():
    conn = make_warehouse(stg_sales_orders=[so(1, W1, 10, 0, None, "cancelled")])
    assert metrics.otif_line_rate(conn, AS_OF).empty
    assert metrics.fill_rate_units(conn, AS_OF).empty


@pytest.mark.parametrize(("as_of", "reported"), [(W1 + timedelta(days=6), True), (W1 + timedelta(days=5), False)])
def test_a_week_is_reported_from_its_sunday_on(as_of: date, reported: bool):
    """W ends on its Sunday: an as_of on that Sunday reports it, one on its Saturday does not yet."""
    conn = make_warehouse(stg_sales_orders=[so(1, W1 + timedelta(days=1), 10, 10, W1 + timedelta(days=1))])
    otif = metrics.otif_line_rate(conn, as_of)
    assert (W1 in set(otif.week_start)) == reported
    assert set(otif.week_start) <= {W1}


# --- production and suppliers ---------------------------------------------------------------


def mo(order_id: str, finish: date, planned: float, completed: float, actual: date | None, status: str) -> dict:
    return {"production_order_id": order_id, "sku_id": "A", "location_id": "PLANT-1", "resource_id": "L1",
            "planned_start_date": finish - timedelta(days=3), "planned_finish_date": finish,
            "planned_qty": planned, "completed_qty": completed, "actual_finish_date": actual, "status": status}


def test_schedule_adherence():
    conn = make_warehouse(stg_production_orders=[
        mo("M1", W1 + timedelta(days=4), 100, 100, W1 + timedelta(days=3), "completed"),  # 100
        mo("M2", W1 + timedelta(days=4), 100, 120, W1 + timedelta(days=4), "completed"),  # capped 100
        mo("M3", W1 + timedelta(days=4), 100, 100, W1 + timedelta(days=6), "completed"),  # late: 0
        mo("M4", W1 + timedelta(days=4), 100, 60, None, "in_progress"),                 # not finished: 0
        mo("M5", W1 + timedelta(days=4), 100, 0, None, "cancelled"),                    # excluded
    ])
    total = pick(metrics.schedule_adherence(conn, AS_OF), W1)
    assert (total.numerator, total.denominator) == (200, 400)
    assert total.value == pytest.approx(0.5)


def po(line: int, promised: date, ordered: float, received: float, received_date: date | None, status: str) -> dict:
    return {"po_id": "PO", "line_no": line, "supplier_id": "S1", "sku_id": "B", "location_id": "DC-1",
            "order_date": promised - timedelta(days=20), "promised_date": promised, "confirmed_date": promised,
            "ordered_qty": ordered, "received_qty": received, "received_date": received_date, "status": status}


def test_supplier_on_time_rate():
    conn = make_warehouse(stg_purchase_orders=[
        po(1, W2, 50, 50, W2, "received"),                           # on time in full
        po(2, W2, 50, 40, W2, "received"),                           # short: not in full
        po(3, W2, 50, 50, W2 + timedelta(days=1), "received"),       # late in full
        po(4, W2, 50, 0, None, "cancelled"),                         # excluded
        po(5, W1, 50, 0, None, "open"),                              # not received
    ])
    rate = metrics.supplier_on_time_rate(conn, AS_OF)
    assert pick(rate, W2).value == pytest.approx(1 / 3)
    assert (pick(rate, W1).numerator, pick(rate, W1).denominator) == (0, 1)


# --- forecast accuracy ----------------------------------------------------------------------


def plan(sku: str, loc: str, week: date, qty: float) -> dict:
    return {"sku_id": sku, "location_id": loc, "week_start": week, "plan_version": "v1",
            "committed_at": pd.Timestamp("2026-10-01"), "demand_qty": qty, "supply_qty": qty, "safety_stock_qty": 0.0}


def forecast_warehouse(*more_lines: dict) -> duckdb.DuckDBPyConnection:
    return make_warehouse(
        stg_sales_orders=[
            so(1, W1, 80, 80, W1, sku="A", loc="DC-1"),
            so(2, W1, 30, 0, None, "cancelled", sku="A", loc="DC-1"),   # cancelled: not demand
            so(3, W1, 50, 50, W1, sku="B", loc="DC-1"),                  # no plan: plan counts 0
            so(4, W2, 10, 10, W2, sku="A", loc="DC-2", requested=W2 + timedelta(days=8)),  # requested in W1
            *more_lines,
        ],
        stg_pos_sales=[{"sale_date": W1 + timedelta(days=5), "sku_id": "A", "location_id": "DC-1", "qty": 20.0}],
        int_committed_plan=[
            plan("A", "DC-1", W1, 120), plan("A", "DC-2", W1, 0), plan("B", "DC-2", W1, 40),  # B@DC-2 never sells
            plan("A", "PLANT-1", W1, 500),  # a plant that serves no customer: outside the set
        ],
    )


def test_forecast_wape_bias_and_mape():
    conn = forecast_warehouse()
    # Week W1, serving SKU-locations: A@DC-1 actual 80+20=100 plan 120; B@DC-1 actual 50 plan 0;
    # A@DC-2 actual 10 (by requested_date) plan 0.
    wape = pick(metrics.forecast_wape(conn, AS_OF), W1)
    assert (wape.numerator, wape.denominator) == (20 + 50 + 10, 160)
    assert wape.value == pytest.approx(0.5)
    bias = pick(metrics.forecast_bias(conn, AS_OF), W1)
    assert bias.numerator == pytest.approx(20 - 50 - 10)
    assert bias.value == pytest.approx(-40 / 160)
    mape = pick(metrics.forecast_mape(conn, AS_OF), W1)
    assert mape.value == pytest.approx((0.2 + 1.0 + 1.0) / 3)
    assert mape.denominator == 3
    dc1 = pick(metrics.forecast_wape(conn, AS_OF), W1, "location", "DC-1")
    assert dc1.value == pytest.approx(70 / 150)


def test_a_sku_location_whose_only_line_was_cancelled_does_not_serve_customers():
    """B@DC-2 (plan 40 in W1) had one order, cancelled: it never had demand, so its plan is not judged as a
    100 % over-forecast; the KPIs come out as if the line did not exist."""
    conn = forecast_warehouse(so(5, W1, 40, 0, None, "cancelled", sku="B", loc="DC-2"))
    for kpi in (metrics.forecast_wape, metrics.forecast_bias, metrics.forecast_mape):
        pd.testing.assert_frame_equal(kpi(conn, AS_OF), kpi(forecast_warehouse(), AS_OF))
    dc2 = pick(metrics.forecast_bias(conn, AS_OF), W1, "location", "DC-2")
    assert (dc2.numerator, dc2.denominator) == (-10, 10)  # A@DC-2 only: plan 0, actual 10
    metrics.write_plan_vs_actual(conn, AS_OF, "main.pva")
    assert conn.execute("SELECT count(*) FROM main.pva WHERE sku_id = 'B' AND location_id = 'DC-2'").fetchone() == (0,)


def test_a_sku_location_selling_through_pos_only_serves_customers():
    """B@STORE-1 has no sales order, only POS (30 units in W1) against a plan of 40: it serves customers, so its
    plan is judged, not counted as 0 beside its actual."""
    conn = make_warehouse(
        stg_pos_sales=[{"sale_date": W1 + timedelta(days=2), "sku_id": "B", "location_id": "STORE-1", "qty": 30.0}],
        int_committed_plan=[plan("B", "STORE-1", W1, 40)],
    )
    wape = pick(metrics.forecast_wape(conn, AS_OF), W1)
    assert (wape.numerator, wape.denominator) == (10, 30)
    bias = pick(metrics.forecast_bias(conn, AS_OF), W1)
    assert bias.value == pytest.approx(10 / 30)


# --- exceptions and working capital ---------------------------------------------------------


def test_exception_resolution_days_median_and_missing_history():
    conn = make_warehouse()
    assert metrics.exception_resolution_days(conn, AS_OF).empty  # no marts.exception_history yet
    conn.execute("""CREATE TABLE marts.exception_history AS SELECT * FROM (VALUES
        ('E1', 'late_purchase_order', 'A', 'DC-1', DATE '2026-11-01', DATE '2026-11-10', 'resolved', DATE '2026-11-10', NULL),
        ('E1', 'late_purchase_order', 'A', 'DC-1', DATE '2026-11-01', NULL,             'open',     DATE '2026-11-05', NULL),
        ('E2', 'projected_stockout',  'B', 'DC-1', DATE '2026-11-09', DATE '2026-11-11', 'resolved', DATE '2026-11-11', DATE '2026-11-09'),
        -- an overload of a week still ahead, resolved; another one's week ended first: it lapsed, no resolution
        ('E3', 'capacity_overload',   '',  'PLANT-1', DATE '2026-11-02', DATE '2026-11-12', 'resolved', DATE '2026-11-12', DATE '2026-11-16'),
        ('E6', 'capacity_overload',   '',  'PLANT-1', DATE '2026-11-02', DATE '2026-11-10', 'resolved', DATE '2026-11-10', DATE '2026-11-02'),
        ('E4', 'projected_stockout',  'B', 'DC-1', DATE '2026-11-09', NULL, 'open', DATE '2026-11-18', DATE '2026-11-16'),
        -- resolved twice: 11-03 to 11-05, back on 11-09, resolved again 11-12: two resolutions of 2 and 3 days
        ('E5', 'quality_hold',        'A', 'DC-1', DATE '2026-11-03', NULL,             'open',     DATE '2026-11-03', DATE '2026-11-02'),
        ('E5', 'quality_hold',        'A', 'DC-1', DATE '2026-11-03', DATE '2026-11-05', 'resolved', DATE '2026-11-05', DATE '2026-11-02'),
        ('E5', 'quality_hold',        'A', 'DC-1', DATE '2026-11-09', NULL,             'open',     DATE '2026-11-09', DATE '2026-11-09'),
        ('E5', 'quality_hold',        'A', 'DC-1', DATE '2026-11-09', DATE '2026-11-12', 'resolved', DATE '2026-11-12', DATE '2026-11-09')
    ) AS t(exception_id, exception_type, sku_id, location_id, first_detected_on, resolved_on, status, as_of, week_start)""")
    days = metrics.exception_resolution_days(conn, AS_OF)
    total = pick(days, W1)  # E1: 9 days, E2: 2, E3: 10, E5's second resolution: 3 -> median 6
    assert (total.value, total.numerator, total.denominator) == (6, 24, 4)
    assert pick(days, W1, "location", "DC-1").value == 3  # E1 9, E2 2, E5 3
    earlier = pick(days, W2)  # E5's first resolution stays in its own week
    assert (earlier.value, earlier.numerator, earlier.denominator) == (2, 2, 1)


def inventory_warehouse() -> duckdb.DuckDBPyConnection:
    snap = lambda d, sku, qty: {"snapshot_date": d, "sku_id": sku, "location_id": "DC-1",  # noqa: E731
                                "on_hand_qty": qty, "quality_hold_qty": 0.0}
    return make_warehouse(
        stg_inventory_snapshots=[
            snap(W2 + timedelta(days=6), "A", 10), snap(W2 + timedelta(days=6), "B", 100),
            snap(W1 + timedelta(days=3), "A", 20),  # A's latest in W1; B carries forward 100
            snap(W0, "A", 999),  # after W1's Sunday: ignored for W1
        ],
        stg_sales_orders=[so(1, W1, 70, 70, W1, sku="A"), so(2, W2, 14, 14, W2 + timedelta(days=1), sku="B")],
    )


def test_inventory_value_days_of_supply_and_turns():
    conn = inventory_warehouse()
    value = metrics.inventory_value(conn, AS_OF)
    assert pick(value, W2).value == pytest.approx(10 * 50 + 100 * 5)   # 1000
    assert pick(value, W1).value == pytest.approx(20 * 50 + 100 * 5)   # 1500
    assert pick(value, W1, "product_family", "parts").value == pytest.approx(500)

    dos = metrics.days_of_supply(conn, AS_OF)
    assert pick(dos, W1).value == pytest.approx(120 / (70 / 7))  # 120 units on hand, 10 a day
    assert pick(dos, W2).value == pytest.approx(110 / (14 / 7))
    with pytest.raises(AssertionError):  # bikes had no demand in W2: no row
        pick(dos, W2, "product_family", "bikes")

    turns = metrics.inventory_turns(conn, AS_OF)
    # W2 (first week, n=1): COGS 14*5 = 70 -> 70*52 / 1000 = 3.64
    assert pick(turns, W2).value == pytest.approx(70 * 52 / 1000)
    # W1 (n=2): COGS 70 + 70*50 = 3570, annualised 3570*52/2; avg inventory (1000+1500)/2
    assert pick(turns, W1).value == pytest.approx(3570 * 52 / 2 / 1250)
    assert pick(turns, W1).denominator == pytest.approx(1250)


def test_inventory_turns_of_a_scope_start_at_its_own_first_snapshot():
    """DC-2 (B, family parts) is first counted in W1, a week after the network: W2 is unknown stock there, not
    zero (which would halve its average inventory), and its W2 COGS stays out of the window with it, also in the
    total; STORE-1 sells but is never counted: no COGS of its anywhere."""
    snap = lambda d, sku, loc, qty: {"snapshot_date": d, "sku_id": sku, "location_id": loc,  # noqa: E731
                                     "on_hand_qty": qty, "quality_hold_qty": 0.0}
    conn = make_warehouse(
        stg_inventory_snapshots=[snap(W2 + timedelta(days=6), "A", "DC-1", 10),
                                 snap(W1 + timedelta(days=2), "B", "DC-2", 60)],
        stg_sales_orders=[so(1, W2, 8, 8, W2, sku="B", loc="DC-2"), so(2, W1, 10, 10, W1, sku="B", loc="DC-2"),
                          so(3, W1, 90, 90, W1, sku="A", loc="STORE-1")],
    )
    turns = metrics.inventory_turns(conn, AS_OF)
    for scope_type, scope_id in (("location", "DC-2"), ("product_family", "parts")):
        dc2 = pick(turns, W1, scope_type, scope_id)  # n = 1: COGS 10 x 5 = 50, inventory 60 x 5 = 300
        assert (dc2.numerator, dc2.denominator) == (50 * 52, 300)
        assert dc2.value == pytest.approx(50 * 52 / 300)
    # the network had stock in both weeks: n = 2; COGS 50 (DC-2 in W1 only), inventory 500 then 800
    total = pick(turns, W1)
    assert (total.numerator, total.denominator) == (50 * 52 / 2, 650)
    assert "STORE-1" not in set(turns.scope_id)
    assert set(turns[turns.scope_id == "DC-2"].week_start) == {W1}


def test_days_of_supply_leaves_out_demand_where_stock_is_unknown():
    """STORE-1 sells but is never counted, and parts at DC-1 are first counted in W1: their demand has no known
    stock beside it (no row, not 0 days), and the total covers only the stock it knows."""
    snap = lambda d, sku, qty: {"snapshot_date": d, "sku_id": sku, "location_id": "DC-1",  # noqa: E731
                                "on_hand_qty": qty, "quality_hold_qty": 0.0}
    conn = make_warehouse(
        stg_inventory_snapshots=[snap(W2 + timedelta(days=1), "A", 35), snap(W1 + timedelta(days=1), "B", 40)],
        stg_sales_orders=[so(1, W2, 19, 19, W2, sku="A"), so(2, W2, 7, 7, W2, sku="B"),
                          so(3, W1, 7, 7, W1, sku="A"), so(4, W1, 14, 14, W1, sku="B"),
                          so(5, W1, 70, 70, W1, sku="A", loc="STORE-1")],
    )
    dos = metrics.days_of_supply(conn, AS_OF)
    assert set(dos.scope_id.dropna()) == {"DC-1", "bikes", "parts"}  # no row for the store
    assert set(dos[dos.scope_id == "parts"].week_start) == {W1}  # parts' stock is unknown in W2
    # bikes only: B's 7 units have no stock beside them; a day's demand, 19 / 7, is no decimal: the value is exact
    assert pick(dos, W2).value == 35 / (19 / 7)
    assert pick(dos, W1).value == pytest.approx((35 + 40) / ((7 + 14) / 7))  # the store's 70 left out
    assert pick(dos, W1, "product_family", "bikes").value == pytest.approx(35 / (7 / 7))


def test_weekly_stock_takes_each_sku_locations_latest_snapshot_and_starts_with_its_first():
    snap = lambda d, sku, loc, qty: {"snapshot_date": d, "sku_id": sku, "location_id": loc,  # noqa: E731
                                     "on_hand_qty": qty, "quality_hold_qty": 0.0}
    conn = make_warehouse(stg_inventory_snapshots=[
        snap(W2 + timedelta(days=1), "A", "DC-1", 10),
        snap(W1 + timedelta(days=1), "A", "DC-1", 30),
        snap(W1 + timedelta(days=4), "A", "DC-1", 40),  # the later of two in W1 wins
        snap(W2 + timedelta(days=2), "A", "DC-2", 7),   # another location: carried forward into W1
        snap(W1 + timedelta(days=6), "B", "DC-1", 60),  # B (parts) first counted on W1's Sunday
        snap(W0, "B", "DC-1", 999),                     # the current week: never reported
    ])
    value = metrics.inventory_value(conn, AS_OF)
    assert pick(value, W2).value == pytest.approx((10 + 7) * 50)
    assert pick(value, W1).value == pytest.approx((40 + 7) * 50 + 60 * 5)
    assert pick(value, W1, "location", "DC-1").value == pytest.approx(40 * 50 + 60 * 5)
    assert pick(value, W1, "location", "DC-2").value == pytest.approx(7 * 50)
    assert pick(value, W1, "product_family", "parts").value == pytest.approx(60 * 5)
    with pytest.raises(AssertionError):  # no parts in stock before B's first snapshot: no row, not a zero
        pick(value, W2, "product_family", "parts")
    assert set(value.week_start) == {W2, W1}


def test_compute_kpis_long_format_and_no_nan():
    conn = forecast_warehouse()
    frame = metrics.compute_kpis(conn, AS_OF)
    metrics.write_plan_vs_actual(conn, AS_OF, "main.shared_plan_vs_actual")  # as the Dagster asset does
    pd.testing.assert_frame_equal(metrics.compute_kpis(conn, AS_OF, "main.shared_plan_vs_actual"), frame)
    assert list(frame.columns) == [*metrics.KPI_COLUMNS, "as_of"]
    assert set(frame.scope_type) == {"total", "product_family", "location"}
    assert not any(math.isnan(v) or math.isinf(v) for v in frame.value)
    assert (frame.week_start <= AS_OF - timedelta(days=6)).all()


def test_inventory_turns_cogs_is_capped_shipped_units_by_ship_date_plus_pos_over_13_weeks():
    """COGS = min(shipped, ordered) x unit_cost of non-cancelled lines by ship_date + POS qty x unit_cost by
    sale_date, over W and the 12 weeks before it (README, "Definitions"). A@DC-1 holds 100 units (value 5,000)
    from 15 weeks before W1, so W1's window has 13 stocked weeks."""
    first = W1 - timedelta(weeks=15) + timedelta(days=2)
    conn = make_warehouse(
        stg_inventory_snapshots=[{"snapshot_date": first, "sku_id": "A", "location_id": "DC-1", "on_hand_qty": 100.0,
                                  "quality_hold_qty": 0.0}],
        stg_sales_orders=[
            so(1, W1 + timedelta(days=1), 10, 12, W1 + timedelta(days=1)),             # over-shipped: 10 x 50
            so(2, W1 + timedelta(days=2), 10, 5, W1 + timedelta(days=2), "cancelled"),  # cancelled: no COGS
            so(3, W1 + timedelta(days=2), 8, 8, W0 + timedelta(days=1)),              # shipped after W1: not in it
            so(4, W1 - timedelta(weeks=13), 6, 6, W1 - timedelta(weeks=13)),           # 14th week back: outside
        ],
        stg_pos_sales=[{"sale_date": W1 + timedelta(days=3), "sku_id": "A", "location_id": "DC-1", "qty": 4.0}],
    )
    total = pick(metrics.inventory_turns(conn, AS_OF), W1)
    # COGS 10 x 50 + 4 x 50 = 700 over n = 13 weeks, annualised 700 x 52 / 13 = 2,800; inventory 5,000
    assert (total.numerator, total.denominator) == (pytest.approx(700 * 52 / 13), pytest.approx(5000))
    assert total.value == pytest.approx(2800 / 5000)


# --- end to end: the real pipeline on the minimal network -----------------------------------


def test_kpi_weekly_end_to_end_on_minimal_network(tmp_path):
    from tests.support import minimal_network, monday, run_soe, write_landing_zone

    network = minimal_network()
    orders = {row["order_id"]: row for row in network["sales_orders"]}
    late = orders["SO-SKU-A-DC-1--1"]  # week -1: shipped in full, one day late
    late["ship_date"] = (date.fromisoformat(late["promised_date"]) + timedelta(days=1)).isoformat()
    orders["SO-SKU-B-DC-1--2"]["shipped_qty"] = 100.0  # week -2: partial, on time
    cancelled = orders["SO-SKU-A-DC-2--3"]  # week -3: cancelled, not shipped
    cancelled.update(status="cancelled", shipped_qty=0.0, ship_date="")
    run = run_soe(tmp_path, write_landing_zone(tmp_path / "landing", network))
    # Only the KPI stage is under test: later stages (publish, responses) need not succeed for its table.
    tables = set(run.query("SELECT table_schema || '.' || table_name AS t FROM information_schema.tables").t)
    assert "marts.kpi_weekly" in tables, f"kpi_weekly not built (run ok: {run.ok})"

    kpis = run.query("SELECT * FROM marts.kpi_weekly")
    kpis["week_start"] = pd.to_datetime(kpis["week_start"]).dt.date

    def value(kpi: str, week: int, scope_type: str = "total", scope_id: str | None = None) -> float:
        return pick(kpis[kpis.kpi_name == kpi], monday(week), scope_type, scope_id).value

    # 8 past weeks (-8..-1) of 3 lines each; week 0 has not ended.
    assert sorted(kpis[kpis.kpi_name == "otif_line_rate"].week_start.unique()) == [monday(w) for w in range(-8, 0)]
    assert value("otif_line_rate", -1) == pytest.approx(2 / 3)
    assert value("otif_line_rate", -1, "location", "DC-1") == pytest.approx(1 / 2)
    assert value("fill_rate_units", -1) == pytest.approx(210 / 280)
    assert value("otif_line_rate", -2) == pytest.approx(2 / 3)
    assert value("fill_rate_units", -2) == pytest.approx(240 / 280)
    assert value("fill_rate_units", -2, "product_family", "parts") == pytest.approx(100 / 140)
    assert value("otif_line_rate", -3) == 1.0  # the cancelled line is not counted
    assert value("otif_line_rate", -4) == 1.0
    # Plan = actual except week -3, where A@DC-2 had its only line cancelled: actual 0 against plan 70.
    assert value("forecast_wape", -4) == 0.0
    assert value("forecast_wape", -3) == pytest.approx(70 / 210)
    assert value("forecast_bias", -3) == pytest.approx(70 / 210)
    dc2 = kpis[(kpis.kpi_name == "forecast_bias") & (kpis.scope_id == "DC-2")]
    assert monday(-3) not in set(dc2.week_start)  # DC-2: plan 70, actual 0 -> no row, not a division by zero
    assert monday(-4) in set(dc2.week_start)
    # No past PO, production order or snapshot in the minimal network: those KPIs have no rows.
    assert kpis[kpis.kpi_name.isin(["supplier_on_time_rate", "schedule_adherence", "inventory_value"])].empty
    assert kpis.scope_id[kpis.scope_type == "total"].isna().all()

    # The feedback stage ran on the same warehouse: one week of bias is no pattern; the report is published.
    assert "marts.sop_feedback" in tables
    feedback = run.query("SELECT * FROM marts.sop_feedback")
    assert not feedback.pattern.str.startswith("persistent_").any()
    assert (run.workspace.publish / "sop_report.html").is_file()


def test_sums_are_exact_so_a_rerun_repeats_every_digit():
    """Fractional units and money summed as DOUBLE depend on the order DuckDB's threads add them up in (ten
    0.1s make 0.9999999999999999 one way, 1.0 another); summed exactly they make 1.0 in any order."""
    snapshots = [{"snapshot_date": W1, "sku_id": "B", "location_id": f"DC-{i}", "on_hand_qty": 0.02,
                  "quality_hold_qty": 0.0} for i in range(10)]
    lines = [so(i, W1 + timedelta(days=1), 0.1, 0.1, W1 + timedelta(days=1), sku="B", loc=f"DC-{i}")
             for i in range(10)]
    conn = make_warehouse(stg_inventory_snapshots=snapshots, stg_sales_orders=lines)
    assert pick(metrics.inventory_value(conn, AS_OF), W1).value == 1.0  # ten times 0.02 units at 5
    fill = pick(metrics.fill_rate_units(conn, AS_OF), W1)
    assert (fill.numerator, fill.denominator, fill.value) == (1.0, 1.0, 1.0)
