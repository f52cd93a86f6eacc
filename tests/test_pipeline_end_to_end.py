"""The real pipeline (ingest -> dbt build -> Python stages -> publish) on a hand-made landing zone."""

import gc
import io
import json
import re
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from support import (AS_OF, SoeRun, another_process_holding, minimal_network, monday, run_soe,
                     write_landing_zone, write_source)

import orchestration.dbt as dbt_assets_module

CHECK_MARTS = Path(__file__).resolve().parents[2] / "shared" / "tools" / "check_marts.py"
RUN_SPECIFIC_COLUMNS = {"detected_at", "run_id", "published_at"}


def _bad_orders() -> list[dict]:
    base = minimal_network()["sales_orders"][0]
    return [
        {**base, "order_id": "BAD-QTY", "ordered_qty": -5},
        {**base, "order_id": "BAD-SKU", "sku_id": "SKU-GHOST"},
        {**base, "order_id": "OK-LATE-FILE"},
        {**base, "order_id": "BAD-DATE", "requested_date": "31/12/2026"},
    ]


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("e2e") / "landing"
    network = minimal_network()
    write_landing_zone(landing, network)
    plan = pd.DataFrame(network["sop_plan"])
    # An older version and one committed after as_of: neither may be used.
    older = plan.assign(plan_version="2026-10", committed_at="2026-10-05T09:00:00", demand_qty=1.0)
    newer = plan.assign(plan_version="2026-12", committed_at="2026-11-19T08:00:00", demand_qty=999.0)
    write_source(landing, "sop_plan", older, suffix="_older", fmt="parquet")
    write_source(landing, "sop_plan", newer, suffix="_newer")
    write_source(landing, "sales_orders", _bad_orders(), suffix="_erp2")
    return landing


