"""Run it like production, through the real `soe run` command in separate processes.

One workspace, one sequence (each full run is ~20-60 s, so runs are shared):
1. a landing zone with a corpus of broken extracts and hostile file/column names, and a real
   local webhook: clear messages, quarantine rows, no lost valid row, alerts delivered, no leak;
2. the newest inventory extract rejected whole: the publish gate holds the previous set;
3. a run killed (SIGKILL) when the detect stage starts: the published set is intact;
4. two more runs while a second process reads the published set in a loop: it never sees a
   partial or mixed set; the re-run of the same as_of replaces its exception-history rows;
5. a run interrupted by Ctrl-C (SIGINT to its whole process group, as a terminal sends it) while dbt
   builds: one clear message, no traceback, the published set intact, exit 130; stopped by SIGTERM (on a
   run of its own, and on a command outside a run): the same, exit 143.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from support import minimal_network, write_landing_zone, write_source
from test_operations_units import SECRET, WebhookServer

REPO = Path(__file__).resolve().parents[1]
HOSTILE_FILE = "x'; drop table raw.skus; --.csv"
HOSTILE_DATED_FILE = "2026-11-18_x'; drop table raw.locations; --.csv"
HOSTILE_COLUMN = 'note"; drop table raw.locations; --'
BULK_ROWS = 100_000


def _soe(args: list[str], env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )


def _run_args(root: Path, *extra: str) -> list[str]:
    return ["run", "--landing", str(root / "landing"), "--warehouse", str(root / "warehouse" / "soe.duckdb"),
            "--publish", str(root / "publish"), *extra]


def _query(root: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(root / "warehouse" / "soe.duckdb"), read_only=True) as conn:
        return conn.execute(sql).df()


def _order(order_id: str, **overrides) -> dict:
    base = dict(minimal_network()["sales_orders"][0], order_id=order_id, status="cancelled", shipped_qty=0.0,
                ship_date="", ordered_qty=1.0)
    return {**base, **overrides}


def build_corpus(landing: Path) -> set[str]:
    """The bad-input corpus beside a clean network; returns every valid sales-order id in it."""
    network = minimal_network()
    write_landing_zone(landing, network)
    orders = landing / "sales_orders"
    header = ",".join(pd.DataFrame([_order("H")]).columns)
    valid = {row["order_id"] for row in network["sales_orders"]}

    (orders / "2026-11-18_empty.csv").write_bytes(b"")
    (orders / "2026-11-18_unzipped.csv").mkdir()  # a folder named like an extract: named in the output, not read
    (orders / "2026-11-18_unzipped.csv" / "2026-11-18.csv").write_text("not read\n")
    (orders / "2026-11-18_header_only.csv").write_text(header + "\n")
    (orders / "2026-11-18_corrupt.parquet").write_bytes(b"PAR1 this is not a parquet file")
    pd.DataFrame([_order("SEMI-1")]).to_csv(orders / "2026-11-18_semicolon.csv", sep=";", index=False)
    latin = pd.DataFrame([_order("LATIN-OK"), _order("LATIN-BAD", customer_id="Caf\u00e9")]).to_csv(index=False)
    (orders / "2026-11-18_latin1.csv").write_bytes(latin.encode("latin-1"))
    valid.add("LATIN-OK")
    future = [_order("FUTURE-OK"), _order("FUTURE-BAD", order_date="2026-12-24")]
    write_source(landing, "sales_orders", future, suffix="_future")
    valid.add("FUTURE-OK")
    pd.DataFrame([_order("NODATE-1")]).to_csv(orders / "orders_latest.csv", index=False)
    write_source(landing, "sales_orders", network["sales_orders"], suffix="_copy")  # a duplicate file

    bulk = pd.DataFrame([_order("BULK")] * BULK_ROWS)
    bulk["order_id"] = [f"BULK-{i:06d}" for i in range(BULK_ROWS)]
    bad = bulk.index % 100 == 0
    bulk.loc[bad, "ordered_qty"] = -1.0
    write_source(landing, "sales_orders", bulk, suffix="_bulk")
    valid |= set(bulk.loc[~bad, "order_id"])

    # Hostile names: an undated file and a dated one with a hostile extra column.
    (landing / "skus" / HOSTILE_FILE).write_text("sku_id,product_family,unit_cost,unit_price\nEVIL,x,1,2\n")
    locations = pd.DataFrame(network["locations"]).assign(**{HOSTILE_COLUMN: "'); drop table raw.skus; --"})
    locations.to_csv(landing / "locations" / HOSTILE_DATED_FILE, index=False)
    return valid


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("production")


@pytest.fixture(scope="module")
def corpus_run(root):
    valid = build_corpus(root / "landing")
    with WebhookServer() as server:
        result = _soe(_run_args(root), env={"SOE_ALERT_WEBHOOK_URL": server.url})
    return {"result": result, "valid": valid, "posts": server.received}


# --- 1. bad input end to end, alerts, security --------------------------------------------


def test_corpus_run_succeeds_with_clear_messages_and_no_traceback(corpus_run):
    result = corpus_run["result"]
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Traceback" not in output
    assert "run complete for as_of 2026-11-18" in output
    assert "WARN  raw/sales_orders:contract_violations" in output
    assert "folder(s) ignored, extracts are files: 2026-11-18_unzipped.csv/" in output


def test_the_run_summary_counts_what_data_quality_issues_lists(corpus_run, root):
    """Rows (each once, whatever its reasons) and whole files apart: the rows read inside a rejected file are
    not rows of the mart."""
    summary = re.search(r"rows quarantined: ([\d,]+) \(\+ (\d+) whole files? rejected(?:, ([\d,]+) rows? read from them)?\)",
                        corpus_run["result"].stdout)
    assert summary, corpus_run["result"].stdout[-2000:]
    rows, files = _query(root, "select count(distinct (source, file, row_number)) filter (where row_number is not null), "
                               "count(*) filter (where row_number is null) from marts.data_quality_issues").iloc[0]
    assert (int(summary[1].replace(",", "")), int(summary[2])) == (rows, files)
    assert summary[3] == "1"  # the semicolon file's one row, read and rejected with its file
    # each source's progress line counts its files rejected whole, those never read (no date in the name) too
    per_source = _query(root, "select source, count(distinct file) as n from marts.data_quality_issues "
                              "where row_number is null group by source")
    assert set(per_source["source"]) >= {"sales_orders", "skus"}
    for source, files_rejected in zip(per_source["source"], per_source["n"]):
        assert re.search(rf"{source} +\d+ file\(s\).*; {files_rejected} file\(s\) rejected whole",
                         corpus_run["result"].stdout), source


def test_every_broken_extract_is_quarantined_with_its_reason(corpus_run, root):
    issues = _query(root, "select * from marts.data_quality_issues where source = 'sales_orders'")
    by_file = {file: frame for file, frame in issues.groupby("file")}
    assert "empty" in by_file["2026-11-18_empty.csv"]["reason"].iloc[0]
    assert "not a readable Parquet file" in by_file["2026-11-18_corrupt.parquet"]["reason"].iloc[0]
    assert "is the delimiter a comma?" in by_file["2026-11-18_semicolon.csv"]["reason"].iloc[0]
    assert "does not start with an extract date" in by_file["orders_latest.csv"]["reason"].iloc[0]
    latin = by_file["2026-11-18_latin1.csv"]
    assert latin["row_number"].tolist() == [2] and "UTF-8" in latin["reason"].iloc[0]
    future = by_file["2026-11-18_future.csv"]
    assert future["row_number"].tolist() == [2] and "after the extract date" in future["reason"].iloc[0]
    bulk = by_file["2026-11-18_bulk.csv"]
    assert len(bulk) == BULK_ROWS // 100 and set(bulk["row_number"]) == set(range(1, BULK_ROWS + 1, 100))
    assert bulk["reason"].str.contains("ordered_qty must be > 0").all()
    assert "2026-11-18_header_only.csv" not in by_file  # a header-only extract is valid and empty
    assert "2026-11-18_copy.csv" not in by_file  # a duplicate file is an upsert, not an error


def test_each_broken_file_is_a_data_quality_exception_explained_in_one_sentence(corpus_run, root):
    explained = _query(root, "select reference_id, explanation from marts.exceptions "
                             "where exception_type = 'data_quality'").set_index("reference_id")["explanation"]
    assert "whole file sales_orders/2026-11-18_corrupt.parquet was rejected" in explained[
        "sales_orders/2026-11-18_corrupt.parquet"]
    assert explained.str.endswith("; see data_quality_issues.").all()
    assert not explained.str.contains(r"\.;", regex=True).any(), explained.tolist()


def test_no_valid_row_is_lost_and_duplicate_files_do_not_duplicate_rows(corpus_run, root):
    kept = _query(root, "select order_id, line_no, _file from raw.sales_orders")
    assert set(kept["order_id"]) == corpus_run["valid"]
    assert not kept.duplicated(["order_id", "line_no"]).any()
    # Same date, later file name wins: the copy stands for the network's orders.
    network_ids = {row["order_id"] for row in minimal_network()["sales_orders"]}
    assert set(kept.loc[kept["order_id"].isin(network_ids), "_file"]) == {"2026-11-18_copy.csv"}


def test_hostile_file_and_column_names_never_reach_sql(corpus_run, root):
    assert _query(root, "select count(*) as n from raw.skus")["n"][0] == 2
    assert _query(root, "select count(*) as n from raw.locations")["n"][0] == 3
    rejected = _query(root, "select file, reason from marts.data_quality_issues where source = 'skus'")
    assert rejected["file"].tolist() == [HOSTILE_FILE]
    files = set(_query(root, "select distinct _file from raw.locations")["_file"])
    assert files == {HOSTILE_DATED_FILE}


def test_failed_checks_reach_the_alert_log_and_the_webhook_without_leaking_the_url(corpus_run, root):
    alerts = [json.loads(line) for line in (root / "warehouse" / "alerts.jsonl").read_text().splitlines()]
    names = {(a["subject"], a["name"]) for a in alerts}
    assert ("raw/sales_orders", "contract_violations") in names
    assert ("raw/skus", "contract_violations") in names
    assert all(a["webhook"] == "delivered" for a in alerts)
    # the figures the team acts on travel with the alert: the check's own counts, the mart's as well
    orders = next(a for a in alerts if (a["subject"], a["name"]) == ("raw/sales_orders", "contract_violations"))
    quarantined, files = _query(root, "select count(distinct (file, row_number)) filter (where row_number is not null), "
                                      "count(distinct file) filter (where row_number is null) "
                                      "from marts.data_quality_issues where source = 'sales_orders'").iloc[0]
    # (the semicolon file's one row, read and rejected with its file, counts among the rows too)
    assert (orders["details"]["rows_quarantined"], orders["details"]["files_rejected"]) == (quarantined + 1, files)
    posted = [post["json"] for post in corpus_run["posts"]]
    assert len(posted) == len(alerts) and all(p["text"].startswith("[soe ") for p in posted)
    result = corpus_run["result"]
    assert SECRET not in result.stdout + result.stderr
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.suffix != ".csv":
            assert SECRET.encode() not in path.read_bytes(), path


# --- 2. the publish gate ------------------------------------------------------------------


def _manifest(root: Path) -> dict:
    return json.loads((root / "publish" / "_manifest.json").read_text())


@pytest.fixture(scope="module")
def gated_run(corpus_run, root):
    before = _manifest(root)
    report_before = (root / "publish" / "sop_report.html").read_text()
    # a broken export: today's snapshot of 120 rows with the wrong delimiter, every row lost with its file
    broken = root / "landing" / "inventory_snapshots" / "2026-11-19.csv"
    snapshot = pd.DataFrame(minimal_network()["inventory_snapshots"] * 30).assign(snapshot_date="2026-11-19")
    snapshot.to_csv(broken, sep=";", index=False)
    try:
        result = _soe(_run_args(root, "--as-of", "2026-11-19"))
    finally:
        broken.unlink()
    return {"result": result, "before": before, "report_before": report_before}


def test_a_broken_newest_export_blocks_publishing_and_keeps_the_previous_set(gated_run, root):
    result = gated_run["result"]
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output and "dagster._core" not in output  # messages, not Python's class names
    assert ("publishing blocked: more than 25% of the rows quarantined in inventory_snapshots: 120 of 120 rows of "
            "its newest extract (2026-11-19) (100%)") in output
    assert "    1 blocking asset check failed with ERROR severity:\n    raw/ingest_log: quarantine_share_below_limit" in output
    assert "The previously published marts are untouched" in output
    assert _manifest(root) == gated_run["before"]
    # the S&OP report is part of the set: the blocked run rendered its own, but the published one stays
    assert (root / "publish" / "sop_report.html").read_text() == gated_run["report_before"]
    assert "sop_report.html" in _manifest(root)["files"]
    alerts = [json.loads(line) for line in (root / "warehouse" / "alerts.jsonl").read_text().splitlines()]
    gate = [a for a in alerts if a["name"] == "quarantine_share_below_limit"]
    assert gate and gate[-1]["severity"] == "ERROR" and gate[-1]["as_of"] == "2026-11-19"
    assert alerts[-1]["kind"] == "run_failed" and alerts[-1]["as_of"] == "2026-11-19"


def test_publishing_on_its_own_after_a_blocked_run_is_refused(gated_run, root):
    """The UI can materialize published_marts alone (no gate in that run): it judges the gates itself."""
    import dagster as dg

    from orchestration.definitions import build_definitions
    from orchestration.resources import SoeSettings, WarehouseResource

    defs = build_definitions(
        SoeSettings(landing_dir=str(root / "landing"), publish_dir=str(root / "publish")),
        WarehouseResource(path=str(root / "warehouse" / "soe.duckdb")),
    )
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=[dg.AssetKey("published_marts")], raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message + str(failure.step_failure_data.user_failure_data)
    assert "publishing blocked: more than 25% of the rows quarantined in inventory_snapshots" in message
    assert _manifest(root) == gated_run["before"]


# --- 3. crash safety ----------------------------------------------------------------------


def _read_published(publish: Path) -> dict:
    current = Path(os.path.realpath(publish / "current"))
    manifest = json.loads((current / "_manifest.json").read_text())
    counts = {table: len(pd.read_parquet(current / f"{table}.parquet")) for table in manifest["row_counts"]}
    return {"manifest": manifest, "counts": counts}


@pytest.fixture(scope="module")
def killed_run(gated_run, root):
    before = _read_published(root / "publish")
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "orchestration.cli", *_run_args(root)], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    seen = []
    deadline = time.monotonic() + 600
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith("[detected_exceptions] started") or time.monotonic() > deadline:
                break
        # the first run paused as its detect step starts (it would finish before a second process is up): a
        # second run on the warehouse must not start
        process.send_signal(signal.SIGSTOP)
        second = _soe(_run_args(root, "--as-of", "2026-11-18"))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    return {"before": before, "seen": "".join(seen), "returncode": process.returncode, "second": second,
            "pid": process.pid}


def test_a_second_run_on_a_warehouse_a_run_is_using_is_refused(killed_run):
    second = killed_run["second"]
    output = second.stdout + second.stderr
    assert second.returncode == 2, output[-3000:]
    assert "another soe run is using the warehouse" in output and f"pid {killed_run['pid']}" in output
    assert "Traceback" not in output and "[landing_zone] started" not in output


def test_a_run_killed_in_the_detect_stage_leaves_the_published_marts_intact(killed_run, root):
    assert "[detected_exceptions] started" in killed_run["seen"], killed_run["seen"][-2000:]
    assert killed_run["returncode"] == -signal.SIGKILL
    after = _read_published(root / "publish")
    assert after == killed_run["before"]
    assert after["counts"] == after["manifest"]["row_counts"]


# --- 4. readers while runs publish; re-runs -----------------------------------------------

READER = textwrap.dedent(
    """
    import json, os, sys, time
    import pyarrow.parquet as pq
    publish, stop = sys.argv[1], sys.argv[2]
    seen, errors, reads = set(), [], 0
    deadline = time.monotonic() + 900
    while not os.path.exists(stop) and time.monotonic() < deadline:
        try:
            current = os.path.realpath(os.path.join(publish, "current"))
            with open(os.path.join(current, "_manifest.json")) as f:
                manifest = json.load(f)
            for table, rows in manifest["row_counts"].items():
                data = pq.read_table(os.path.join(current, table + ".parquet"))
                if data.num_rows != rows:
                    errors.append(f"{table}: {data.num_rows} rows, manifest says {rows}")
                if "as_of" in data.column_names and not table.endswith("history") and data.num_rows:
                    values = {str(v) for v in data.column("as_of").to_pylist()}
                    if values != {manifest["as_of"]}:
                        errors.append(f"{table}: as_of {sorted(values)} in a set for {manifest['as_of']}")
            seen.add((manifest["run_id"], manifest["as_of"]))
            reads += 1
        except Exception as error:  # any failure to read a complete set is a finding
            errors.append(f"{type(error).__name__}: {error}")
        time.sleep(0.05)
    print(json.dumps({"reads": reads, "sets": sorted(seen), "errors": errors[:20]}))
    """
)


@pytest.fixture(scope="module")
def reruns(killed_run, root):
    stop = root / "stop-reader"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(root / "publish"), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        first = _soe(_run_args(root, "--as-of", "2026-11-19"))
        history_before = _query(root, "select count(*) as n from marts.exception_history where as_of = '2026-11-18'")
        second = _soe(_run_args(root, "--as-of", "2026-11-18"))
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=120)
    return {"first": first, "second": second, "reader": json.loads(out), "history_before": history_before["n"][0]}


def test_the_next_run_after_a_kill_completes_normally(reruns, root):
    assert reruns["first"].returncode == 0, (reruns["first"].stdout + reruns["first"].stderr)[-3000:]
    # the killed run could record nothing: the next run finds its process gone, records the failure and alerts
    assert "of 'soe run' ended without finishing (its process is gone: killed?)" in reruns["first"].stdout
    alerts = [json.loads(line) for line in (root / "warehouse" / "alerts.jsonl").read_text().splitlines()]
    assert any(a["kind"] == "run_failed" and "ended before the run finished (killed?)" in a["message"] for a in alerts)
    assert reruns["second"].returncode == 0, (reruns["second"].stdout + reruns["second"].stderr)[-3000:]
    # the re-run of the earlier day is a backfill: its complete set lands beside current, which stays on the latest day
    assert _manifest(root)["as_of"] == "2026-11-19"
    sets = [version for version in (root / "publish" / ".versions").iterdir() if not version.name.startswith(".")]
    newest = max(sets, key=lambda version: version.name)
    backfill = json.loads((newest / "_manifest.json").read_text())
    assert backfill["as_of"] == "2026-11-18"
    assert {table: len(pd.read_parquet(newest / f"{table}.parquet")) for table in backfill["row_counts"]} == backfill["row_counts"]


def test_a_reader_process_never_sees_a_partial_or_mixed_set(reruns):
    reader = reruns["reader"]
    assert reader["errors"] == []
    assert reader["reads"] > 10
    assert {as_of for _, as_of in reader["sets"]} == {"2026-11-18", "2026-11-19"}  # both switches were seen


def test_rerunning_an_as_of_replaces_its_exception_history(reruns, root):
    history = _query(root, "select as_of, exception_id from marts.exception_history")
    assert not history.duplicated().any()
    after = int((history["as_of"] == pd.Timestamp("2026-11-18")).sum())
    assert after == reruns["history_before"]
    manifest = _manifest(root)
    assert set(manifest) >= {"as_of", "run_id", "row_counts", "schema_version"}


# --- 5. Ctrl-C and SIGTERM ------------------------------------------------------------------


def _run_stopped_in_dbt(root: Path, stop: Callable[[subprocess.Popen], None]) -> dict:
    """`soe run` in its own process group, as a terminal's foreground job or a service's, stopped by ``stop`` a
    second after dbt starts."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "orchestration.cli", *_run_args(root)], cwd=REPO, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith("[soe_dbt_models] started"):
                time.sleep(1.0)  # dbt is running
                stop(process)
                break
        seen.extend(process.stdout)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return {"output": "".join(seen), "returncode": process.returncode}


