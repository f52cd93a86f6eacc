"""`dbt build` on a hand-made raw warehouse; marts checked against hand-computed values.

Scenario (as_of = Wednesday 2026-11-18, week 0 = 2026-11-16, 4 days of week 0 ahead):

SKU A at DC1
- snapshot 2026-11-17: on hand 120, quality hold 20 -> available 100
  (an older and a later snapshot are ignored)
- committed plan v2 (committed on as_of afternoon): demand 70/week, safety 30;
  v1 (older) and v3 (committed the day after as_of) are ignored
- PO-1 line 1: promised 11-10, confirmed 11-12, 100 ordered, 40 received, open
  -> 60 late, in week 0
- PO-2 line 1: confirmed 12-02 -> 50 in week 2; PO-3 cancelled -> ignored
- shipment S1 PLANT1 -> DC1, departed 11-17, eta 11-25 (planned 11-24) -> 80 in week 1
- order O1 requested 11-16 (past due), 30 ordered, 10 shipped -> 20 in week 0
- order O2 requested 11-26, 150 -> week 1, above the plan of 70
- shipment S2 DC1 -> STORE1, ships 12-01 (not departed) -> 10 booked in week 2

Hand computation (plan week 0 = 70 * 4/7 = 40):
  week  sensed  receipts  projected   ATP net C(k)
  0     40      60        120         100+60-20 = 140
  1     150     80        50          140+80-150 = 70
  2     70      50        30          70+50-10 = 110
  3+    70      0         30-70*(w-2) 110
  ATP (min over later C, >= 0): 70, 70, 110, 110, ...
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pandas as pd
import postgres_server
import pytest
import yaml
from dbt_raw_fixture import build_raw_warehouse
from support import another_process_holding

from soe_assets.run_lock import is_dbt_process, lock_path

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
AS_OF = dt.date(2026, 11, 18)
WEEK0 = dt.date(2026, 11, 16)


def _dbt(args: list[str], warehouse: Path, tmp: Path,
         profiles_dir: Path = DBT_PROJECT_DIR) -> subprocess.CompletedProcess[str]:
    """Run dbt in a subprocess, as Dagster's DbtCliResource does (dbt-duckdb keeps its
    connection open inside the process that ran it)."""
    env = {**os.environ, "SOE_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            *args,
            "--project-dir", str(DBT_PROJECT_DIR),
            "--profiles-dir", str(profiles_dir),
            "--target-path", str(tmp / "target"),
            "--log-path", str(tmp / "logs"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

def _scenario() -> dict[str, pd.DataFrame]:
    plan_rows = []
    for version, committed_at, demand in [
        ("v1", "2026-11-01 08:00:00", 50.0),
        ("v2", "2026-11-18 15:00:00", 70.0),
        ("v3", "2026-11-19 09:00:00", 999.0),
    ]:
        for week in range(-2, 13):
            plan_rows.append(
                {
                    "plan_version": version,
                    "committed_at": committed_at,
                    "sku_id": "A",
                    "location_id": "DC1",
                    "week_start": WEEK0 + dt.timedelta(weeks=week),
                    "demand_qty": demand,
                    "supply_qty": 60.0,
                    "safety_stock_qty": 30.0,
                }
            )
    return {
        "skus": pd.DataFrame(
            {
                "sku_id": ["A", "B"],
                "product_family": ["F1", "F2"],
                "unit_cost": [2.0, 3.0],
                "unit_price": [5.0, 7.0],
            }
        ),
        "locations": pd.DataFrame(
            {
                "location_id": ["PLANT1", "DC1", "STORE1", "STORE2"],
                "location_type": ["plant", "dc", "store", "store"],
                "region": ["EU", "EU", "EU", "EU"],
            }
        ),
        "lanes": pd.DataFrame(
            {
                "from_location_id": ["PLANT1", "DC1"],
                "to_location_id": ["DC1", "STORE1"],
                "transit_days": [7, 2],
                "cost_per_unit": [0.5, 0.2],
            }
        ),
        "sop_plan": pd.DataFrame(plan_rows),
        "inventory_snapshots": pd.DataFrame(
            {
                "snapshot_date": ["2026-11-10", "2026-11-17", "2026-11-19", "2026-11-17", "2026-11-17"],
                "sku_id": ["A", "A", "A", "B", "B"],
                "location_id": ["DC1", "DC1", "DC1", "STORE1", "DC1"],
                "on_hand_qty": [50.0, 120.0, 500.0, 5.0, 0.0],
                "quality_hold_qty": [0.0, 20.0, 0.0, 0.0, 0.0],
            }
        ),
        "purchase_orders": pd.DataFrame(
            {
                "po_id": ["PO-1", "PO-2", "PO-3"],
                "line_no": [1, 1, 1],
                "supplier_id": ["SUP1", "SUP1", "SUP2"],
                "sku_id": ["A", "A", "A"],
                "location_id": ["DC1", "DC1", "DC1"],
                "order_date": ["2026-10-01", "2026-11-01", "2026-11-01"],
                "promised_date": ["2026-11-10", "2026-12-02", "2026-11-20"],
                "confirmed_date": ["2026-11-12", "2026-12-02", "2026-11-20"],
                "ordered_qty": [100.0, 50.0, 70.0],
                "received_qty": [40.0, 0.0, 0.0],
                "received_date": ["2026-11-12", None, None],
                "status": ["open", "open", "cancelled"],
            }
        ),
        "production_orders": pd.DataFrame(
            {
                "production_order_id": ["MO-1"],
                "sku_id": ["A"],
                "location_id": ["PLANT1"],
                "resource_id": ["R1"],
                "planned_start_date": ["2026-12-01"],
                "planned_finish_date": ["2026-12-09"],
                "planned_qty": [200.0],
                "completed_qty": [50.0],
                "actual_finish_date": [None],
                "status": ["in_progress"],
            }
        ),
        "shipments": pd.DataFrame(
            {
                "shipment_id": ["S1", "S2", "S3"],
                "sku_id": ["A", "A", "A"],
                "from_location_id": ["PLANT1", "DC1", "PLANT1"],
                "to_location_id": ["DC1", "STORE1", "STORE1"],
                "ship_date": ["2026-11-17", "2026-12-01", "2026-11-10"],
                "planned_arrival_date": ["2026-11-24", "2026-12-03", "2026-11-14"],
                "eta_date": ["2026-11-25", "2026-12-03", "2026-11-14"],
                "actual_arrival_date": [None, None, "2026-11-14"],
                "qty": [80.0, 10.0, 25.0],
            }
        ),
        "sales_orders": pd.DataFrame(
            {
                "order_id": ["O1", "O2", "O3", "O4", "O5"],
                "line_no": [1, 1, 1, 1, 1],
                "customer_id": ["C1", "C2", "C1", "C3", "C4"],
                "sku_id": ["A", "A", "A", "B", "A"],
                "location_id": ["DC1", "DC1", "DC1", "STORE1", "STORE2"],
                "order_date": ["2026-11-01", "2026-11-10", "2026-11-01", "2026-11-15", "2026-11-02"],
                "requested_date": ["2026-11-16", "2026-11-26", "2026-11-12", "2026-11-20", "2026-11-09"],
                "promised_date": ["2026-11-16", "2026-11-26", "2026-11-12", "2026-11-20", "2026-11-09"],
                "ordered_qty": [30.0, 150.0, 40.0, 8.0, 6.0],
                "shipped_qty": [10.0, 0.0, 40.0, 0.0, 6.0],
                "ship_date": ["2026-11-16", None, "2026-11-12", None, "2026-11-09"],
                "status": ["open", "open", "shipped", "open", "shipped"],
            }
        ),
        "pos_sales": pd.DataFrame(
            {"sale_date": ["2026-11-12"], "sku_id": ["B"], "location_id": ["STORE2"], "qty": [3.0]}
        ),
        "quarantine": pd.DataFrame(
            {
                "source": ["sales_orders"],
                "file": ["2026-11-18.csv"],
                "row_number": [7],
                "column": ["ordered_qty"],
                "reason": ["ordered_qty must be > 0"],
                "raw_record": ['{"order_id": "O9", "ordered_qty": "-1"}'],
                "detected_at": [pd.Timestamp("2026-11-18 06:00:00")],
            }
        ),
    }


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("dbt_trusted_view")
    path = build_raw_warehouse(tmp / "warehouse.duckdb", _scenario(), as_of=AS_OF)
    completed = _dbt(["build"], path, tmp)
    assert completed.returncode == 0, completed.stdout[-5000:] + completed.stderr[-2000:]
    return path


def _query(path: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).df()


@pytest.fixture(scope="module")
def dc1_a(warehouse: Path) -> pd.DataFrame:
    frame = _query(
        warehouse,
        "select * from marts.sku_location_week "
        "where sku_id = 'A' and location_id = 'DC1' order by week_index",
    )
    return frame.set_index("week_index")


def test_grain_covers_every_sku_location_with_activity(warehouse: Path) -> None:
    pairs = _query(
        warehouse,
        "select sku_id, location_id, count(*) as weeks, min(week_start) as first_week, "
        "min(as_of) as as_of from marts.sku_location_week group by all order by all",
    )
    # DC1/A: plan+stock+orders+supply; PLANT1/A: production; STORE1/A: transfer S2
    # inbound; STORE1/B: stock and an order; STORE2 serves customers with nothing ahead:
    # A a shipped order only, B a POS sale only. DC1/B was counted empty: not in the view.
    assert list(zip(pairs.sku_id, pairs.location_id)) == [
        ("A", "DC1"), ("A", "PLANT1"), ("A", "STORE1"), ("A", "STORE2"), ("B", "STORE1"), ("B", "STORE2"),
    ]
    assert set(pairs.weeks) == {13}
    assert set(pd.to_datetime(pairs.first_week).dt.date) == {WEEK0}
    assert set(pd.to_datetime(pairs.as_of).dt.date) == {AS_OF}


def test_week_zero_starts_from_available_stock_net_of_quality_hold(dc1_a: pd.DataFrame) -> None:
    week0 = dc1_a.loc[0]
    assert week0.available_stock_qty == 100
    assert week0.quality_hold_qty == 20
    assert week0.opening_available_qty == pytest.approx(100)


def test_committed_plan_is_the_latest_committed_by_end_of_as_of(dc1_a: pd.DataFrame) -> None:
    assert set(dc1_a.plan_version) == {"v2"}
    assert set(dc1_a.demand_plan_qty) == {70}
    assert set(dc1_a.safety_stock_qty) == {30}


def test_receipts_by_week(dc1_a: pd.DataFrame) -> None:
    # late PO remainder in week 0, in-transit shipment by eta in week 1, PO-2 in week 2
    assert dc1_a.scheduled_receipts_qty.head(4).tolist() == [60, 80, 50, 0]
    assert dc1_a.po_receipts_qty.head(3).tolist() == [60, 0, 50]
    assert dc1_a.transfer_receipts_qty.head(3).tolist() == [0, 80, 0]
    assert dc1_a.late_receipts_qty.head(3).tolist() == [60, 80, 0]


def test_sensed_demand_consumes_the_plan(dc1_a: pd.DataFrame) -> None:
    assert dc1_a.open_order_qty.head(4).tolist() == [20, 150, 10, 0]
    assert dc1_a.booked_transfer_out_qty.head(3).tolist() == [0, 0, 10]
    assert dc1_a.past_due_order_qty.head(2).tolist() == [20, 0]
    assert dc1_a.sensed_demand_qty.head(4).tolist() == pytest.approx([40, 150, 70, 70])


def test_projected_available(dc1_a: pd.DataFrame) -> None:
    expected = [120, 50, 30] + [30 - 70 * (w - 2) for w in range(3, 13)]
    assert dc1_a.projected_available_qty.tolist() == pytest.approx(expected)


def test_cumulative_atp_with_backward_netting(dc1_a: pd.DataFrame) -> None:
    assert dc1_a.atp_qty.tolist() == pytest.approx([70, 70] + [110] * 11)


def test_days_of_supply(dc1_a: pd.DataFrame) -> None:
    following_daily = (150 + 70 * 11) / (12 * 7)
    assert dc1_a.loc[0, "days_of_supply"] == pytest.approx(120 / following_daily)
    assert dc1_a.loc[3, "days_of_supply"] == 0  # shortage


def test_inside_time_fence(dc1_a: pd.DataFrame) -> None:
    assert dc1_a.inside_time_fence.tolist() == [True] * 4 + [False] * 9


def test_plant_projection_has_production_and_no_departed_transfer(warehouse: Path) -> None:
    plant = _query(
        warehouse,
        "select week_index, scheduled_receipts_qty, open_order_qty, projected_available_qty "
        "from marts.sku_location_week where sku_id = 'A' and location_id = 'PLANT1' "
        "order by week_index",
    )
    assert plant.scheduled_receipts_qty.head(4).tolist() == [0, 0, 0, 150]
    assert plant.open_order_qty.sum() == 0  # S1 already departed: history
    assert plant.projected_available_qty.iloc[-1] == 150


def test_reconciliation_findings(warehouse: Path) -> None:
    findings = _query(
        warehouse,
        "select finding_type, source, reference_id, sku_id, location_id "
        "from marts.reconciliation_findings order by all",
    )
    assert findings.values.tolist() == [
        ["receipt_not_in_snapshot", "shipments", "S3", "A", "STORE1"],
        ["sales_order_without_plan", "sales_orders", "O4:1", "B", "STORE1"],
        ["shipment_without_lane", "shipments", "S3", "A", "STORE1"],
    ]


def test_data_quality_issues_publish_the_quarantine(warehouse: Path) -> None:
    issues = _query(warehouse, "select * from marts.data_quality_issues")
    assert issues[["source", "file", "row_number", "column"]].values.tolist() == [
        ["sales_orders", "2026-11-18.csv", 7, "ordered_qty"]
    ]
    assert pd.Timestamp(issues.as_of.iloc[0]).date() == AS_OF


def test_reconciliation_findings_are_dated_and_counted_as_documented(warehouse: Path) -> None:
    """docs/columns.md: a receipt is dated by its arrival, a shipment without a lane by its ship date, an open
    order line by its requested date; qty is received, shipped or the open remainder; every row has the run's day."""
    findings = _query(
        warehouse,
        "select finding_type, reference_id, event_date, qty, as_of from marts.reconciliation_findings order by all",
    )
    assert [(row.finding_type, row.reference_id, pd.Timestamp(row.event_date).date(), row.qty,
             pd.Timestamp(row.as_of).date()) for row in findings.itertuples()] == [
        ("receipt_not_in_snapshot", "S3", dt.date(2026, 11, 14), 25, AS_OF),
        ("sales_order_without_plan", "O4:1", dt.date(2026, 11, 20), 8, AS_OF),
        ("shipment_without_lane", "S3", dt.date(2026, 11, 10), 25, AS_OF),
    ]


