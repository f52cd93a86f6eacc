"""The GX suite through the check's read path: only the suite's columns, keys as categoricals."""

from __future__ import annotations

import duckdb

from data_contracts.gx_suites import (
    SUITE_COLUMNS,
    expectation_columns,
    read_sku_location_week,
    sku_location_week_suite,
    validate_sku_location_week,
)


def _mart(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA marts")
    conn.execute("""
        CREATE TABLE marts.sku_location_week AS
        SELECT 'SKU-' || (i % 50) AS sku_id, 'DC-' || (i // 50) AS location_id,
               (DATE '2026-11-16' + INTERVAL (7 * (i % 3)) DAY)::DATE AS week_start, i % 3 AS week_index,
               i % 3 < 2 AS inside_time_fence, DATE '2026-11-18' AS as_of,
               1.0 AS demand_plan_qty, 0.0 AS open_order_qty, 1.0 AS sensed_demand_qty,
               0.0 AS scheduled_receipts_qty, 5.0 AS projected_available_qty, 1.0 AS safety_stock_qty,
               2.0 AS atp_qty, 7.0 AS days_of_supply, 'extra' AS plan_version
        FROM range(150) AS t(i)
    """)


def test_suite_reads_only_listed_columns():
    import great_expectations as gx

    gx.get_context(mode="ephemeral")  # a suite needs an active context
    suite = sku_location_week_suite(13)
    used = set()
    for expectation in suite.expectations:
        fields = expectation.dict()
        named = {fields.get("column")} | set(fields.get("column_list") or [])
        assert set(expectation_columns(expectation)) == named - {None}
        used |= set(expectation_columns(expectation))
    assert used == set(SUITE_COLUMNS)


def test_read_path_passes_a_sound_mart_and_names_what_breaks():
    conn = duckdb.connect()
    _mart(conn)
    frame = read_sku_location_week(conn)
    assert list(frame.columns) == list(SUITE_COLUMNS) and len(frame) == 150
    assert str(frame.sku_id.dtype) == "category" and str(frame.week_start.dtype).startswith("datetime64")
    assert validate_sku_location_week(frame, horizon_weeks=13).success

    conn.execute("UPDATE marts.sku_location_week SET sku_id = NULL WHERE rowid = 1")
    conn.execute("UPDATE marts.sku_location_week SET atp_qty = -1 WHERE rowid = 2")
    conn.execute("UPDATE marts.sku_location_week SET week_index = 13 WHERE rowid = 4")
    conn.execute("INSERT INTO marts.sku_location_week SELECT * FROM marts.sku_location_week WHERE rowid = 5")
    outcome = validate_sku_location_week(read_sku_location_week(conn), horizon_weeks=13)
    assert not outcome.success
    text = " ".join(outcome.failed)
    assert "sku_id" in text and "atp_qty" in text and "week_index" in text
    assert "expect_compound_columns_to_be_unique" in text
    assert ": 1 unexpected" in text  # the count of offending rows, not only a verdict