@pytest.fixture(scope="module")
def interrupted_run(reruns, root):
    before = _read_published(root / "publish")
    # to the whole process group, as a terminal's Ctrl-C: it reaches soe, dbt and Dagster's helpers alike
    return {"before": before, **_run_stopped_in_dbt(root, lambda process: os.killpg(process.pid, signal.SIGINT))}


def test_ctrl_c_stops_the_run_with_one_clear_message_and_keeps_the_published_set(interrupted_run, root):
    output = interrupted_run["output"]
    assert interrupted_run["returncode"] == 130, output[-3000:]
    assert "[soe_dbt_models] FAILED" in output and "interrupted (Ctrl-C or a stop signal)" in output
    assert "run interrupted after" in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    assert "Dependencies for step" not in output  # every later step's 'not executing' line: the run's end says it
    assert _read_published(root / "publish") == interrupted_run["before"]
    alert = json.loads((root / "warehouse" / "alerts.jsonl").read_text().splitlines()[-1])
    assert alert["kind"] == "run_failed"
    assert alert["message"].startswith("step soe_dbt_models failed: interrupted (Ctrl-C or a stop signal)")


@pytest.mark.parametrize("to_group", [False, True], ids=["to-soe-alone", "to-its-process-group"])
def test_sigterm_stops_the_run_as_ctrl_c_does_with_exit_code_143(tmp_path, to_group):
    """SIGTERM to soe alone, as `kill`, Kubernetes or a cron wrapper's timeout send it, or to its process group
    with dbt, as systemd does: the run stops as on Ctrl-C, and exits 128 + 15, which supervisors read as
    "stopped on request", not 130 ("Ctrl-C")."""
    write_landing_zone(tmp_path / "landing", minimal_network())
    stopped = _run_stopped_in_dbt(tmp_path, lambda process: (os.killpg if to_group else os.kill)(process.pid,
                                                                                                 signal.SIGTERM))
    output = stopped["output"]
    assert stopped["returncode"] == 143, output[-3000:]
    assert "run terminated (SIGTERM) after" in output and "run interrupted" not in output
    if not to_group:  # to the group it also ends the `tail` Dagster mirrors a step's captured output with
        assert "[soe_dbt_models] FAILED" in output and "interrupted (Ctrl-C or a stop signal)" in output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    assert not (tmp_path / "publish" / "current").exists()
    alert = json.loads((tmp_path / "warehouse" / "alerts.jsonl").read_text().splitlines()[-1])
    assert alert["kind"] == "run_failed"
    assert alert["message"].startswith("step soe_dbt_models failed: interrupted (Ctrl-C or a stop signal)")