def test_data_quality_issues_keep_the_rejected_row_as_received(warehouse: Path) -> None:
    """The quarantine's reason, raw record and detection time reach the mart unchanged (marts.md)."""
    issue = _query(warehouse, "select reason, raw_record, detected_at from marts.data_quality_issues").iloc[0]
    assert issue.reason == "ordered_qty must be > 0"
    assert issue.raw_record == '{"order_id": "O9", "ordered_qty": "-1"}'
    assert pd.Timestamp(issue.detected_at) == pd.Timestamp("2026-11-18 06:00:00")


def test_staging_passes_every_raw_column_through_under_its_own_name(tmp_path: Path) -> None:
    """Each staging view is its raw table renamed (`_file` -> source_file, `_extract_date` -> extract_date) with
    the same types: no column read from a neighbour, no quantity truncated, no time of day dropped, an empty
    value kept empty. Every date, quantity and timestamp of the raw rows is made distinct first (the scenario
    has, say, requested = promised dates), and the quarantine gains a file rejected whole (no row number)."""
    path = build_raw_warehouse(tmp_path / "distinct.duckdb", _scenario(), as_of=AS_OF)
    with duckdb.connect(str(path)) as conn:
        conn.execute("insert into raw.quarantine values ('shipments', '2026-11-18.csv', null, null, "
                     "'missing column qty', '[\"shipment_id\"]', timestamp '2026-11-18 06:00:01')")
        columns = conn.execute("select table_name, column_name, data_type, ordinal_position "
                               "from information_schema.columns where table_schema = 'raw' "
                               "and table_name <> 'ingest_log' order by table_name, ordinal_position").fetchall()
        for table, column, kind, position in columns:
            if table == "run_context":
                continue
            shift = f"(rowid + {position} * 50)"
            value = {"DATE": f"date '2001-01-01' + cast({shift} as integer)",
                     "DOUBLE": f"{shift} + 0.25",
                     "TIMESTAMP": f"timestamp '2001-01-01 06:30:15' + to_minutes(cast({shift} as bigint))"}.get(kind)
            if value:
                conn.execute(f'update raw.{table} set "{column}" = {value}')
    completed = _dbt(["run", "--select", "path:models/staging"], path, tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:]
    renamed = {"_file": "source_file", "_extract_date": "extract_date"}
    with duckdb.connect(str(path), read_only=True) as conn:
        staged = {(table, column): kind for table, column, kind in conn.execute(
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = 'staging'").fetchall()}
        for table in sorted({table for table, *_ in columns}):
            raw_columns = [(column, kind) for name, column, kind, _ in columns if name == table]
            for column, kind in raw_columns:
                assert staged.get((f"stg_{table}", renamed.get(column, column))) == kind, (table, column)
            from_raw = ", ".join(f'"{column}"' for column, _ in raw_columns)
            from_staging = ", ".join(f'"{renamed.get(column, column)}"' for column, _ in raw_columns)
            differing = conn.execute(
                f"select (select count(*) from (select {from_raw} from raw.{table} "
                f"except all select {from_staging} from staging.stg_{table})), "
                f"(select count(*) from raw.{table}) - (select count(*) from staging.stg_{table})").fetchone()
            assert differing == (0, 0), (table, differing)


def test_staging_tests_fail_on_rows_ingest_should_have_rejected(tmp_path: Path) -> None:
    """The generic tests are real: a duplicated key, an unknown status, an unknown SKU and a
    non-positive quantity each make their test fail."""
    frames = _scenario()
    orders = frames["sales_orders"]
    bad = orders.iloc[[0, 1, 3]].copy()
    bad["status"] = ["open", "bogus", "open"]
    bad["sku_id"] = ["A", "A", "NO-SUCH-SKU"]
    bad["ordered_qty"] = [30.0, 150.0, 0.0]
    frames["sales_orders"] = pd.concat([orders, bad], ignore_index=True)
    path = build_raw_warehouse(tmp_path / "bad.duckdb", frames, as_of=AS_OF)
    completed = _dbt(["build", "--select", "stg_skus", "stg_locations", "stg_sales_orders"], path, tmp_path)
    assert completed.returncode != 0
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    failed = {r["unique_id"].split(".")[2] for r in results if r["status"] == "fail"}
    assert failed == {
        "unique_combination_of_columns_stg_sales_orders_order_id__line_no",
        "accepted_values_stg_sales_orders_status__open__shipped__cancelled",
        "relationships_stg_sales_orders_sku_id__sku_id__ref_stg_skus_",
        "accepted_range_stg_sales_orders_ordered_qty__False__0",
    }


def test_mart_contracts_enforce_not_null_in_the_warehouse(warehouse: Path) -> None:
    """The marts' not_null rules are constraints the table itself enforces, not after-the-fact tests."""
    columns = _query(warehouse, """
        select table_name, column_name, is_nullable from information_schema.columns
        where table_schema = 'marts' and table_name in ('sku_location_week', 'reconciliation_findings')
    """).set_index(["table_name", "column_name"])["is_nullable"]
    assert columns[("sku_location_week", "sku_id")] == "NO"
    assert columns[("sku_location_week", "projected_available_qty")] == "NO"
    assert columns[("sku_location_week", "stock_snapshot_date")] == "YES"  # no snapshot: no date
    with duckdb.connect(str(warehouse)) as conn, pytest.raises(duckdb.ConstraintException):
        conn.execute("insert into marts.sku_location_week (sku_id) values (NULL)")


def test_intermediate_table_contracts_enforce_their_rules(warehouse: Path) -> None:
    """The intermediate tables enforce their rules as constraints: a NULL key, an unknown kind, a repeated
    horizon week are refused, so they fail the build."""
    keys = {"int_committed_plan": ["sku_id", "location_id", "week_start"],
            "int_available_stock": ["sku_id", "location_id"],
            "int_open_supply": ["supply_kind", "reference_id", "sku_id", "location_id", "due_date", "week_index"],
            "int_booked_demand": ["demand_kind", "reference_id", "sku_id", "location_id", "week_index"]}
    columns = _query(warehouse, """
        select table_name, column_name from information_schema.columns
        where table_schema = 'intermediate' and is_nullable = 'NO'
    """).groupby("table_name")["column_name"].apply(set)
    for table, key in keys.items():
        assert set(key) <= columns[table], table
    refused = {
        "NOT NULL": "insert into intermediate.int_open_supply (supply_kind) values (NULL)",
        "CHECK": "insert into intermediate.int_open_supply "
                 "select * replace ('gift' as supply_kind) from intermediate.int_open_supply limit 1",
        "Duplicate key": "insert into intermediate.int_run_weeks "
                         "select * replace (week_start + 7 * horizon_weeks as week_start) "
                         "from intermediate.int_run_weeks limit 1",
    }
    with duckdb.connect(str(warehouse)) as conn:
        for reason, sql in refused.items():
            with pytest.raises(duckdb.ConstraintException, match=reason):
                conn.execute(sql)


def test_the_projection_and_atp_rules_test_names_each_broken_rule(warehouse: Path, tmp_path: Path) -> None:
    """The singular test fails on a mart whose weeks do not chain or whose ATP falls, naming each rule."""
    import shutil

    broken = tmp_path / "broken.duckdb"
    shutil.copy(warehouse, broken)
    with duckdb.connect(str(broken)) as conn:
        key = list(conn.execute("select sku_id, location_id from marts.sku_location_week "
                                "where week_index = 5 and atp_qty > 0 order by all limit 1").fetchone())
        conn.execute("update marts.sku_location_week set projected_available_qty = projected_available_qty + 5 "
                     "where sku_id = ? and location_id = ? and week_index = 2", key)
        conn.execute("update marts.sku_location_week set atp_qty = 0 "
                     "where sku_id = ? and location_id = ? and week_index = 6", key)
    completed = _dbt(["test", "--select", "assert_projection_and_atp_rules", "--store-failures"], broken, tmp_path)
    assert completed.returncode == 1, completed.stdout[-3000:]
    failures = _query(broken, "select sku_id, location_id, week_index, broken_rule "
                              "from dbt_test__audit.assert_projection_and_atp_rules order by week_index")
    assert list(failures.itertuples(index=False, name=None)) == [
        (*key, 2, "closing is not opening + receipts - sensed demand"),
        (*key, 3, "the week does not open where the previous one closed"),
        (*key, 6, "ATP decreases from the previous week"),
    ]


def test_the_projection_rules_hold_for_huge_quantities(warehouse: Path, tmp_path: Path) -> None:
    """An order of 1e11 units is contract-valid; its balances are doubles exact to ~1e-5, so the rules compare
    them within a tolerance relative to the quantities, not an absolute 1e-6 that failed the run."""
    import shutil

    huge = tmp_path / "huge.duckdb"
    shutil.copy(warehouse, huge)
    with duckdb.connect(str(huge)) as conn:
        scaled = ("available_stock_qty", "opening_available_qty", "projected_available_qty", "atp_qty",
                  "scheduled_receipts_qty", "sensed_demand_qty")  # every rule is linear in them: it still holds
        conn.execute("update marts.sku_location_week set "
                     + ", ".join(f"{column} = {column} * (1e9 / 7)" for column in scaled))
        drift = conn.execute("select max(abs(opening_available_qty + scheduled_receipts_qty - sensed_demand_qty "
                             "- projected_available_qty)) from marts.sku_location_week").fetchone()[0]
    assert drift > 1e-6  # what the absolute tolerance refused
    completed = _dbt(["test", "--select", "assert_projection_and_atp_rules"], huge, tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:]


def test_the_trusted_view_refuses_values_outside_its_ranges(warehouse: Path) -> None:
    """The mart's value ranges are check constraints of its contract: a row breaking one is never stored."""
    checks = _query(warehouse, """
        select constraint_text from duckdb_constraints()
        where schema_name = 'marts' and table_name = 'sku_location_week' and constraint_type = 'CHECK'
    """)["constraint_text"]
    assert len(checks) == 9, list(checks)
    breaks = {
        "atp_qty": "-1.0", "days_of_supply": "1000.0", "week_index": "999", "scheduled_receipts_qty": "-0.5",
        "sensed_demand_qty": "open_order_qty / 2",  # not negative, but below the booked orders
    }
    with duckdb.connect(str(warehouse)) as conn:
        assert conn.execute("select count(*) from marts.sku_location_week where open_order_qty > 0").fetchone()[0]
        for column, value in breaks.items():
            with pytest.raises(duckdb.ConstraintException, match="CHECK"):
                conn.execute(f"insert into marts.sku_location_week select * replace ({value} as {column}) "
                             "from marts.sku_location_week where open_order_qty > 0 limit 1")


def test_ci_builds_the_tests_a_run_leaves_out(warehouse: Path) -> None:
    """The full build above ran (and passed) the unit tests and the staging tests that restate the
    landing contract; a run's dbt step selects neither, but keeps the other tests as asset checks."""
    from orchestration.dbt import soe_dbt_models

    target = warehouse.parent / "target"
    results = json.loads((target / "run_results.json").read_text())["results"]
    passed = {r["unique_id"] for r in results if r["status"] == "pass"}
    nodes = json.loads((target / "manifest.json").read_text())["nodes"]
    landing_contract = {uid for uid, node in nodes.items() if "landing_contract" in node.get("tags", [])}
    assert len(landing_contract) >= 50 and landing_contract <= passed
    unit_tests = set(json.loads((target / "manifest.json").read_text())["unit_tests"])
    assert len(unit_tests) >= 4 and unit_tests <= passed
    checks = {key.name for key in soe_dbt_models.check_keys}
    assert not checks & {nodes[uid]["name"] for uid in landing_contract}
    assert {"sku_location_week", "int_open_supply"} <= {key.asset_key.path[-1] for key in soe_dbt_models.check_keys}


POSTGRES_UNAVAILABLE = postgres_server.unavailable_reason()


def test_every_model_and_unit_test_name_fits_a_postgres_identifier() -> None:
    """dbt names a unit test's relation after the test and a model's after the model: Postgres refuses a name
    over 63 bytes, so the project would build here and fail there (checked even where no Postgres runs)."""
    names = [path.stem for path in (DBT_PROJECT_DIR / "models").rglob("*.sql")]
    for properties in (DBT_PROJECT_DIR / "models").rglob("*.yml"):
        names += [test["name"] for test in (yaml.safe_load(properties.read_text()) or {}).get("unit_tests", [])]
    assert len(names) > 40
    assert [name for name in names if len(name.encode()) > 63] == []


@pytest.mark.skipif(POSTGRES_UNAVAILABLE is not None, reason=POSTGRES_UNAVAILABLE or "")
def test_the_project_builds_the_same_tables_on_postgres(warehouse: Path, tmp_path: Path) -> None:
    """Portability, checked on a second engine: from the same raw tables, `dbt build` on Postgres passes every
    unit, data and contract test and builds every intermediate table and mart row for row as DuckDB did."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        built = con.execute("select table_schema || '.' || table_name from information_schema.tables "
                            "where table_schema in ('intermediate', 'marts') and table_type = 'BASE TABLE' "
                            "order by 1").fetchall()
    assert {"marts.sku_location_week", "marts.reconciliation_findings", "intermediate.int_open_supply"} <= {
        name for (name,) in built}

    with postgres_server.throwaway_postgres() as server:
        assert postgres_server.copy_raw_schema(warehouse, server, tmp_path)
        (profiles / "profiles.yml").write_text(json.dumps({"soe": {"target": "postgres", "outputs": {"postgres": {
            "type": "postgres", "host": server.host, "port": server.port, "user": postgres_server.USER,
            "password": "", "dbname": "postgres", "schema": "public", "threads": 2}}}}))
        completed = _dbt(["build"], warehouse, tmp_path, profiles_dir=profiles)
        assert completed.returncode == 0, completed.stdout[-5000:] + completed.stderr[-2000:]
        results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
        assert len(results) > 100 and all(result["status"] in ("pass", "success") for result in results)
        for (table,) in built:
            postgres_server.dump_table(server, table, tmp_path / f"{table}.csv")

    with duckdb.connect(str(warehouse), read_only=True) as con:
        for (table,) in built:
            schema, name = table.split(".")
            columns = con.execute("select column_name, data_type from information_schema.columns "
                                  "where table_schema = ? and table_name = ? order by ordinal_position",
                                  [schema, name]).fetchall()
            # Doubles compared to 1e-9: the two engines may sum in different orders.
            values = ", ".join(f'round("{column}", 9)' if kind == "DOUBLE" else f'"{column}"'
                               for column, kind in columns)
            types = ", ".join(f"'{column}': '{kind}'" for column, kind in columns)
            on_postgres = f"select {values} from read_csv('{tmp_path / f'{table}.csv'}', header = true, " \
                          f"columns = {{{types}}})"
            on_duckdb = f"select {values} from {table}"
            rows = con.execute(f"select count(*) from {table}").fetchone()[0]
            differing = con.execute(f"select (select count(*) from ({on_postgres} except all {on_duckdb})), "
                                    f"(select count(*) from ({on_duckdb} except all {on_postgres}))").fetchone()
            assert differing == (0, 0), f"{table} ({rows} rows): only on Postgres, only on DuckDB: {differing}"


def test_a_reader_opening_the_warehouse_just_before_dbt_connects_is_retried(tmp_path: Path) -> None:
    """A reader that opens the live file in the seconds between the dbt step's own wait and dbt's connecting:
    dbt retries its connection (the profile's retries) instead of failing the build."""
    path = build_raw_warehouse(tmp_path / "held.duckdb", _scenario(), as_of=AS_OF)
    with another_process_holding(path, 8, read_only=True):
        completed = _dbt(["run", "--select", "stg_skus", "stg_locations"], path, tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert "Could not set lock" not in completed.stdout


def test_the_dbt_step_waits_for_a_reader_holding_the_warehouse_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A reader holding the file for longer than dbt's retries when the dbt step starts: the step waits for it
    (up to a minute, as every step does), says so, then builds."""
    import dagster as dg

    from orchestration.dbt import dbt_resource, soe_dbt_models
    from orchestration.resources import WarehouseResource

    path = build_raw_warehouse(tmp_path / "held.duckdb", _scenario(), as_of=AS_OF)
    monkeypatch.setenv("SOE_WAREHOUSE", str(path))
    with another_process_holding(path, 15, read_only=True) as reader:
        result = dg.materialize([soe_dbt_models], raise_on_error=False, instance=dg.DagsterInstance.ephemeral(),
                                resources={"dbt": dbt_resource(), "warehouse": WarehouseResource(path=str(path))})
    assert result.success
    assert f"{path} is held by another process (PID {reader.pid}): waiting up to 60 s" in capsys.readouterr().err


def test_a_dbt_step_that_fails_while_dbt_builds_stops_dbt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The step fails on dbt's first event (as it did when the loaded manifest lacked a node dbt built): the
    build it no longer follows is stopped, not left holding the warehouse for the next step to wait on."""
    import dagster as dg

    import orchestration.dbt as soe_dbt
    from orchestration.resources import WarehouseResource

    def broken(event: object, threshold: float) -> str | None:
        raise KeyError("a node the manifest lacks")

    path = build_raw_warehouse(tmp_path / "w.duckdb", _scenario(), as_of=AS_OF)
    monkeypatch.setenv("SOE_WAREHOUSE", str(path))
    monkeypatch.setattr(soe_dbt, "slow_node_line", broken)
    result = dg.materialize([soe_dbt.soe_dbt_models], raise_on_error=False, instance=dg.DagsterInstance.ephemeral(),
                            resources={"dbt": soe_dbt.dbt_resource(), "warehouse": WarehouseResource(path=str(path))})
    assert not result.success
    duckdb.connect(str(path)).close()  # no dbt left writing it: the file opens at once


def test_the_manifest_is_stale_after_any_change_to_the_project_s_nodes(tmp_path: Path) -> None:
    """A test added (or a model removed) after the last parse: dbt would build a node the loaded manifest lacks,
    and the dbt step would fail on it, every run, until the project was parsed again."""
    from orchestration.dbt import manifest_is_stale

    project = tmp_path / "project"
    for folder in ("models", "macros", "tests"):
        (project / folder).mkdir(parents=True)
    for path in (project / "dbt_project.yml", project / "profiles.yml", project / "models" / "a.sql",
                 project / "models" / "b.sql"):
        path.write_text("-- a file\n")
    manifest = project / "target" / "manifest.json"
    assert manifest_is_stale(project, manifest)  # never parsed
    manifest.parent.mkdir()
    manifest.write_text("{}")

    def parsed_after_everything() -> None:
        latest = max(path.stat().st_mtime for path in project.rglob("*") if path != manifest)
        os.utime(manifest, (latest + 10, latest + 10))

    parsed_after_everything()
    assert not manifest_is_stale(project, manifest)
    (project / "tests" / "assert_something.sql").write_text("select 1 where false\n")
    os.utime(project / "tests" / "assert_something.sql", (manifest.stat().st_mtime + 5,) * 2)
    assert manifest_is_stale(project, manifest)  # a new test
    parsed_after_everything()
    (project / "models" / "b.sql").unlink()
    os.utime(project / "models", (manifest.stat().st_mtime + 5,) * 2)  # what the removal does to the folder's time
    assert manifest_is_stale(project, manifest)  # a model removed


def _dbt_children_recorded(lock: Path, until: threading.Event) -> set[int]:
    """The dbt processes the run lock names as the run's children (``run_lock.record_child``), read every 20 ms
    until ``until`` is set: what a run killed at that moment would leave for the next run to find."""
    seen: set[int] = set()
    while not until.wait(0.02):
        text = lock.read_text() if lock.exists() else ""
        pids = [int(line.split()[2]) for line in text.splitlines() if line.startswith("child pid ")]
        seen.update(pid for pid in pids if is_dbt_process(pid))  # dbt itself, while it runs
    return seen


def test_the_dbt_step_reports_its_build_records_dbt_and_hands_back_its_parse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the build: the step logs dbt's verdicts, and leaves this build's parse state where the next build on
    the same warehouse starts from (its own target folder is one of the few kept). While dbt builds, the run lock
    names it, so that a run killed meanwhile leaves the next one a trace of the dbt still writing the file."""
    import dagster as dg

    from orchestration.dbt import RUN_TARGETS_KEPT, dbt_project, dbt_resource, soe_dbt_models
    from orchestration.resources import WarehouseResource

    path = build_raw_warehouse(tmp_path / "w.duckdb", _scenario(), as_of=AS_OF)
    monkeypatch.setenv("SOE_WAREHOUSE", str(path))
    handed_back = dbt_project.manifest_path.with_name("partial_parse.msgpack")
    before = handed_back.stat().st_mtime_ns if handed_back.exists() else 0
    instance = dg.DagsterInstance.ephemeral()
    step_ended = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        recorded = pool.submit(_dbt_children_recorded, lock_path(path), step_ended)
        try:
            result = dg.materialize([soe_dbt_models], instance=instance,
                                    resources={"dbt": dbt_resource(), "warehouse": WarehouseResource(path=str(path))})
        finally:
            step_ended.set()
    assert recorded.result(), "no dbt process named in the run lock while dbt built"
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(message.startswith("dbt build: ") and " success" in message for message in messages)
    assert handed_back.stat().st_mtime_ns > before
    assert len(list(dbt_project.manifest_path.parent.glob("soe_dbt_models-*"))) <= RUN_TARGETS_KEPT