@pytest.fixture(scope="module")
def first_run_with_progress(tmp_path_factory, landing) -> tuple[SoeRun, str]:
    """The run, and what it printed with every dbt node counted slow (the terminal's progress lines)."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "__stdout__", printed)  # where the progress logger writes
        patch.setattr(dbt_assets_module, "SLOW_NODE_SECONDS", 0.0)
        run = run_soe(tmp_path_factory.mktemp("run"), landing)
    assert run.ok
    return run, printed.getvalue()


@pytest.fixture(scope="module")
def first_run(first_run_with_progress) -> SoeRun:
    return first_run_with_progress[0]


def test_the_dbt_build_reports_its_slow_nodes_as_they_finish(first_run_with_progress):
    """On a large network the build runs for a minute: each node that took long gets a line of its own, in
    the build's step, before the step's total."""
    printed = first_run_with_progress[1]
    build = printed[printed.index("[soe_dbt_models] started"):printed.index("[soe_dbt_models] done in")]
    assert re.search(r"\n    model sku_location_week done in \d+\.\d s\n", build), build
    assert re.search(r"\n    test assert_projection_and_atp_rules done in \d+\.\d s\n", build), build


def test_every_valid_row_reaches_staging(first_run, landing):
    staged = first_run.query("select order_id from staging.stg_sales_orders")
    expected = {row["order_id"] for row in minimal_network()["sales_orders"]} | {"OK-LATE-FILE"}
    assert set(staged["order_id"]) == expected
    for source in ("skus", "locations", "lanes", "purchase_orders", "shipments", "production_orders"):
        count = first_run.query(f"select count(*) as n from staging.stg_{source}")["n"][0]
        assert count == len(minimal_network()[source]), source


def test_every_planted_bad_row_is_in_data_quality_issues(first_run):
    issues = first_run.query("select * from marts.data_quality_issues where source = 'sales_orders'")
    by_row = issues.set_index("row_number")
    assert set(by_row.index) == {1, 2, 4}
    assert "ordered_qty must be > 0" in by_row.loc[1, "reason"]
    assert "unknown sku_id" in by_row.loc[2, "reason"]
    assert "requested_date is not a date" in by_row.loc[4, "reason"]
    assert (issues["file"] == f"{AS_OF.isoformat()}_erp2.csv").all()
    assert json.loads(by_row.loc[2, "raw_record"])["sku_id"] == "SKU-GHOST"
    assert (issues["as_of"] == pd.Timestamp(AS_OF)).all()


def test_committed_plan_is_the_latest_committed_not_after_as_of(first_run):
    plan = first_run.query(
        "select distinct plan_version, demand_qty from intermediate.int_committed_plan "
        "where sku_id = 'SKU-A' and location_id = 'DC-1'"
    )
    assert plan.to_dict("records") == [{"plan_version": "2026-11", "demand_qty": 70.0}]
    week1 = first_run.query(
        "select demand_plan_qty from marts.sku_location_week "
        "where sku_id = 'SKU-A' and location_id = 'DC-1' and week_start = ?", [monday(1)]
    )
    assert week1["demand_plan_qty"].tolist() == [70.0]


def test_marts_are_published_as_one_set_with_a_manifest(first_run):
    publish = first_run.workspace.publish
    manifest = json.loads((publish / "_manifest.json").read_text())
    assert manifest["as_of"] == AS_OF.isoformat()
    assert datetime.fromisoformat(manifest["published_at"]).utcoffset() is not None  # an instant, not a wall clock
    for table, rows in manifest["row_counts"].items():
        assert len(pd.read_parquet(publish / f"{table}.parquet")) == rows
    assert {"sku_location_week", "data_quality_issues"} <= set(manifest["row_counts"])
    assert os.path.realpath(publish / "sku_location_week.parquet").startswith(os.path.realpath(publish / "current"))


def _published_tables(publish: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for path in sorted(publish.glob("*.parquet")):
        frame = pd.read_parquet(path)
        frame = frame.drop(columns=[c for c in frame.columns if c in RUN_SPECIFIC_COLUMNS])
        tables[path.stem] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return tables


def test_running_twice_on_the_same_input_gives_identical_marts(first_run, landing):
    """The second run reads no extract (each is unchanged since the first), a third one asked to reread reads
    them all: the marts are the same each time."""
    before = _published_tables(first_run.workspace.publish)
    extracts = sum(1 for path in landing.glob("*/*") if path.is_file())
    for reread, kept in ((False, extracts), (True, 0)):
        lines = []
        again = run_soe(first_run.workspace.warehouse.parent.parent, landing, echo=lines.append, reread=reread)
        assert again.ok
        rows_in = next(line for line in lines if "rows in:" in line)
        assert rows_in.endswith(f"({kept} unchanged since the last run, not read again)") == bool(kept), rows_in
        after = _published_tables(again.workspace.publish)
        assert before.keys() == after.keys()
        for table in before:
            pd.testing.assert_frame_equal(before[table], after[table], obj=table)


def _assert_marts_conform(run) -> None:
    """The shared checker of the marts contract passes on the run's warehouse and published set."""
    if not CHECK_MARTS.exists():
        pytest.skip(f"{CHECK_MARTS} is not beside this checkout")
    result = subprocess.run(
        [sys.executable, str(CHECK_MARTS), "--warehouse", str(run.workspace.warehouse),
         "--publish", str(run.workspace.publish)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_published_marts_conform_to_the_marts_contract(first_run):
    _assert_marts_conform(first_run)


def test_a_run_leaves_the_garbage_collector_as_it_found_it(first_run):
    """A run pauses and freezes collection while it starts; callers in the same process get it back."""
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_clear_error_for_a_missing_required_source(tmp_path, capsys):
    from orchestration.cli import main

    landing = write_landing_zone(tmp_path / "landing", {k: v for k, v in minimal_network().items() if k != "skus"})
    code = main(["run", "--landing", str(landing), "--warehouse", str(tmp_path / "w.duckdb")])
    assert code == 2
    err = capsys.readouterr().err
    assert "skus" in err and "Traceback" not in err
    assert not (tmp_path / "w.duckdb").exists()


@pytest.mark.parametrize(("arguments", "message"), [
    (["--horizon-weeks", "0"], "--horizon-weeks: '0' must be at least 1"),
    (["--time-fence-weeks", "-1"], "--time-fence-weeks: '-1' must be at least 0"),
    (["--horizon-weeks", "1300"], "--horizon-weeks must be between 1 and 104 (S&OE's window; got 1300)"),
    (["--horizon-weeks", "6", "--time-fence-weeks", "7"],
     "--time-fence-weeks must be between 0 and --horizon-weeks (6; got 7)"),
    (["--warehouse", "{file}/w.duckdb"], "cannot create the warehouse folder"),
    (["--warehouse", "{file}/w.duckdb"], "a_file is a file, not a folder"),
    (["--publish", "{file}/publish"], "cannot create the publish folder"),
    (["--warehouse", "{folder}/../temp.duckdb"], "temp.duckdb as the warehouse: DuckDB reserves the name 'temp'"),
    (["--env", "SOE_WARN_QUARANTINE_SHARE=0.5"],
     "SOE_WARN_QUARANTINE_SHARE (0.5) is above SOE_BLOCK_QUARANTINE_SHARE (0.25)"),
    (["--warehouse", "{file}"], "a_file as the warehouse: the file exists, but it is not a DuckDB database"),
    (["--warehouse", "{empty}"], "empty_file as the warehouse: the file exists, but it is not a DuckDB database "
                                 "(it is empty)"),
    (["--warehouse", "{folder}"], "landing as the warehouse: it is a folder; name the database file in it"),
    (["--env", "SOE_BLOCK_QUARANTINE_SHARE=-0.5"], "SOE_BLOCK_QUARANTINE_SHARE='-0.5' is not a share between 0 and 1"),
    (["--env", "SOE_BLOCK_MIN_ROWS=some"], "SOE_BLOCK_MIN_ROWS='some' is not a whole number of rows, 0 or more"),
    (["--env", "SOE_FRESHNESS_DAYS=bogus"], "SOE_FRESHNESS_DAYS: freshness limit 'bogus' must be SOURCE=DAYS"),
    (["--env", "SOE_ALERT_LOG={file}/alerts.jsonl"], "cannot create the alert log folder"),
    (["--env", "SOE_ALERT_LOG={folder}"], "landing is a folder: alerts are appended to a file"),
    (["--env", "SOE_ALERT_WEBHOOK_URL=hooks.example.com/services/T0/B0/xoxb-T0KEN"],
     "SOE_ALERT_WEBHOOK_URL is not a usable webhook URL: it must start with http:// or https:// (its value is not "
     "shown here"),
    (["--env", "SOE_SOP_CALENDAR={file}.missing"], "a_file.missing cannot be read: No such file or directory"),
    (["--env", "SOE_SOP_CALENDAR={file}"], "needs a 'cycle_date' column"),
    (["--env", "SOE_ALERT_WEBHOOK_URL=https://[hooks.example.com/T0KEN"],
     "SOE_ALERT_WEBHOOK_URL is not a usable webhook URL: it is not a well-formed URL"),
    (["--warehouse", "{folder}/../o'brien.duckdb"], "o'brien.duckdb as the warehouse: dbt cannot address a database "
                                                    "whose file name holds '"),
    (["--warehouse", '{folder}/../a"b.duckdb'], 'a"b.duckdb as the warehouse: dbt cannot address a database whose '
                                                'file name holds "'),
    (["--freshness", "sales_orders=soon"], "freshness limit 'sales_orders=soon'"),
    (["--as-of", "2020-01-01"], "as_of 2020-01-01 is before every extract in"),
    (["--as-of", "2027-06-01"], "as_of 2027-06-01 is 195 days after the latest extract in"),
    (["--as-of", "20261118"], "'20261118' is not a date YYYY-MM-DD"),
    (["--as-of", "2026-W47-3"], "'2026-W47-3' is not a date YYYY-MM-DD"),
    (["--as-of", "2026-02-30"], "'2026-02-30' is no day of the calendar"),
])
def test_run_mistakes_are_clear_errors_before_any_work(tmp_path, capsys, monkeypatch, arguments, message):
    """Options, settings and files the run cannot use, and folders it cannot write, are refused up front
    (exit 2, no traceback)."""
    from orchestration.cli import main

    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    (tmp_path / "a_file").write_text("not a database")
    (tmp_path / "empty_file").touch()
    if arguments[0] == "--env":
        monkeypatch.setenv(*arguments[1].format(file=tmp_path / "a_file", folder=landing).split("=", 1))
        arguments = []
    paths = {"file": tmp_path / "a_file", "empty": tmp_path / "empty_file", "folder": landing}
    options = {"--warehouse": str(tmp_path / "w.duckdb"),
               **dict(zip(arguments[::2], [a.format(**paths) for a in arguments[1::2]]))}
    try:
        code = main(["run", "--landing", str(landing), *[part for pair in options.items() for part in pair]])
    except SystemExit as exit_:  # argparse refuses the option itself
        code = exit_.code
    assert code == 2
    out, err = capsys.readouterr()
    assert message in err and "Traceback" not in err
    assert "loading pipeline definitions" not in out  # refused before any work
    assert not (tmp_path / "w.duckdb").exists() and not (tmp_path / "dagster_home").exists()
    assert not (tmp_path / "publish").exists()  # no folder made for a run that never starts
    assert not list(tmp_path.glob("*.run-lock"))


@pytest.mark.parametrize(("folder", "mode"), [("", 0o000), ("sales_orders", 0o000), ("sales_orders", 0o444)])
def test_a_landing_folder_this_user_cannot_read_is_a_clear_error(tmp_path, folder, mode):
    """A landing zone, or a source folder, another system's user wrote with umask 077: its extracts cannot even
    be named, so the run stops with one line (exit 2) instead of a traceback. Run as root, the test drops the
    capability that ignores file modes."""
    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    unreadable = landing / folder
    as_a_user = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    unreadable.chmod(mode)  # 444: its names can be listed, its files not reached
    try:
        completed = subprocess.run(
            [*as_a_user, sys.executable, "-m", "orchestration.cli", "run", "--landing", str(landing),
             "--warehouse", str(tmp_path / "w" / "w.duckdb")],
            cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300, check=False)
    finally:
        unreadable.chmod(0o755)
    assert completed.returncode == 2, completed.stderr[-3000:]
    what = "the sales_orders folder of the landing zone" if folder else "the landing zone"
    assert f"cannot read {what} {unreadable}: permission denied" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_publish_folder_that_cannot_be_made_leaves_no_warehouse_folder_behind(tmp_path, capsys):
    from orchestration.cli import main

    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    (tmp_path / "a_file").write_text("in the way")
    code = main(["run", "--landing", str(landing), "--warehouse", str(tmp_path / "new" / "w.duckdb"),
                 "--publish", str(tmp_path / "a_file" / "publish")])
    assert code == 2
    assert f"cannot create the publish folder {tmp_path / 'a_file' / 'publish'}" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_an_extract_named_with_a_mistyped_date_does_not_date_the_run(tmp_path, capsys):
    """The default as_of is the latest extract date, so a file named with a mistyped date would date the run and
    publish a set every later run takes for the newer one: a day still to come, or a date only a minority of
    sources hold far ahead of the others, is refused, naming the file; --as-of still chooses any day. A source
    merely lagging behind the rest (40 days) is a stale source, not a mistyped date."""
    from orchestration.cli import main
    from soe_assets.ingest.pipeline import LandingZoneError, resolve_as_of

    extracted = AS_OF - timedelta(days=100)
    landing = write_landing_zone(tmp_path / "landing", minimal_network(), extract=extracted)
    lagging = extracted - timedelta(days=40)
    (landing / "skus" / f"{extracted}.csv").rename(landing / "skus" / f"{lagging}.csv")
    assert resolve_as_of(landing, None) == extracted
    typo = write_source(landing, "sales_orders", minimal_network()["sales_orders"][:1], extract=AS_OF, suffix="_erp")
    with pytest.raises(LandingZoneError, match=re.escape(
            f"the latest extract date in {landing}, {AS_OF} (sales_orders/{AS_OF}_erp.csv), is 100 days after every "
            f"other source's newest extract ({extracted}): is its date mistyped?")):
        resolve_as_of(landing, None)
    typo.unlink()
    today = datetime.now(timezone.utc).date()
    future = today + timedelta(days=9)
    write_source(landing, "purchase_orders", minimal_network()["purchase_orders"][:1], extract=future)
    with pytest.raises(LandingZoneError, match=re.escape(
            f"the latest extract date in {landing}, {future} (purchase_orders/{future}.csv), is after today")):
        resolve_as_of(landing, None)
    assert resolve_as_of(landing, extracted) == extracted and resolve_as_of(landing, future) == future
    assert main(["run", "--landing", str(landing), "--warehouse", str(tmp_path / "w.duckdb")]) == 2
    out, err = capsys.readouterr()
    assert f"is after today ({today})" in err and "Traceback" not in err
    assert "is its date mistyped? Rename the file, or pass --as-of" in err
    assert not (tmp_path / "w.duckdb").exists()


def test_a_date_half_the_sources_hold_is_no_mistyped_date(tmp_path):
    """Only a minority's date far ahead of the rest is taken for a typo: when half the sources are 40 days behind
    the other half, the run is dated by the newer half (the lagging sources then raise freshness alerts)."""
    from soe_assets.ingest.pipeline import LandingZoneError, resolve_as_of

    network, behind = minimal_network(), AS_OF - timedelta(days=40)
    sources = sorted(network)
    landing = tmp_path / "landing"
    for number, source in enumerate(sources):
        write_source(landing, source, network[source], extract=behind if number < len(sources) / 2 else AS_OF)
    assert resolve_as_of(landing, None) == AS_OF
    (landing / sources[-1] / f"{AS_OF}.csv").rename(landing / sources[-1] / f"{behind}.csv")  # now a minority
    with pytest.raises(LandingZoneError, match="is 40 days after every other source's newest extract"):
        resolve_as_of(landing, None)


def test_an_unreadable_newest_extract_is_quarantined_and_the_run_publishes_on_the_older_one(tmp_path):
    """The landing-zone contract: a file that cannot be read is quarantined whole and the run goes on. Today's
    snapshot is unreadable, so yesterday's stands, as if today's had not come (freshness judges its age), and
    the run publishes."""
    network, yesterday = minimal_network(), AS_OF - timedelta(days=1)
    landing = write_landing_zone(tmp_path / "landing", {k: v for k, v in network.items() if k != "inventory_snapshots"})
    held = [dict(row, snapshot_date=str(yesterday), quality_hold_qty=15.0) for row in network["inventory_snapshots"]]
    write_source(landing, "inventory_snapshots", held, extract=yesterday)
    (landing / "inventory_snapshots" / f"{AS_OF}.parquet").write_bytes(b"PAR1garbagePAR1")
    run = run_soe(tmp_path, landing)
    assert run.ok
    assert json.loads((run.workspace.publish / "_manifest.json").read_text())["as_of"] == str(AS_OF)
    issues = pd.read_parquet(run.workspace.publish / "data_quality_issues.parquet")
    rejected = issues[issues["file"] == f"{AS_OF}.parquet"]
    assert len(rejected) == 1 and rejected["row_number"].isna().all()
    assert "not a readable Parquet file" in rejected["reason"].iloc[0]
    stock = run.query("select sku_id, location_id, snapshot_date, available_qty from intermediate.int_available_stock "
                      "order by all")
    expected = pd.DataFrame(held).assign(available_qty=lambda f: f["on_hand_qty"] - f["quality_hold_qty"])
    assert stock["snapshot_date"].astype(str).eq(str(yesterday)).all()
    assert sorted(zip(stock["sku_id"], stock["location_id"], stock["available_qty"])) == sorted(
        zip(expected["sku_id"], expected["location_id"], expected["available_qty"]))


def test_the_warning_names_the_columns_a_file_rejected_whole_lacks(tmp_path):
    """An extract lacking contract columns is quarantined whole: the contract_violations alert names the file with
    those columns (its rows count in the quarantined share; the columns most rows were lost for are those of
    rejected rows: none here); every row of the other extracts is still ingested, and the run publishes."""
    network = minimal_network()
    landing = write_landing_zone(tmp_path / "landing", network)
    lacking = pd.DataFrame([dict(network["sales_orders"][0], order_id=f"WMS-{i}") for i in range(5)])
    write_source(landing, "sales_orders", lacking.drop(columns=["promised_date", "status"]), suffix="_wms")
    run = run_soe(tmp_path, landing)
    assert run.ok
    alerts = [json.loads(line) for line in (tmp_path / "warehouse" / "alerts.jsonl").read_text().splitlines()]
    warning = next(a for a in alerts if (a["subject"], a["name"]) == ("raw/sales_orders", "contract_violations"))
    read = len(network["sales_orders"]) + 5
    assert warning["message"] == (
        f"sales_orders: 5 of {read} rows of its newest extract ({AS_OF}) quarantined ({5 / read:.1%}, warning "
        f"above 2%); 1 file(s) rejected whole: {AS_OF}_wms.csv (for "
        "promised_date, status) (see data_quality_issues)")
    kept = run.query("select order_id, line_no from raw.sales_orders")
    assert sorted(zip(kept["order_id"], kept["line_no"])) == sorted(
        (row["order_id"], row["line_no"]) for row in network["sales_orders"])

def test_control_characters_in_a_file_name_reach_the_terminal_as_text(tmp_path, capfd):
    """An extract named with an escape sequence (clear the screen, turn red) and a carriage return: what the run
    prints about it shows them as \\xNN, as it does bytes that are not UTF-8, instead of acting on the terminal."""
    from orchestration.cli import main

    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    hostile = f"{AS_OF}_\x1b[2J\x1b[31mevil\r.parquet"
    (landing / "shipments" / hostile).write_bytes(b"PAR1garbagePAR1")
    assert main(["run", "--landing", str(landing), "--warehouse", str(tmp_path / "w" / "soe.duckdb"),
                 "--publish", str(tmp_path / "p")]) == 0
    printed = "".join(capfd.readouterr())
    assert f"{AS_OF}_\\x1b[2J\\x1b[31mevil\\x0d.parquet" in printed
    assert "\x1b" not in printed and "\r" not in printed


def test_a_run_history_that_cannot_be_written_is_one_line_not_a_traceback(tmp_path, capsys):
    """Dagster's storage failing (a full disk says 'database or disk is full'; here its index is not a
    database) stops the run with the storage's own words, exit 2, no traceback."""
    from orchestration.cli import main

    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    index = tmp_path / "dagster_home" / "history" / "runs" / "index.db"
    index.parent.mkdir(parents=True)
    index.write_bytes(b"not a database, " * 64)
    assert main(["run", "--landing", str(landing), "--warehouse", str(tmp_path / "soe.duckdb")]) == 2
    err = capsys.readouterr().err
    assert (f"soe: error: cannot record the run in its run history under {tmp_path / 'dagster_home'}: "
            "file is not a database") in err and "Traceback" not in err


def test_a_run_history_that_fills_up_mid_run_stops_the_run_with_exit_1(tmp_path, capsys, monkeypatch):
    """The disk filling while the run is under way (Dagster's store of the detect step's start fails as SQLite
    does on a full disk): the run had started, so exit 1, not 2 ('could not start'), in one line."""
    import sqlite3

    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    from orchestration.cli import main

    store_event = SqliteEventLogStorage.store_event
    full = []

    def full_disk_at_detection(self, event):
        if full or (event.dagster_event and event.dagster_event.is_step_start
                    and event.step_key == "detected_exceptions"):
            full.append(event)  # from then on no event can be stored
            raise sqlite3.OperationalError("database or disk is full")
        return store_event(self, event)

    monkeypatch.setattr(SqliteEventLogStorage, "store_event", full_disk_at_detection)
    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    assert main(["run", "--landing", str(landing), "--warehouse", str(tmp_path / "soe.duckdb")]) == 1
    err = capsys.readouterr().err
    assert (f"soe: error: cannot record the run in its run history under {tmp_path / 'dagster_home'}: database or "
            "disk is full; the run stopped in the step printed last") in err and "Traceback" not in err


def test_demo_never_deletes_extracts_it_did_not_write(tmp_path, capsys):
    """The demo replaces its own sample; a file someone put beside it is refused, and so is a file as --dir."""
    from orchestration.cli import main
    from soe_assets.sample_network import NetworkSize, extracts_not_generated, generate_landing_zone

    landing = tmp_path / "demo" / "landing"
    generate_landing_zone(landing, size=NetworkSize(skus=2, dcs=1, plants=1))
    assert extracts_not_generated(landing) == []
    mine = landing / "sales_orders" / "2026-11-25_mine.csv"
    mine.write_text("order_id\n")
    assert extracts_not_generated(landing) == [mine]
    assert main(["demo", "--dir", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert "holds 1 extract(s) the demo did not write, e.g. sales_orders/2026-11-25_mine.csv" in err
    assert mine.exists()
    (tmp_path / "a_file").write_text("")
    (tmp_path / "file_landing").mkdir()
    (tmp_path / "file_landing" / "landing").write_text("")
    for folder in ("a_file", "file_landing"):
        assert main(["demo", "--dir", str(tmp_path / folder)]) == 2
        out, err = capsys.readouterr()
        assert err.startswith("soe: error:") and "is a file, not a folder" in err and "Traceback" not in err
        assert "generating" not in out
    # a warehouse the run could not use: refused before the sample is written
    (tmp_path / "junk" / "warehouse").mkdir(parents=True)
    (tmp_path / "junk" / "warehouse" / "soe.duckdb").write_text("junk")
    assert main(["demo", "--dir", str(tmp_path / "junk")]) == 2
    out, err = capsys.readouterr()
    assert "the file exists, but it is not a DuckDB database" in err and "generating" not in out
    assert not (tmp_path / "junk" / "landing").exists()
    assert main(["ui", "--dir", str(tmp_path / "a_file")]) == 2
    assert f"--dir {tmp_path / 'a_file'} is a file, not a folder" in capsys.readouterr().err


def test_demo_refuses_an_unusable_webhook_before_writing_its_sample(tmp_path, capsys, monkeypatch):
    from orchestration.cli import main

    monkeypatch.setenv("SOE_ALERT_WEBHOOK_URL", "ftp://alerts:T0KEN@hooks.example.com/x")
    assert main(["demo", "--dir", str(tmp_path / "demo")]) == 2
    out, err = capsys.readouterr()
    assert "SOE_ALERT_WEBHOOK_URL is not a usable webhook URL" in err and "T0KEN" not in err + out
    assert "generating" not in out and not (tmp_path / "demo").exists()


def test_a_filter_that_can_never_match_is_an_error_not_an_empty_list(tmp_path, capsys):
    from orchestration.cli import main

    for command, option in (("exceptions", "--type"), ("recommendations", "--action")):
        assert main([command, "--dir", str(tmp_path), option, "nonsense"]) == 2
        err = capsys.readouterr().err
        assert f"unknown {option} 'nonsense': one of " in err and "Traceback" not in err


def test_an_unknown_location_is_an_error_and_a_quiet_one_is_not(first_run, capsys):
    """--location names a location of the network: a typo is refused with the known ones, while a real
    location without open exceptions lists nothing, as it should."""
    from orchestration.cli import main

    publish = str(first_run.workspace.publish)
    locations = set(first_run.query("select distinct location_id from marts.sku_location_week")["location_id"])
    flagged = set(first_run.query("select distinct location_id from marts.exceptions")["location_id"].dropna())
    assert main(["exceptions", "--publish", publish, "--location", "DC-NOWHERE"]) == 2
    err = capsys.readouterr().err
    assert f"unknown --location 'DC-NOWHERE': the network's locations are {', '.join(sorted(locations | flagged))}" in err
    quiet = sorted(locations - flagged)
    assert quiet, "the minimal network has a location without exceptions"
    assert main(["exceptions", "--publish", publish, "--location", quiet[0]]) == 0
    assert "nothing needs attention." in capsys.readouterr().out


def test_the_run_is_in_the_dagster_history_of_its_folder(first_run):
    """`soe ui` on the same folder shows the runs of `soe run`: its instance holds the run and its events."""
    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.instance_storage import PooledSqliteEventLogStorage

    with dg.DagsterInstance.from_config(str(first_run.workspace.dagster_home)) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        run = instance.get_runs()[0]
        assert run.is_success
        assert instance.get_latest_materialization_event(dg.AssetKey("exceptions")).run_id == run.run_id
        evaluated = {event.dagster_event.event_specific_data.asset_check_key
                     for event in instance.all_logs(run.run_id)
                     if event.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION}
        # every check: dbt's tests, the source checks, the GX suite, the publish gates
        assert evaluated == set(defs.resolve_asset_graph().asset_check_keys)


def test_the_folders_dagster_config_follows_the_folder_and_keeps_hand_edits(tmp_path, monkeypatch):
    from orchestration.cli import INSTANCE_CONFIG_MARK, Workspace

    for name in ("SOE_LANDING_DIR", "SOE_WAREHOUSE", "SOE_PUBLISH_DIR", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)

    def export(folder: Path) -> str:
        workspace = Workspace(landing=folder / "landing", warehouse=folder / "warehouse" / "soe.duckdb",
                              publish=folder / "publish")
        workspace.export()
        return (workspace.dagster_home / "dagster.yaml").read_text()

    written = export(tmp_path / "a")
    assert written.startswith(INSTANCE_CONFIG_MARK) and str(tmp_path / "a") in written
    (tmp_path / "a").rename(tmp_path / "b")
    moved = export(tmp_path / "b")
    assert str(tmp_path / "b" / "warehouse" / "dagster_home" / "history" / "runs") in moved
    config = tmp_path / "b" / "warehouse" / "dagster_home" / "dagster.yaml"
    config.write_text("telemetry:\n  enabled: false\n")  # what earlier versions wrote
    assert export(tmp_path / "b") == moved
    edited = moved.replace(INSTANCE_CONFIG_MARK + "\n", "") + "# my own setting\n"
    config.write_text(edited)
    assert export(tmp_path / "b") == edited


def test_warehouse_raw_tables_keep_lineage(first_run):
    with duckdb.connect(str(first_run.workspace.warehouse), read_only=True) as conn:
        files = conn.execute("select distinct _file from raw.sales_orders order by 1").fetchall()
    assert files == [(f"{AS_OF.isoformat()}.csv",), (f"{AS_OF.isoformat()}_erp2.csv",)]


def test_planner_views_read_the_published_run(first_run, capsys):
    from orchestration.cli import main

    publish = str(first_run.workspace.publish)
    assert main(["exceptions", "--publish", publish]) == 0
    assert f"exceptions as of {AS_OF.isoformat()}" in capsys.readouterr().out
    assert main(["recommendations", "--warehouse", str(first_run.workspace.warehouse)]) == 0
    assert "recommendation" in capsys.readouterr().out
    assert main(["report", "--publish", publish]) == 0
    # the stable path readers bookmark, not the published set it currently leads to
    assert capsys.readouterr().out.strip() == str((Path(publish) / "sop_report.html").absolute())


def test_a_planner_view_reads_every_mart_from_one_published_set(first_run, tmp_path, capsys):
    """While a run publishes, `current` switches first and the folder's links follow: a listing reading several
    marts (exceptions, their history) reads them all from the set `current` leads to, never a mix."""
    import shutil

    from orchestration.cli import main

    publish = tmp_path / "publish"
    shutil.copytree(first_run.workspace.publish, publish, symlinks=True)
    other = publish / ".versions" / "other"
    other.mkdir()
    history = pd.read_parquet(publish / "exception_history.parquet")
    # the next set's history: every open exception of the day held back by an alert budget
    history.assign(in_alert_budget=False).to_parquet(other / "exception_history.parquet")
    link = publish / "exception_history.parquet"
    link.unlink()
    link.symlink_to(Path(".versions") / "other" / "exception_history.parquet")  # the link already switched

    assert main(["exceptions", "--publish", str(publish)]) == 0
    out = capsys.readouterr().out
    assert f"exceptions as of {AS_OF.isoformat()}" in out and "held back" not in out


def test_dir_finds_the_marts_where_soe_run_publishes_by_default(first_run, tmp_path, capsys):
    """`soe run --warehouse X/warehouse/soe.duckdb` publishes beside the warehouse: `--dir X` reads them there."""
    import shutil

    from orchestration.cli import main

    shutil.copytree(first_run.workspace.publish, tmp_path / "warehouse" / "publish", symlinks=True)
    assert main(["exceptions", "--dir", str(tmp_path)]) == 0
    assert f"exceptions as of {AS_OF.isoformat()}" in capsys.readouterr().out
    assert main(["report", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().endswith("sop_report.html")


def test_planner_views_say_clearly_when_there_is_no_run(tmp_path, capsys, monkeypatch):
    from orchestration.cli import main

    for command in ("exceptions", "recommendations", "report", "ui"):
        assert main([command, "--dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("soe: error:") and "Traceback" not in err
    # a folder that is not there, a file given for a folder: said as such, not "run 'soe run' first"
    (tmp_path / "a_file").write_text("x")
    for arguments, message in ((["--dir", str(tmp_path / "nowhere")], f"--dir {tmp_path / 'nowhere'} does not exist"),
                               (["--dir", str(tmp_path / "a_file")], f"--dir {tmp_path / 'a_file'} is a file, not a folder"),
                               (["--publish", str(tmp_path / "a_file")], "is a file, not a folder")):
        for command in ("exceptions", "recommendations", "report"):
            assert main([command, *arguments]) == 2
            assert message in capsys.readouterr().err
    # a --publish that is not there; a published file that is no Parquet, or no soe mart
    for command in ("exceptions", "recommendations", "report"):
        assert main([command, "--publish", str(tmp_path / "nowhere")]) == 2
        assert f"--publish {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for table in ("exceptions", "exception_history", "recommendations"):
        pd.DataFrame({"a": [1]}).to_parquet(foreign / f"{table}.parquet")
    for command, table in (("exceptions", "exceptions"), ("recommendations", "recommendations")):
        assert main([command, "--publish", str(foreign)]) == 2
        err = capsys.readouterr().err
        assert f"{foreign / table}.parquet is not soe's {table} mart: it has no column " in err, err
    (foreign / "exceptions.parquet").write_bytes(b"PAR1?")
    assert main(["exceptions", "--publish", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert f"{foreign / 'exceptions.parquet'} is not a readable Parquet file" in err and "Traceback" not in err
    # a published file given as the warehouse: said as such, as `soe run` says it
    for command in ("exceptions", "recommendations"):
        assert main([command, "--warehouse", str(foreign / "recommendations.parquet")]) == 2
        assert "the file exists, but it is not a DuckDB database" in capsys.readouterr().err
    # a warehouse copied under a name `soe run` refuses (dbt could not build it) still reads
    import duckdb

    with duckdb.connect(str(tmp_path / "main.duckdb")) as conn:
        conn.execute("CREATE SCHEMA marts; CREATE TABLE marts.recommendations (recommendation_id VARCHAR)")
    assert main(["recommendations", "--warehouse", str(tmp_path / "main.duckdb")]) == 2
    assert "is not soe's recommendations mart: it has no column" in capsys.readouterr().err
    # half the paths of a run: the other half would be the demo folder's, a UI that shows none of the runs
    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    for half in (["--landing", str(landing)], ["--warehouse", str(tmp_path / "w.duckdb")]):
        assert main(["ui", *half]) == 2
        assert "--landing and --warehouse go together" in capsys.readouterr().err
    # a port another server holds (the browser would show that one's warehouse), or no port at all
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        busy = other.getsockname()[1]
        paths = ["--landing", str(landing), "--warehouse", str(tmp_path / "w.duckdb")]
        assert main(["ui", *paths, "--port", str(busy)]) == 2
        assert f"cannot serve on 127.0.0.1:{busy}" in capsys.readouterr().err
    # an address this machine does not have (TEST-NET-1): said as such, not as a busy port
    assert main(["ui", *paths, "--host", "192.0.2.1"]) == 2
    assert "--host must name this machine" in capsys.readouterr().err
    # a warehouse that is no DuckDB file: refused as soe run refuses it, not a UI whose every run fails
    assert main(["ui", "--landing", str(landing), "--warehouse", str(tmp_path / "a_file")]) == 2
    assert "the file exists, but it is not a DuckDB database" in capsys.readouterr().err
    # a webhook its sensors could not deliver to: refused as soe run refuses it, without showing the URL
    monkeypatch.setenv("SOE_ALERT_WEBHOOK_URL", "hooks.example.com/T0KEN")
    assert main(["ui", *paths]) == 2
    err = capsys.readouterr().err
    assert "SOE_ALERT_WEBHOOK_URL is not a usable webhook URL: it must start with http://" in err and "T0KEN" not in err
    monkeypatch.delenv("SOE_ALERT_WEBHOOK_URL")
    # settings the UI's code location, its runs or its sensors read: refused up front, not a broken location
    for setting, value, said in (("SOE_WARN_QUARANTINE_SHARE", "abc", "SOE_WARN_QUARANTINE_SHARE"),
                                 ("SOE_DUCKDB_MEMORY_LIMIT", "lots", "SOE_DUCKDB_MEMORY_LIMIT='lots' is not"),
                                 ("SOE_SENSOR_SETTLE_SECONDS", "-5", "SOE_SENSOR_SETTLE_SECONDS=-5: expected a number")):
        monkeypatch.setenv(setting, value)
        assert main(["ui", *paths]) == 2
        assert said in capsys.readouterr().err
        monkeypatch.delenv(setting)
    with pytest.raises(SystemExit) as refused:
        main(["ui", *paths, "--port", "99999"])
    assert refused.value.code == 2 and "'99999' is not a port (1 to 65535)" in capsys.readouterr().err
    # two places to read the mart from: refused, not one of them picked silently
    for command in ("exceptions", "recommendations"):
        with pytest.raises(SystemExit) as refused:
            main([command, "--publish", str(tmp_path), "--warehouse", str(tmp_path / "w.duckdb")])
        assert refused.value.code == 2
        assert "argument --warehouse: not allowed with argument --publish" in capsys.readouterr().err


def test_an_option_before_the_command_is_named_in_the_error(capsys):
    """`soe --landing x run`: argparse alone would only say the command is missing."""
    from orchestration.cli import main

    with pytest.raises(SystemExit) as refused:
        main(["--landing", "x", "run"])
    assert refused.value.code == 2
    assert "unrecognized option --landing: options go after the command" in capsys.readouterr().err


def test_a_command_started_with_its_output_closed_still_succeeds(tmp_path):
    """Output closed (`soe generate ... >&-`): Python's print then writes nothing, and the exit must not fail."""
    completed = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "generate", "--out", str(tmp_path / "landing"), "--skus", "2"],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: os.close(1), timeout=300, check=False)
    assert completed.returncode == 0 and "Traceback" not in completed.stderr, completed.stderr
    assert (tmp_path / "landing" / "sales_orders").is_dir()


def test_waiting_for_a_warehouse_another_process_holds_is_said_once(tmp_path):
    """A run waits (up to a minute) for another process to let go of the warehouse: the user is told at once."""
    from soe_assets.warehouse import open_warehouse

    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    with another_process_holding(warehouse, 30) as holder:
        told = []
        with pytest.raises(duckdb.IOException, match=f"held by another process \\(PID {holder.pid}\\)"):
            open_warehouse(warehouse, lock_wait=1.0, on_wait=told.append)
        assert len(told) == 1 and f"(PID {holder.pid})" in str(told[0])
    open_warehouse(warehouse, lock_wait=1.0, on_wait=told.append).close()
    assert len(told) == 1


def test_a_run_on_a_warehouse_another_process_holds_past_the_wait_ends_in_one_clear_line(tmp_path):
    """A notebook holding a connection to the warehouse as the run starts, and past the wait: the run does not
    start, and the user reads which file, which process and what to do, not DuckDB's lock error."""
    from orchestration.cli import UserError

    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    warehouse = tmp_path / "warehouse" / "soe.duckdb"
    warehouse.parent.mkdir()
    duckdb.connect(str(warehouse)).close()
    with another_process_holding(warehouse, 60) as notebook:
        with pytest.raises(UserError) as refused:
            run_soe(tmp_path, landing, lock_wait_seconds=1.0)
    assert refused.value.exit_code == 2
    assert str(refused.value) == (
        f"the warehouse {warehouse} is held by another process (PID {notebook.pid}), which did not let go within "
        "1 s: close that process or its connection to the file (a notebook, a BI tool); readers should read the "
        "published Parquet marts instead")
    assert not (tmp_path / "publish" / "current").exists()


def test_a_step_waiting_for_a_reader_of_the_warehouse_says_so(tmp_path, capsys):
    """A notebook holding the live file between two steps holds up the next one: the user sees why, not a run
    that stands still."""
    from soe_assets.warehouse import connect

    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    with another_process_holding(warehouse, 2, read_only=True) as reader:
        with connect(warehouse) as conn:
            assert conn.execute("select 1").fetchall() == [(1,)]
    assert f"{warehouse} is held by another process (PID {reader.pid}): waiting up to 60 s" in capsys.readouterr().err


def test_memory_limit_reaches_duckdb_and_a_bad_one_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from orchestration.cli import main
    from soe_assets.duckdb_settings import MEMORY_LIMIT_ENV
    from soe_assets.warehouse import connect

    monkeypatch.setenv(MEMORY_LIMIT_ENV, "300MB")
    with connect(tmp_path / "probe.duckdb") as conn:
        limit = conn.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit.replace(" ", "") in {"286.1MiB", "300.0MB", "300MB"}

    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    code = main(["run", "--landing", str(landing), "--warehouse", str(tmp_path / "w.duckdb"), "--memory-limit", "lots"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--memory-limit 'lots' is not 'auto' or a memory size" in err and "Traceback" not in err
    assert not (tmp_path / "w.duckdb").exists()
    for size in ("0GB", "100KB", "255MiB"):  # sizes DuckDB takes, too small to run in: refused before any work
        assert main(["run", "--landing", str(landing), "--warehouse", str(tmp_path / "w.duckdb"),
                     "--memory-limit", size]) == 2
        assert f"--memory-limit '{size}' is too small: soe needs at least 256MiB" in capsys.readouterr().err
    # beyond what DuckDB can count: it would fail the run's first step, after the run had started
    assert main(["run", "--landing", str(landing), "--warehouse", str(tmp_path / "w.duckdb"),
                 "--memory-limit", "99999999999TB"]) == 2
    assert "--memory-limit '99999999999TB' is more bytes than DuckDB can count" in capsys.readouterr().err
    assert not (tmp_path / "w.duckdb").exists()
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "plenty")  # from the environment: the message names the variable
    assert main(["run", "--landing", str(landing), "--warehouse", str(tmp_path / "w.duckdb")]) == 2
    assert f"{MEMORY_LIMIT_ENV}='plenty' is not 'auto'" in capsys.readouterr().err


def test_a_store_network_selling_through_point_of_sale_only_publishes(tmp_path):
    """No sales order at all, demand from POS: a header-only order extract is that network's truth. The run
    publishes, and forecast accuracy is measured on the point-of-sale demand."""
    network = minimal_network()
    network["sales_orders"] = []
    network["pos_sales"] = [
        {"sale_date": (monday(-4) + timedelta(days=day)).isoformat(), "sku_id": "SKU-A", "location_id": "DC-1",
         "qty": 10.0}
        for day in range((AS_OF - monday(-4)).days + 1)
    ]
    run = run_soe(tmp_path, write_landing_zone(tmp_path / "landing", network))
    assert run.ok
    wape = run.query("select week_start, numerator, denominator from marts.kpi_weekly "
                     "where kpi_name = 'forecast_wape' and scope_type = 'total' order by week_start")
    assert len(wape) >= 4 and (wape["denominator"] == 70.0).all()  # 10 a day, every past week
    _assert_marts_conform(run)


def test_a_network_without_plants_suppliers_or_transfers_publishes(tmp_path):
    """Header-only production orders, capacity, purchase orders and shipments are the truth of such a
    network, not a broken export: the run publishes every mart, conforming to the contract."""
    network = minimal_network()
    for source in ("production_orders", "resource_capacity", "purchase_orders", "shipments"):
        network[source] = []
    run = run_soe(tmp_path, write_landing_zone(tmp_path / "landing", network))
    assert run.ok
    manifest = json.loads((run.workspace.publish / "_manifest.json").read_text())
    assert manifest["row_counts"]["sku_location_week"] > 0
    log = run.query("select source, rows_read, rows_valid from raw.ingest_log where source = 'production_orders'")
    assert log[["rows_read", "rows_valid"]].values.tolist() == [[0, 0]]
    _assert_marts_conform(run)


def test_a_one_week_horizon_on_a_sunday_runs_with_the_fence_fitted_to_it(tmp_path, capsys):
    """`--horizon-weeks 1` alone: the default fence of 4 weeks shrinks to the horizon instead of refusing the run.
    Week 0 is then the last week, and on its Sunday none of it is left: days of supply divides what is due
    that day by one day, not 'no demand' (999)."""
    from orchestration.cli import main

    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    sunday = AS_OF + timedelta(days=6 - AS_OF.weekday())
    code = main(["run", "--landing", str(landing), "--warehouse", str(tmp_path / "w.duckdb"),
                 "--horizon-weeks", "1", "--as-of", sunday.isoformat()])
    assert code == 0, capsys.readouterr().err[-2000:]
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as conn:
        view = conn.execute("select * from marts.sku_location_week").df()
        fence = conn.execute("select time_fence_weeks from raw.run_context").fetchone()[0]
    assert fence == 1 and set(view.week_index) == {0} and view.inside_time_fence.all()
    lasting = view[(view.projected_available_qty > 0) & (view.sensed_demand_qty > 0)]
    assert not lasting.empty
    expected = (lasting.projected_available_qty / lasting.sensed_demand_qty).clip(upper=999)
    assert lasting.days_of_supply.round(9).tolist() == expected.round(9).tolist()
    # no week follows week 0: excess is judged against its whole week's demand, not as stock nobody needs
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as conn:
        excess = conn.execute("select e.explanation from marts.exceptions as e join marts.sku_location_week as v "
                              "using (sku_id, location_id) where e.exception_type = 'excess_inventory' "
                              "and v.demand_plan_qty > 0").df()
    assert not excess.explanation.str.contains("unlimited weeks").any(), excess.explanation.tolist()


REPO_ROOT = Path(__file__).resolve().parent.parent
# Tables documented as "the columns of <table>, plus ..." in docs/columns.md.
HISTORY_OF = {"exception_history": "exceptions", "recommendation_history": "recommendations"}


def _columns_documented(page: str) -> dict[str, set[str]]:
    """Per ``## `table` `` section of docs/columns.md, the names in the first cell of its table's rows."""
    parts = re.split(r"^## `(\w+)`$", page, flags=re.MULTILINE)
    documented = {}
    for table, body in zip(parts[1::2], parts[2::2]):
        cells = re.findall(r"^\| ([^|]+) \|", body, flags=re.MULTILINE)
        documented[table] = {name for cell in cells for name in re.findall(r"`(\w+)`", cell)}
    for history, table in HISTORY_OF.items():
        documented[history] = documented.get(history, set()) | documented[table]
    return documented


def _descriptions_on_page(page: str, table: str) -> dict[str, str]:
    """A table's section of docs/columns.md as {column: description}."""
    section = page.split(f"## `{table}`", 1)[1].split("\n## ", 1)[0]
    return {name: text.replace("\\|", "|")
            for name, text in re.findall(r"^\| `(\w+)` \| (.*) \|$", section, flags=re.MULTILINE)}


def test_every_published_column_is_documented(first_run):
    """An analyst finds every column of every published table in docs/columns.md; the dbt marts' columns are
    described there in the words of their model YAML, where each has a description."""
    import yaml

    current = Path(os.path.realpath(first_run.workspace.publish / "current"))
    published = {path.stem: set(pd.read_parquet(path).columns) for path in current.glob("*.parquet")}
    page = (REPO_ROOT / "docs" / "columns.md").read_text()
    in_page = _columns_documented(page)
    models = yaml.safe_load((REPO_ROOT / "dbt_project" / "models" / "marts" / "_marts__models.yml").read_text())
    in_yaml = {model["name"]: {c["name"]: c.get("description", "").strip() for c in model.get("columns", [])}
               for model in models["models"]}
    assert len(published) == 9
    for table, columns in published.items():
        if table in in_yaml:
            assert set(in_yaml[table]) == columns, table
            assert all(in_yaml[table].values()), f"{table}: a column without a description"
            assert _descriptions_on_page(page, table) == {
                name: " ".join(text.split()) for name, text in in_yaml[table].items()}, table
        else:
            assert columns <= in_page.get(table, set()), f"{table}: {sorted(columns - in_page.get(table, set()))}"


def test_publishing_on_its_own_refuses_marts_left_from_an_earlier_ingest(tmp_path, landing):
    """The same day ingested again and rebuilt by dbt only (a run stopped after dbt, or those assets materialised
    from the UI): publishing alone would pair the new trusted view with the earlier run's exceptions and KPIs."""
    import dagster as dg

    from orchestration.dbt import soe_dbt_models
    from orchestration.definitions import build_definitions
    from orchestration.resources import SoeSettings, WarehouseResource
    from soe_assets.ingest.assets import landing_zone

    run = run_soe(tmp_path, landing)
    assert run.ok
    with duckdb.connect(str(run.workspace.warehouse)) as conn:  # a view of the user's own, beside the marts
        conn.execute("CREATE VIEW marts.open_by_location AS SELECT location_id, count(*) AS n FROM marts.exceptions "
                     "GROUP BY 1")
    defs = build_definitions(
        SoeSettings(landing_dir=str(landing), publish_dir=str(run.workspace.publish), as_of=AS_OF.isoformat()),
        WarehouseResource(path=str(run.workspace.warehouse)),
    )
    job = defs.resolve_implicit_global_asset_job_def()
    publish_alone = [dg.AssetKey("published_marts")]
    assert job.execute_in_process(asset_selection=publish_alone).success  # after a whole run: the UI's Materialize
    manifest = (run.workspace.publish / "_manifest.json").read_text()
    assert "open_by_location" in manifest
    rebuilt = job.execute_in_process(asset_selection=[*landing_zone.keys, *soe_dbt_models.keys])
    assert rebuilt.success
    result = job.execute_in_process(asset_selection=publish_alone, raise_on_error=False)

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.step_failure_data.user_failure_data.description)
    assert message.startswith("not published, the previous set stays: marts.exception_history, marts.exceptions, "
                              "marts.kpi_weekly, marts.recommendation_history, marts.recommendations, "
                              "marts.sop_feedback were built from an earlier ingest than the warehouse's latest")
    assert "sku_location_week" not in message  # dbt rebuilt it from that ingest
    assert (run.workspace.publish / "_manifest.json").read_text() == manifest


def test_every_command_has_help_that_says_what_it_does(capsys):
    """`soe COMMAND --help` exits 0 with a sentence on what the command does and a line for every option."""
    import argparse

    from orchestration.cli import build_parser, main

    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    assert set(commands.choices) >= {"generate", "run", "demo", "exceptions", "recommendations", "ui", "report"}
    for name, parser in commands.choices.items():
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        shown = capsys.readouterr().out
        assert shown.startswith(f"usage: soe {name}") and parser.description and len(parser.description) > 40, name
        assert " ".join(parser.description.split()[:4]) in " ".join(shown.split()), name
        undocumented = [action.dest for action in parser._actions if not action.help]
        assert not undocumented, (name, undocumented)


@pytest.mark.parametrize("size", [["--skus", "3", "--stores", "1000000"], ["--skus", "1000000", "--dcs", "3"]])
def test_generate_refuses_a_sample_too_large_to_simulate(tmp_path, capsys, size):
    """A sample the generator cannot hold in memory is a clear error up front, not a process killed silently."""
    from orchestration.cli import main

    assert main(["generate", "--out", str(tmp_path / "landing"), *size]) == 2
    assert "a sample holds at most 2,000,000 and 500,000" in capsys.readouterr().err
    assert not (tmp_path / "landing").exists()