def test_sigterm_once_the_run_has_ended_says_the_run_completed_and_what_it_published(tmp_path):
    """A stop signal after the run's last step, as soe reads the warehouse for its summary: the run stands as
    recorded, a success, and its set is published; soe says so (exit 143), not only "terminated"."""
    write_landing_zone(tmp_path / "landing", minimal_network())
    # a real SIGTERM, sent at the moment soe starts its summary
    stopped_at_the_summary = textwrap.dedent("""
        import os, signal, sys
        from orchestration import cli
        summary = cli._print_summary
        def signalled_summary(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            return summary(*args, **kwargs)
        cli._print_summary = signalled_summary
        sys.exit(cli.main(sys.argv[1:]))
    """)
    process = subprocess.run([sys.executable, "-u", "-c", stopped_at_the_summary, *_run_args(tmp_path)], cwd=REPO,
                             capture_output=True, text=True, timeout=600)
    output = process.stdout + process.stderr
    assert process.returncode == 143, output[-3000:]
    said = re.search(r"run completed in [\d.]+ s \(run id ([\w-]+)\); terminated \(SIGTERM\) before its summary\. "
                     r"Its set of marts had been published before it ended: readers get it\.", output)
    assert said, output[-3000:]
    assert "soe: terminated" not in output and "Traceback" not in output
    assert json.loads((tmp_path / "publish" / "current" / "_manifest.json").read_text())["run_id"] == said.group(1)
    import dagster as dg

    with dg.DagsterInstance.from_config(str(tmp_path / "warehouse" / "dagster_home")) as instance:
        assert instance.get_run_by_id(said.group(1)).status == dg.DagsterRunStatus.SUCCESS


def test_sigterm_stops_a_command_outside_a_run_with_exit_code_143(tmp_path):
    """Outside a Dagster run (here `soe generate` simulating a large network) SIGTERM ends the command with its
    one line and 143 too, not Python's death by the signal."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "orchestration.cli", "generate", "--out", str(tmp_path / "landing"),
         "--skus", "50000"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().startswith("simulating SKUs")
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, errors[-3000:]
    assert errors.strip() == "soe: terminated (SIGTERM)"
