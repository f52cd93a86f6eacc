"""Operations pieces on their own: alert sink (real local webhook), landing-zone sensor cursor,
input-health findings, the GX suite on the trusted view, the definitions' checks and sensors."""

import base64
import fcntl
import json
import os
import re
import socket
import threading
import time
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from soe_assets.alerts import WEBHOOK_ENV, Alert, deliver, read_alert_log
from soe_assets.ingest.health import (
    QualityLimits,
    SourceHealth,
    contract_violations,
    freshness,
    parse_freshness_days,
    quarantine_share_below_limit,
    required_sources_have_rows,
)

SECRET = "T0KEN-s3cret-9f8e7d"


class WebhookServer:
    """A real HTTP server on 127.0.0.1 that records every JSON POST."""

    def __init__(self, status: int = 200) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, "content_type": self.headers["Content-Type"],
                                 "authorization": self.headers["Authorization"], "json": json.loads(body)})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/{SECRET}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _alert(**overrides) -> Alert:
    base = dict(kind="check_failed", severity="WARN", subject="raw/sales_orders", name="freshness",
                message="sales_orders: newest usable extract is 4 days old", run_id="r1", as_of="2026-11-18")
    return Alert(**{**base, **overrides})


def test_alert_goes_to_the_log_and_to_a_real_webhook_without_leaking_the_url(tmp_path, monkeypatch):
    log = tmp_path / "alerts.jsonl"
    with WebhookServer() as server:
        monkeypatch.setenv(WEBHOOK_ENV, server.url)
        deliveries = deliver([_alert(), _alert(kind="run_failed", severity="ERROR", name="soe_full_run")], log)
    assert [d.webhook_status for d in deliveries] == ["delivered", "delivered"]
    assert len(server.received) == 2
    first = server.received[0]
    assert first["content_type"] == "application/json" and first["path"] == f"/hooks/{SECRET}"
    assert first["json"]["text"].startswith("[soe WARN] check failed: raw/sales_orders / freshness")  # Slack field
    assert first["json"]["as_of"] == "2026-11-18" and first["json"]["severity"] == "WARN"
    logged = read_alert_log(log)
    assert [a["name"] for a in logged] == ["freshness", "soe_full_run"]
    assert logged[0]["webhook"] == "delivered"
    assert datetime.fromisoformat(logged[0]["raised_at"]).utcoffset() is not None  # an instant, not a wall clock
    assert SECRET not in log.read_text()


def test_a_failing_webhook_is_reported_without_the_url_and_the_log_still_gets_the_alert(tmp_path, monkeypatch):
    log = tmp_path / "alerts.jsonl"
    warnings = []
    with WebhookServer(status=500) as server:
        monkeypatch.setenv(WEBHOOK_ENV, server.url)
        (http_error,) = deliver([_alert()], log, warn=warnings.append)
    # Nothing listens on this port any more: connection refused.
    (refused,) = deliver([_alert()], log, warn=warnings.append)
    assert http_error.webhook_status == "failed: HTTP 500"
    assert refused.webhook_status.startswith("failed: URLError")
    assert len(read_alert_log(log)) == 2
    assert all(SECRET not in text for text in [log.read_text(), *warnings])


@pytest.mark.parametrize("url", [f"hooks.example.com/services/{SECRET}", f"ftp://hooks.example.com/{SECRET}",
                                 f"https:///{SECRET}", f"hooks.example.com:443/{SECRET}",
                                 f"https://[hooks.example.com/{SECRET}"])
def test_a_webhook_url_that_is_no_http_url_is_a_failed_delivery_not_a_crash(tmp_path, monkeypatch, url):
    """A URL written without its https:// (an easy slip): every alert still reaches the log, the delivery says
    what is wrong with the URL without showing it."""
    monkeypatch.setenv(WEBHOOK_ENV, url)
    warnings = []
    deliveries = deliver([_alert(), _alert(name="contract_violations")], tmp_path / "alerts.jsonl", warn=warnings.append)
    assert [d.webhook_status.startswith(f"failed: {WEBHOOK_ENV} is not a usable URL: ") for d in deliveries] == [True] * 2
    assert len(read_alert_log(tmp_path / "alerts.jsonl")) == 2
    assert all(SECRET not in text for text in [(tmp_path / "alerts.jsonl").read_text(), *warnings])


def test_a_webhook_that_never_answers_cannot_stall_the_step(tmp_path, monkeypatch):
    """A server that takes the request and never answers: the posts of one step share a time budget (a join on
    the post, so a server trickling its answer byte by byte is cut off alike), and every alert reaches the log."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # accepted by the kernel, never answered
        monkeypatch.setenv(WEBHOOK_ENV, f"http://127.0.0.1:{silent.getsockname()[1]}/hooks/{SECRET}")
        started = time.monotonic()
        deliveries = deliver([_alert(name=f"check_{i}") for i in range(6)], tmp_path / "alerts.jsonl",
                             budget_seconds=1.5)
        elapsed = time.monotonic() - started
    assert elapsed < 4, elapsed  # six posts of up to 5 s each, one after another, took 30 s
    statuses = [d.webhook_status for d in deliveries]
    assert statuses[0].startswith("failed: no answer within") and statuses[-1].startswith("failed: not sent"), statuses
    assert [a["name"] for a in read_alert_log(tmp_path / "alerts.jsonl")] == [f"check_{i}" for i in range(6)]


def test_credentials_in_the_webhook_url_are_sent_as_basic_authorization(tmp_path, monkeypatch):
    log = tmp_path / "alerts.jsonl"
    with WebhookServer() as server:
        host = server.url.removeprefix("http://")
        monkeypatch.setenv(WEBHOOK_ENV, f"http://alerts:{SECRET}@{host}")
        (delivery,) = deliver([_alert()], log)
    assert delivery.webhook_status == "delivered"
    (posted,) = server.received
    assert posted["authorization"] == "Basic " + base64.b64encode(f"alerts:{SECRET}".encode()).decode()
    assert posted["path"] == f"/hooks/{SECRET}"
    assert SECRET not in log.read_text()


def test_without_a_webhook_alerts_are_only_logged(tmp_path, monkeypatch):
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    (delivery,) = deliver([_alert()], tmp_path / "a" / "alerts.jsonl")
    assert delivery.webhook_status == "not configured"
    assert read_alert_log(tmp_path / "a" / "alerts.jsonl")[0]["message"].startswith("sales_orders")


# --- landing-zone sensor ------------------------------------------------------------------


def test_sensor_requests_one_run_per_new_batch_and_never_for_unchanged_files(tmp_path):
    from orchestration.sensors import next_batch, scan_landing_zone

    landing = tmp_path / "landing"
    (landing / "skus").mkdir(parents=True)
    (landing / "skus" / "2026-11-18.csv").write_text("sku_id\n")
    (landing / "sales_orders").mkdir()
    (landing / "sales_orders" / "2026-11-18.csv").write_text("order_id\n")
    (landing / "not_a_source").mkdir()
    (landing / "not_a_source" / "x.csv").write_text("x\n")

    first = next_batch(None, scan_landing_zone(landing))
    assert first is not None and first.new_files == {"skus": ["2026-11-18.csv"], "sales_orders": ["2026-11-18.csv"]}
    assert next_batch(first.cursor, scan_landing_zone(landing)) is None  # unchanged: no second run

    (landing / "sales_orders" / "2026-11-19.csv").write_text("order_id\n")
    (landing / "sales_orders" / "2026-11-19_eu.csv").write_text("order_id\n")
    second = next_batch(first.cursor, scan_landing_zone(landing))
    assert second.new_files == {"sales_orders": ["2026-11-19.csv", "2026-11-19_eu.csv"]}  # one run for the batch
    assert second.run_key != first.run_key
    assert next_batch(second.cursor, scan_landing_zone(landing)) is None

    rewritten = landing / "skus" / "2026-11-18.csv"
    rewritten.write_text("sku_id\nSKU-A\n")
    os.utime(rewritten, ns=(rewritten.stat().st_atime_ns, rewritten.stat().st_mtime_ns + 1_000_000_000))
    third = next_batch(second.cursor, scan_landing_zone(landing))
    assert third.new_files == {"skus": ["2026-11-18.csv"]} and third.removed_files == {}


def test_sensor_runs_when_an_extract_is_removed_and_again_when_it_comes_back(tmp_path):
    """Taking a broken extract away changes what a run reads: it starts a run. Putting the file back returns the
    landing zone to an earlier state, whose run has already happened: it runs again all the same."""
    from orchestration.sensors import next_batch, scan_landing_zone

    folder = tmp_path / "landing" / "sales_orders"
    folder.mkdir(parents=True)
    (folder / "2026-11-18.csv").write_text("order_id\n")
    broken = folder / "2026-11-19.csv"
    broken.write_text("order_id;line_no\n")
    first = next_batch(None, scan_landing_zone(tmp_path / "landing"))
    stat = broken.stat()
    broken.unlink()
    removed = next_batch(first.cursor, scan_landing_zone(tmp_path / "landing"))
    assert removed.new_files == {} and removed.removed_files == {"sales_orders": ["2026-11-19.csv"]}
    assert next_batch(removed.cursor, scan_landing_zone(tmp_path / "landing")) is None
    broken.write_text("order_id;line_no\n")
    os.utime(broken, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # exactly as it was
    back = next_batch(removed.cursor, scan_landing_zone(tmp_path / "landing"))
    assert back.new_files == {"sales_orders": ["2026-11-19.csv"]}
    def as_written(cursor: str) -> list[str]:  # name, modification time and size: the change time is new
        return [entry.rsplit("|", 1)[0] for entry in json.loads(cursor)["files"]["sales_orders"]]

    assert as_written(back.cursor) == as_written(first.cursor)  # the zone as it first was ...
    assert back.run_key not in {first.run_key, removed.run_key}  # ... runs again (Dagster skips a key it has seen)
    # cursors of earlier forms: the files alone, and files without their change time (what the zone is now,
    # name, modification time and size, is what it was then: no run)
    without_change_times = {source: [entry.rsplit("|", 1)[0] for entry in entries]
                            for source, entries in json.loads(first.cursor)["files"].items()}
    legacy = next_batch(json.dumps(without_change_times), scan_landing_zone(tmp_path / "landing"))
    assert legacy is None
    previous = next_batch(json.dumps({"batch": 7, "files": without_change_times}), scan_landing_zone(tmp_path / "landing"))
    assert previous is None
    broken.write_text("order_id;line_no;x\n")  # but a file changed since is new to them
    changed = next_batch(json.dumps({"batch": 7, "files": without_change_times}), scan_landing_zone(tmp_path / "landing"))
    assert changed.new_files == {"sales_orders": ["2026-11-19.csv"]} and changed.run_key.startswith("landing-8-")
    # the last folder emptied counts too
    for path in folder.iterdir():
        path.unlink()
    emptied = next_batch(back.cursor, scan_landing_zone(tmp_path / "landing"))
    assert emptied.removed_files == {"sales_orders": ["2026-11-18.csv", "2026-11-19.csv"]}


def test_sensor_counts_files_still_being_written(tmp_path):
    """A file modified less than the settle time ago is waited for; so is one dated ahead of this clock (unpacked
    from an archive made in another time zone, copied with cp -p from a clock ahead), but only until the sensor
    has seen it unchanged for the settle time, not for the hours until its date."""
    from orchestration.sensors import files_being_written, first_seen_while_recent, scan_landing_zone

    (tmp_path / "skus").mkdir()
    path = tmp_path / "skus" / "2026-11-18.csv"
    path.write_text("sku_id\n")
    now = path.stat().st_mtime
    seen = first_seen_while_recent(scan_landing_zone(tmp_path), 60, {}, now + 5)
    assert files_being_written(seen, 60, now + 5) == ["skus/2026-11-18.csv"]
    assert first_seen_while_recent(scan_landing_zone(tmp_path), 60, seen, now + 61) == {}  # settled by its time

    os.utime(path, (now + 9 * 3600, now + 9 * 3600))
    ahead = scan_landing_zone(tmp_path)
    seen = first_seen_while_recent(ahead, 60, {}, now + 5)
    assert files_being_written(seen, 60, now + 5) == ["skus/2026-11-18.csv"]
    seen = first_seen_while_recent(ahead, 60, seen, now + 40)
    assert files_being_written(seen, 60, now + 40) == ["skus/2026-11-18.csv"]
    seen = first_seen_while_recent(ahead, 60, seen, now + 66)
    assert files_being_written(seen, 60, now + 66) == []  # seen unchanged for a minute
    path.write_text("sku_id\nSKU-A\n")  # written again: waited for again
    os.utime(path, (now + 9 * 3600, now + 9 * 3600))
    seen = first_seen_while_recent(scan_landing_zone(tmp_path), 60, seen, now + 70)
    assert files_being_written(seen, 60, now + 70) == ["skus/2026-11-18.csv"]


def test_sensor_runs_a_corrected_resend_copied_with_its_old_times_and_size(tmp_path):
    """cp -p of a corrected extract over the old one keeps its modification time and size; its change time
    moves, and ingest reads it again: so must the sensor start a run."""
    from orchestration.sensors import next_batch, scan_landing_zone

    (tmp_path / "sales_orders").mkdir()
    path = tmp_path / "sales_orders" / "2026-11-18.csv"
    path.write_text("order_id,ordered_qty\nSO-1,10\n")
    first = next_batch(None, scan_landing_zone(tmp_path))
    stat = path.stat()
    path.write_text("order_id,ordered_qty\nSO-1,90\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    resent = next_batch(first.cursor, scan_landing_zone(tmp_path))
    assert resent is not None and resent.new_files == {"sales_orders": ["2026-11-18.csv"]}


def test_sensor_evaluates_through_dagster(tmp_path):
    import dagster as dg

    from orchestration.resources import SoeSettings
    from orchestration.sensors import landing_zone_sensor

    (tmp_path / "skus").mkdir()
    (tmp_path / "skus" / "2026-11-18.csv").write_text("sku_id\n")
    os.environ["SOE_SENSOR_SETTLE_SECONDS"] = "0"
    instance = dg.DagsterInstance.ephemeral()
    try:
        settings = SoeSettings(landing_dir=str(tmp_path), publish_dir=str(tmp_path / "p"))
        context = dg.build_sensor_context(instance=instance, resources={"settings": settings})
        request = landing_zone_sensor(context)
        assert isinstance(request, dg.RunRequest) and request.run_key.startswith("landing-")
        again = dg.build_sensor_context(instance=instance, cursor=context.cursor, resources={"settings": settings})
        skipped = landing_zone_sensor(again)
        assert isinstance(skipped, dg.SkipReason) and skipped.skip_message.startswith("no new, changed or removed extract")
        settled = (tmp_path / "skus" / "2026-11-18.csv").stat().st_mtime - 120
        os.utime(tmp_path / "skus" / "2026-11-18.csv", (settled, settled))
        context = dg.build_sensor_context(instance=instance, resources={"settings": settings})
        assert isinstance(landing_zone_sensor(context), dg.RunRequest)  # the cursor holds the settled file
        (tmp_path / "skus" / "2026-11-19.csv").write_text("sku_id\n")  # being written: not settled yet
        (tmp_path / "sales_orders").mkdir()
        (tmp_path / "sales_orders" / "2026-11-19.csv").write_text("order_id\n")
        os.utime(tmp_path / "sales_orders" / "2026-11-19.csv", (settled, settled))  # settled and new
        os.environ["SOE_SENSOR_SETTLE_SECONDS"] = "60"
        waiting = landing_zone_sensor(dg.build_sensor_context(instance=instance, cursor=context.cursor,
                                                              resources={"settings": settings}))
        # no run for the settled file either: the run would read the unsettled one half-written
        assert isinstance(waiting, dg.SkipReason)
        assert waiting.skip_message == ("waiting for 1 extract(s) still being written (settle time 60 s): "
                                        "skus/2026-11-19.csv")
    finally:
        del os.environ["SOE_SENSOR_SETTLE_SECONDS"]


@pytest.mark.parametrize(("status", "busy"), [
    ("QUEUED", True), ("NOT_STARTED", True), ("STARTING", True), ("STARTED", True),
    ("SUCCESS", False), ("FAILURE", False), ("CANCELED", False),
])
def test_a_run_queued_or_under_way_keeps_the_warehouse_busy(tmp_path, status, busy):
    """A run the sensors requested may wait in the queue before it starts: another requested then would be
    refused its warehouse just the same."""
    import uuid

    import dagster as dg
    # a queued run names the code location it will run from (the daemon launches it from there); no public API
    # builds one without a running code server
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin

    from orchestration.sensors import warehouse_busy

    origin = RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("soe"), "__repository__"),
                             "soe_full_run")
    with dg.DagsterInstance.ephemeral() as instance:
        run_id = str(uuid.uuid4())
        instance.add_run(dg.DagsterRun(job_name="soe_full_run", run_id=run_id, status=dg.DagsterRunStatus[status],
                                       remote_job_origin=origin))
        reason = warehouse_busy(instance, tmp_path / "soe.duckdb")
    assert reason == (f"waiting for run {run_id[:8]} to finish: the warehouse takes one run at a time" if busy else None)


def test_sensor_runs_a_file_dated_ahead_of_its_clock_once_it_has_settled(tmp_path, monkeypatch):
    """Through Dagster's ticks: the wait for a file dated hours ahead ends after the settle time (the cursor
    carries when the sensor first saw it), its batch runs, and the next tick does not wait for it again."""
    import dagster as dg

    from orchestration.resources import SoeSettings
    from orchestration.sensors import landing_zone_sensor

    (tmp_path / "skus").mkdir()
    path = tmp_path / "skus" / "2026-11-18.csv"
    path.write_text("sku_id\n")
    ahead = time.time() + 9 * 3600
    os.utime(path, (ahead, ahead))
    monkeypatch.setenv("SOE_SENSOR_SETTLE_SECONDS", "1")
    monkeypatch.setenv("SOE_WAREHOUSE", str(tmp_path / "soe.duckdb"))
    instance = dg.DagsterInstance.ephemeral()
    settings = SoeSettings(landing_dir=str(tmp_path), publish_dir=str(tmp_path / "p"))

    def tick(cursor: str | None) -> tuple[object, str | None]:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"settings": settings})
        return landing_zone_sensor(context), context.cursor

    waiting, cursor = tick(None)
    assert waiting.skip_message == "waiting for 1 extract(s) still being written (settle time 1 s): skus/2026-11-18.csv"
    time.sleep(1.2)
    request, cursor = tick(cursor)
    assert isinstance(request, dg.RunRequest)
    done, _ = tick(cursor)
    assert done.skip_message.startswith("no new, changed or removed extract")


def test_sensor_ignores_the_hidden_files_ingest_never_reads(tmp_path):
    """A copy in progress under a hidden name (rsync's ``.name.XXXXXX``) is no extract: ingest reads visible files
    only, so the sensor neither lists it nor starts a run for it."""
    from orchestration.sensors import next_batch, scan_landing_zone

    (tmp_path / "skus").mkdir()
    (tmp_path / "skus" / "2026-11-18.csv").write_text("sku_id\n")
    first = next_batch(None, scan_landing_zone(tmp_path))
    (tmp_path / "skus" / ".2026-11-19.csv.a1B2c3").write_text("sku_id\n")
    assert [entry.split("|")[0] for entry in scan_landing_zone(tmp_path)["skus"]] == ["2026-11-18.csv"]
    assert next_batch(first.cursor, scan_landing_zone(tmp_path)) is None


def test_sensor_settle_time_is_a_minute_unless_set_and_zero_never_waits(tmp_path, monkeypatch):
    """``SOE_SENSOR_SETTLE_SECONDS`` defaults to 60; set to 0, not even a file dated ahead of the clock is waited
    for."""
    from orchestration.sensors import (
        SETTLE_ENV,
        files_being_written,
        first_seen_while_recent,
        scan_landing_zone,
        settle_seconds,
    )

    monkeypatch.delenv(SETTLE_ENV, raising=False)
    assert settle_seconds() == 60
    monkeypatch.setenv(SETTLE_ENV, "0")
    assert settle_seconds() == 0
    (tmp_path / "skus").mkdir()
    path = tmp_path / "skus" / "2026-11-18.csv"
    path.write_text("sku_id\n")
    now = path.stat().st_mtime
    os.utime(path, (now + 9 * 3600, now + 9 * 3600))
    seen = first_seen_while_recent(scan_landing_zone(tmp_path), 0, {}, now)
    assert files_being_written(seen, 0, now) == []


# --- input health -------------------------------------------------------------------------


def _health(**overrides) -> SourceHealth:
    base = dict(source="sales_orders", required=True, as_of=date(2026, 11, 18), files_read=1, files_rejected=0,
                rejected_files=(), rows_read=1000, rows_valid=990, rows_quarantined=10,
                latest_accepted=date(2026, 11, 18), newest_extract=date(2026, 11, 18),
                newest_rows_read=1000, newest_rows_quarantined=10)
    return SourceHealth(**{**base, **overrides})


def test_freshness_limits_come_from_config_over_the_contract_defaults():
    limits = QualityLimits(parse_freshness_days("sales_orders=1, sop_plan=31"))
    assert limits.freshness_limit("sales_orders") == 1
    assert limits.freshness_limit("inventory_snapshots") == 2  # execution default
    assert limits.freshness_limit("skus") == 35  # master data default
    two_days_old = _health(latest_accepted=date(2026, 11, 16))
    assert not freshness(two_days_old, limits).passed
    assert "limit 1 days" in freshness(two_days_old, limits).message
    assert freshness(two_days_old, QualityLimits({})).passed
    absent_optional = _health(source="pos_sales", required=False, files_read=0, latest_accepted=None)
    assert freshness(absent_optional, limits).passed
    with pytest.raises(ValueError, match="SOURCE=DAYS"):
        parse_freshness_days("orders=1")


def test_freshness_limits_given_to_soe_run_win_over_the_environments(monkeypatch):
    """`soe run --freshness` overrides `SOE_FRESHNESS_DAYS` source by source; the environment's others stand."""
    from orchestration.cli import RunOptions, _run_settings

    monkeypatch.setenv("SOE_FRESHNESS_DAYS", "sales_orders=1,sop_plan=31")
    quality = _run_settings(RunOptions(freshness_days="sales_orders=5"))
    assert quality.freshness_days == {"sales_orders": 5, "sop_plan": 31}


def test_a_required_source_with_no_extract_at_all_is_not_fresh():
    """Only an optional source may be absent: a required one without any extract has no usable one to be fresh."""
    absent = _health(files_read=0, rows_read=0, rows_valid=0, rows_quarantined=0, latest_accepted=None,
                     newest_extract=None, newest_rows_read=0, newest_rows_quarantined=0)
    finding = freshness(absent, QualityLimits({}))
    assert not finding.passed
    assert finding.message == "sales_orders: no usable extract on or before as_of 2026-11-18"


def test_a_freshness_limit_of_zero_days_asks_for_an_extract_of_as_of_itself():
    limits = QualityLimits(parse_freshness_days("sales_orders=0"))
    assert limits.freshness_limit("sales_orders") == 0
    assert freshness(_health(), limits).passed
    assert not freshness(_health(latest_accepted=date(2026, 11, 17)), limits).passed
    with pytest.raises(ValueError, match="must not be negative"):
        parse_freshness_days("sales_orders=-1")


def test_a_share_exactly_at_its_limit_neither_warns_nor_blocks():
    """Rows quarantined *above* the warning share warn, *more than* the blocking share block (docs/operations.md)."""
    limits = QualityLimits({}, warn_quarantine_share=0.02, block_quarantine_share=0.25, block_min_rows=100)
    assert contract_violations(_health(newest_rows_read=1000, newest_rows_quarantined=20), limits).passed
    assert not contract_violations(_health(newest_rows_read=1000, newest_rows_quarantined=21), limits).passed
    assert quarantine_share_below_limit({"sales_orders": _health(newest_rows_read=400, newest_rows_quarantined=100)},
                                        limits).passed
    assert not quarantine_share_below_limit(
        {"sales_orders": _health(newest_rows_read=400, newest_rows_quarantined=101)}, limits).passed


def test_contract_violations_warn_on_share_and_rejected_files():
    limits = QualityLimits({}, warn_quarantine_share=0.02)
    assert contract_violations(_health(), limits).passed  # 1%
    assert not contract_violations(_health(rows_quarantined=50, newest_rows_quarantined=50), limits).passed
    rejected = contract_violations(_health(files_rejected=1, rejected_files=("2026-11-17_x.csv",)), limits)
    assert not rejected.passed and "2026-11-17_x.csv" in rejected.message


def test_publish_gates():
    limits = QualityLimits({}, block_quarantine_share=0.25)
    fine = {"sales_orders": _health()}
    assert required_sources_have_rows(fine).passed and quarantine_share_below_limit(fine, limits).passed
    assert not required_sources_have_rows({"skus": _health(source="skus", rows_valid=0)}).passed
    assert not quarantine_share_below_limit({"s": _health(newest_rows_quarantined=300)}, limits).passed


def test_a_newest_extract_that_cannot_be_read_warns_and_the_older_one_stands():
    """As with an extract that never came: the previous extract's rows stand (the contract's upsert), the file is
    warned about, freshness judges the age of what stands; publishing goes on."""
    limits = QualityLimits({}, block_quarantine_share=0.25)
    unreadable = _health(source="inventory_snapshots", files_rejected=1, rejected_files=("2026-11-18.parquet",),
                         latest_accepted=date(2026, 11, 17), newest_rows_read=0, newest_rows_quarantined=0)
    assert required_sources_have_rows({"inventory_snapshots": unreadable}).passed
    assert quarantine_share_below_limit({"inventory_snapshots": unreadable}, limits).passed
    warning = contract_violations(unreadable, limits)
    assert not warning.passed and "1 file(s) rejected whole: 2026-11-18.parquet" in warning.message
    assert freshness(unreadable, limits).passed  # a day old: within the 2 days of stock
    assert not freshness(unreadable, QualityLimits({"inventory_snapshots": 0})).passed


@pytest.mark.parametrize(("may_be_empty", "rows_read", "blocks"), [
    (True, 0, None),  # no plants: no production order at all is the truth
    (True, 5, "production_orders: no valid row at all"),  # five read, five lost
    (False, 0, "production_orders: no row at all (its extracts are empty)"),  # an empty export of orders or stock
    # every extract dated after as_of (a replay of a day before the source's first extract): none was read
    (False, None, "production_orders: no extract dated on or before as_of 2026-11-18"),
])
def test_a_source_a_network_can_lack_may_be_empty_but_not_lose_its_rows(may_be_empty, rows_read, blocks):
    empty = _health(source="production_orders", may_be_empty=may_be_empty, rows_read=rows_read or 0, rows_valid=0,
                    rows_quarantined=rows_read or 0, newest_rows_read=rows_read or 0,
                    newest_rows_quarantined=rows_read or 0, files_read=0 if rows_read is None else 1)
    gate = required_sources_have_rows({"production_orders": empty})
    assert gate.passed is (blocks is None)
    if blocks:
        assert gate.message == f"publishing blocked: {blocks}"


@pytest.mark.parametrize(("pos_rows_valid", "blocks"), [(120, False), (0, True)])
def test_sales_orders_may_be_empty_where_point_of_sale_carries_the_demand(pos_rows_valid, blocks):
    """A network of stores books no sales orders: an empty export is its truth while POS has valid rows."""
    healths = {
        "sales_orders": _health(source="sales_orders", may_be_empty_beside="pos_sales", rows_read=0, rows_valid=0,
                                newest_rows_read=0),
        "pos_sales": _health(source="pos_sales", required=False, rows_read=pos_rows_valid, rows_valid=pos_rows_valid),
    }
    gate = required_sources_have_rows(healths)
    assert gate.passed is not blocks
    if blocks:
        assert gate.message == "publishing blocked: sales_orders: no row at all (its extracts are empty)"


def test_a_few_bad_rows_of_a_small_extract_warn_but_do_not_block_publishing():
    """The share of a ten-row file says nothing of a broken export: losses block from ``block_min_rows`` rows on,
    files rejected whole always."""
    limits = QualityLimits({}, block_quarantine_share=0.25, block_min_rows=100)
    small = {"sales_orders": _health(newest_rows_read=10, newest_rows_quarantined=3)}
    assert quarantine_share_below_limit(small, limits).passed
    assert not contract_violations(small["sales_orders"], limits).passed  # still a warning and an alert
    large = {"sales_orders": _health(newest_rows_read=1000, newest_rows_quarantined=300)}
    assert not quarantine_share_below_limit(large, limits).passed
    assert not quarantine_share_below_limit(small, QualityLimits({}, block_min_rows=3)).passed
    # every row of the newest extract quarantined: a one-row restatement is bad input, 500 rows a lost extract
    lost = dict(latest_accepted=date(2026, 11, 17), newest_extract=date(2026, 11, 18))
    restatement = {"purchase_orders": _health(source="purchase_orders", newest_rows_read=1, newest_rows_quarantined=1,
                                              **lost)}
    assert quarantine_share_below_limit(restatement, limits).passed
    assert not quarantine_share_below_limit(
        {"purchase_orders": _health(newest_rows_read=500, newest_rows_quarantined=500, **lost)}, limits).passed
    # a file rejected whole counts the rows read from it: a 500-row export lacking a column is a broken one
    assert not quarantine_share_below_limit(
        {"inventory_snapshots": _health(newest_rows_read=500, newest_rows_quarantined=500, files_rejected=1,
                                        rejected_files=("2026-11-18_b.csv",), **lost)}, limits).passed


def test_a_contract_warning_counts_malformed_lines_for_the_row_as_a_whole(tmp_path):
    """DuckDB's reader files a short row under the first column it lacks: the warning must not send the reader to
    look at that column's values."""
    import duckdb

    from soe_assets.ingest.health import read_source_health
    from soe_assets.ingest.pipeline import ingest_landing_zone, write_run_metadata
    from soe_assets.warehouse import RunContext
    from support import AS_OF, minimal_network, write_landing_zone, write_source

    network = minimal_network()
    landing = write_landing_zone(tmp_path / "landing", {k: v for k, v in network.items() if k != "sales_orders"})
    path = write_source(landing, "sales_orders", [*network["sales_orders"], dict(network["sales_orders"][0],
                                                                                order_id="SO-BAD", status="OPEN")])
    path.write_text(path.read_text() + "SO-SHORT-1,1,C1\nSO-SHORT-2,1,C1\n")
    conn = duckdb.connect()
    result = ingest_landing_zone(landing, AS_OF, conn=conn)
    write_run_metadata(conn, result, RunContext(AS_OF, 13, 4, "test", datetime(2026, 11, 18, 6)))
    health = read_source_health(conn)["sales_orders"]
    assert health.quarantined_columns == (("", 2), ("status", 1))
    assert "most for the row as a whole (2), status (1))" in contract_violations(health, QualityLimits({})).message


def test_the_gates_judge_the_newest_extract_not_every_extract_read(tmp_path):
    """Every row of the newest sales-order extract is rejected: 3 of the 9 rows read, a third, but all of today's,
    and the share gate judges today's (here from 3 rows on). The older extract's rows stand meanwhile."""
    import duckdb

    from soe_assets.ingest.health import read_source_health
    from soe_assets.ingest.pipeline import ingest_landing_zone, write_run_metadata
    from soe_assets.warehouse import RunContext
    from support import AS_OF, minimal_network, write_landing_zone, write_source

    network = minimal_network()
    landing = write_landing_zone(tmp_path / "landing", network, extract=AS_OF - timedelta(days=1))
    orders = network["sales_orders"]
    older = [dict(orders[0], order_id=f"SO-OLD-{i}") for i in range(6)]
    write_source(landing, "sales_orders", older, extract=AS_OF - timedelta(days=1), suffix="_more")
    write_landing_zone(landing, {k: v for k, v in network.items() if k != "sales_orders"})
    write_source(landing, "sales_orders", [dict(o, status="OPEN") for o in orders[:3]])
    conn = duckdb.connect()
    result = ingest_landing_zone(landing, AS_OF, conn=conn)
    write_run_metadata(conn, result, RunContext(AS_OF, 13, 4, "test", datetime(2026, 11, 18, 6)))
    health = read_source_health(conn)["sales_orders"]
    assert (health.rows_read, health.rows_quarantined) == (len(orders) + 6 + 3, 3)
    assert (health.newest_extract, health.newest_rows_read, health.newest_rows_quarantined) == (AS_OF, 3, 3)
    assert health.latest_accepted == AS_OF - timedelta(days=1)
    assert health.quarantined_columns == (("status", 3),)  # the warning says where to look
    assert "(100.0%, warning above 2%; most for status (3)) (see data_quality_issues)" in \
        contract_violations(health, QualityLimits({})).message
    limits = QualityLimits({}, block_min_rows=3)
    gate = quarantine_share_below_limit({"sales_orders": health}, limits)  # 100 % of today's rows
    assert not gate.passed and "sales_orders: 3 of 3 rows of its newest extract (2026-11-18) (100%)" in gate.message
    assert not freshness(health, QualityLimits({"sales_orders": 0})).passed  # the newest usable one is a day old
    assert required_sources_have_rows(read_source_health(conn)).passed  # yesterday's orders stand
    assert quarantine_share_below_limit({"sales_orders": health}, QualityLimits({})).passed  # 3 rows: a warning


# --- GX suite -----------------------------------------------------------------------------


def _trusted_view(rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame({
        "sku_id": ["SKU-A"] * rows, "location_id": ["DC-1"] * rows,
        "week_start": pd.date_range("2026-11-16", periods=rows, freq="7D"), "week_index": range(rows),
        "inside_time_fence": [True] * rows, "as_of": pd.Timestamp("2026-11-18"),
        "demand_plan_qty": 1.0, "open_order_qty": 0.0, "sensed_demand_qty": 1.0, "scheduled_receipts_qty": 0.0,
        "projected_available_qty": 5.0, "safety_stock_qty": 1.0, "atp_qty": 2.0, "days_of_supply": 7.0,
    })


def test_gx_suite_passes_a_sound_view_and_names_what_breaks():
    from data_contracts.gx_suites import validate_sku_location_week

    assert validate_sku_location_week(_trusted_view(), horizon_weeks=13).success
    broken = _trusted_view()
    broken.loc[0, "atp_qty"] = -1.0
    broken.loc[1, "week_index"] = 13
    broken.loc[2, "sku_id"] = None
    outcome = validate_sku_location_week(broken, horizon_weeks=13)
    assert not outcome.success
    text = " ".join(outcome.failed)
    assert "atp_qty" in text and "week_index" in text and "sku_id" in text


# --- definitions --------------------------------------------------------------------------


def test_definitions_carry_the_checks_sensors_and_blocking_gates(monkeypatch, tmp_path):
    import dagster as dg

    for name in ("SOE_WAREHOUSE", "SOE_LANDING_DIR", "SOE_PUBLISH_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name))
    from orchestration.definitions import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    for expected in [("raw/sales_orders", "freshness"), ("raw/sales_orders", "contract_violations"),
                     ("raw/ingest_log", "required_sources_have_rows"), ("raw/ingest_log", "quarantine_share_below_limit")]:
        assert expected in checks
    assert any(name == "sku_location_week_expectations" for _, name in checks)
    assert any(name == "no_open_findings" for _, name in checks)
    blocking = {key.name for key in graph.asset_check_keys if graph.get_check_spec(key).blocking}
    assert {"required_sources_have_rows", "quarantine_share_below_limit", "sku_location_week_expectations"} <= blocking
    assert "freshness" not in blocking and "contract_violations" not in blocking
    # The publish gates hold back only the publish: nothing but published_marts depends on raw/ingest_log.
    children = graph.get(dg.AssetKey(["raw", "ingest_log"])).child_keys
    assert {key.to_user_string() for key in children} == {"published_marts"}
    sensors = {sensor.name for sensor in defs.sensors}
    assert {"landing_zone_sensor", "run_failure_alert_sensor"} <= sensors


def test_auto_memory_budget_follows_the_landing_zone_within_its_bounds(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from soe_assets.duckdb_settings import (
        GIB, LANDING_DIR_ENV, MEMORY_LIMIT_ENV, auto_budget_bytes, landing_data_bytes, memory_limit,
    )

    # Data size: CSV bytes as they are, Parquet by its uncompressed size (a compressible column is far
    # larger than its file), whatever the extract's name ends with; a file outside the source folders is no
    # extract.
    (tmp_path / "skus").mkdir()
    (tmp_path / "skus" / "2026-11-20.csv").write_text("sku_id\nA\nB\n")
    parquet = tmp_path / "skus" / "2026-11-21.parquet"
    pq.write_table(pa.table({"sku_id": [f"SKU-{i:06d}" + "x" * 200 for i in range(20_000)]}), parquet,
                   use_dictionary=False)
    (tmp_path / "notes.txt").write_text("ignored" * 1000)
    size = landing_data_bytes(tmp_path)
    assert size > len("sku_id\nA\nB\n") + 20_000 * 200 > 5 * parquet.stat().st_size
    (tmp_path / "skus" / "2026-11-22_mdm").write_bytes(parquet.read_bytes())
    assert landing_data_bytes(tmp_path) == 2 * size - len("sku_id\nA\nB\n")

    assert auto_budget_bytes(size, 24 * GIB) == 1 * GIB  # small zones: the 1GiB floor
    assert auto_budget_bytes(2 * GIB, 24 * GIB) == 3 * GIB  # in between: one and a half times the data size
    assert auto_budget_bytes(int(4.6 * GIB), 24 * GIB) == 6 * GIB  # the 10M benchmark's zone: the 6GiB ceiling
    assert auto_budget_bytes(50 * GIB, 64 * GIB) == 6 * GIB  # large zones on a large machine: the ceiling too
    assert auto_budget_bytes(50 * GIB, 8 * GIB) == 2 * GIB  # never above a quarter of the machine
    assert auto_budget_bytes(50 * GIB, 2 * GIB) == 1 * GIB  # the floor holds on a tiny machine

    monkeypatch.setenv(LANDING_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    assert memory_limit() == "1024MiB"
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "AUTO")
    assert memory_limit() == "1024MiB"
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "3GB")  # an explicit size wins
    assert memory_limit() == "3GB"


def test_published_python_marts_keep_their_row_order_and_dbt_marts_keep_their_rows(tmp_path):
    """Exceptions are written by priority and KPIs by name and week: their Parquet keeps that order, on a
    table large enough that DuckDB writes it on both threads. A dbt mart's rows have no order to keep;
    every one of them is published."""
    import duckdb

    from soe_assets.publish import publish_marts

    rows = 400_000
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        conn.execute("SET threads = 2")
        conn.execute("CREATE SCHEMA marts")
        # descending priority: an order the table's values would not give by accident
        conn.execute(f"CREATE TABLE marts.exceptions AS SELECT {rows} - i AS priority_rank, i AS id "
                     f"FROM range({rows}) AS t(i)")
        conn.execute(f"CREATE TABLE marts.sku_location_week AS SELECT i AS week_index FROM range({rows}) AS t(i)")
        published = publish_marts(conn, tmp_path / "publish", run_id="r1", as_of="2026-11-18")

    exceptions = pd.read_parquet(published.version_dir / "exceptions.parquet")
    assert exceptions["id"].tolist() == list(range(rows))
    trusted_view = pd.read_parquet(published.version_dir / "sku_location_week.parquet")
    assert sorted(trusted_view["week_index"].tolist()) == list(range(rows))
    assert published.row_counts == {"exceptions": rows, "sku_location_week": rows}


def test_published_columns_keep_their_declared_nullability_whatever_a_day_holds(tmp_path):
    """A column that may be empty is OPTIONAL in every day's file, also on a day it holds no NULL (or no row), so
    two days stack; a NOT NULL column is REQUIRED."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from soe_assets.publish import publish_marts

    def published_schema(as_of: str, rows: str) -> pa.Schema:
        with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS marts")
            conn.execute("CREATE OR REPLACE TABLE marts.exceptions (exception_id VARCHAR NOT NULL, week_start DATE)")
            if rows:
                conn.execute(f"INSERT INTO marts.exceptions VALUES {rows}")
            published = publish_marts(conn, tmp_path / "publish", run_id=as_of, as_of=as_of)
        return pq.read_schema(published.version_dir / "exceptions.parquet")

    days = [published_schema("2026-11-18", "('E1', DATE '2026-11-16')"),  # no NULL that day
            published_schema("2026-11-19", "('E1', NULL)"),
            published_schema("2026-11-20", "")]
    for schema in days:
        assert not schema.field("exception_id").nullable and schema.field("week_start").nullable
    assert days[0] == days[1] == days[2]


def test_backfills_never_prune_the_set_readers_are_on(tmp_path):
    """Only the newest few sets are kept; the current one, older by name after several backfills, stays."""
    import duckdb

    from soe_assets.publish import KEEP_VERSIONS, published_as_of, publish_marts

    publish = tmp_path / "publish"
    with duckdb.connect() as conn:
        conn.execute("CREATE SCHEMA marts")
        conn.execute("CREATE TABLE marts.exceptions AS SELECT DATE '2026-11-18' AS as_of")
        latest = publish_marts(conn, publish, run_id="latest", as_of="2026-11-18")
        assert latest.is_current
        for days_back in range(1, KEEP_VERSIONS + 2):
            as_of = f"2026-11-{18 - days_back:02d}"
            conn.execute(f"CREATE OR REPLACE TABLE marts.exceptions AS SELECT DATE '{as_of}' AS as_of")
            backfill = publish_marts(conn, publish, run_id=f"backfill{days_back}", as_of=as_of)
            assert not backfill.is_current and backfill.version_dir.is_dir()
            assert backfill.current_as_of == published_as_of(publish) == date(2026, 11, 18)
    assert latest.version_dir.is_dir()
    assert pd.read_parquet(publish / "exceptions.parquet")["as_of"].tolist() == [date(2026, 11, 18)]
    assert len([p for p in (publish / ".versions").iterdir()]) == KEEP_VERSIONS + 1
    # the next day's set switches `current`: the one readers were on until then stays for them until the next
    # publish, though the backfills are newer by name
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA marts")
    conn.execute("CREATE TABLE marts.exceptions AS SELECT DATE '2026-11-19' AS as_of")
    assert publish_marts(conn, publish, run_id="next", as_of="2026-11-19").is_current
    assert pd.read_parquet(latest.version_dir / "exceptions.parquet")["as_of"].tolist() == [date(2026, 11, 18)]
    publish_marts(conn, publish, run_id="after", as_of="2026-11-20")
    assert not latest.version_dir.exists()


def test_sets_are_kept_in_publish_order_whatever_the_clock_says(tmp_path):
    """A clock set back, or the hour repeated when daylight saving time ends, names the next sets earlier than
    the last ones: ordered by that time, pruning would delete the newest sets and keep the older ones. Sets are
    ordered by their sequence number; those of an installation from before the numbers are older than any."""
    import duckdb

    from soe_assets.publish import KEEP_VERSIONS, publish_marts, published_as_of

    publish = tmp_path / "publish"
    versions = publish / ".versions"
    ahead = ["20991230T120000000000_legacy01", "20991231T120000000000_legacy02",  # named before the numbers
             "00000001_20991231T130000000000_numbered"]  # the first numbered set, before the clock was set back
    for name in ahead:
        (versions / name).mkdir(parents=True)
        (versions / name / "_manifest.json").write_text(json.dumps({"as_of": "2026-11-17", "run_id": name}))
    (publish / "current").symlink_to(f".versions/{ahead[-1]}")
    with duckdb.connect() as conn:
        conn.execute("CREATE SCHEMA marts")
        published = []
        for day in (18, 19, 20):
            conn.execute(f"CREATE OR REPLACE TABLE marts.exceptions AS SELECT DATE '2026-11-{day}' AS as_of")
            published.append(publish_marts(conn, publish, run_id=f"run-{day}", as_of=f"2026-11-{day}"))
    assert len(published) == KEEP_VERSIONS
    assert sorted(p.name for p in versions.iterdir()) == [p.version_dir.name for p in published]
    assert (publish / "current").resolve() == published[-1].version_dir
    assert [p.version_dir.name[:9] for p in published] == ["00000002_", "00000003_", "00000004_"]
    assert all(p.version_dir.name[9:17] < "20991230" for p in published)  # the clock's time stays in the name
    assert published_as_of(publish) == date(2026, 11, 20)
    assert pd.read_parquet(publish / "exceptions.parquet")["as_of"].tolist() == [date(2026, 11, 20)]


def _hold_publish_lock(lock_file: Path, *, writable: bool):
    """Another process holding the publish folder's lock until its stdin closes: as another warehouse's run does
    while publishing (``writable``), or as a run of an account that cannot write the lock file."""
    import subprocess
    import sys

    if writable:
        code = ("import duckdb, sys; from pathlib import Path; from soe_assets.publish import _holder_line, "
                "_publishing_alone; holder = _holder_line(duckdb.connect(sys.argv[2]), 'run-eu-west-1'); "
                "lock = _publishing_alone(Path(sys.argv[1]).parent, holder); lock.__enter__(); "
                "print('publishing', flush=True); sys.stdin.readline()")
    else:
        code = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); "
                "print('publishing', flush=True); sys.stdin.readline()")
    other = subprocess.Popen([sys.executable, "-c", code, str(lock_file), str(lock_file.parent.parent / "eu.duckdb")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    assert other.stdout.readline().strip() == "publishing"
    return other


def _publish_waiting_for(other, publish: Path) -> list:
    """Publish a one-table set into ``publish`` while ``other`` holds its lock; the sets published, after checking
    that this publish waited, writing nothing, until ``other`` let go."""
    import threading

    import duckdb

    from soe_assets.publish import publish_marts

    try:
        conn = duckdb.connect()
        conn.execute("CREATE SCHEMA marts")
        conn.execute("CREATE TABLE marts.exceptions AS SELECT DATE '2026-11-18' AS as_of")
        published = []
        publishing = threading.Thread(target=lambda: published.append(
            publish_marts(conn, publish, run_id="mine", as_of="2026-11-18")))
        publishing.start()
        publishing.join(timeout=2)
        assert publishing.is_alive() and not (publish / ".versions").exists()  # waiting, nothing written yet
    finally:
        other.stdin.close()  # the other run's publish ends
        other.wait(timeout=10)
    publishing.join(timeout=30)
    assert not publishing.is_alive()
    return published


def test_runs_of_two_warehouses_publishing_into_one_folder_take_turns(tmp_path, capfd):
    """Another warehouse's run publishing into the same folder (its run lock is its own warehouse's) holds the
    folder's publish lock: this publish waits for it, says which run it waits for, and then takes the next
    sequence number; the lock file names nobody once the publish is over."""
    from soe_assets.publish import PUBLISH_LOCK

    publish = tmp_path / "publish"
    publish.mkdir()
    other = _hold_publish_lock(publish / PUBLISH_LOCK, writable=True)
    published = _publish_waiting_for(other, publish)
    assert published[0].is_current and published[0].version_dir.name.startswith("00000001_")
    waiting = capfd.readouterr().err
    assert re.search(rf"another run \(pid {other.pid}: run run-eu-w of {re.escape(str(tmp_path / 'eu.duckdb'))}, "
                     rf"publishing since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\) is publishing into "
                     rf"{re.escape(str(publish))}: waiting for it to finish \.\.\.", waiting), waiting
    assert (publish / PUBLISH_LOCK).read_text() == ""


@pytest.mark.parametrize("left_by", ["a-process-gone", "a-process-whose-number-is-reused"])
def test_a_publish_lock_holder_that_cannot_write_the_lock_file_is_not_taken_for_an_earlier_one(tmp_path, capfd,
                                                                                              left_by):
    """The lock file still names a run killed while publishing: its process is gone, or its number now belongs
    to another process (started later). A holder of another account writes nothing into the file: the waiting
    publish names nobody rather than the dead run."""
    import subprocess
    import sys

    from soe_assets.publish import PUBLISH_LOCK

    publish = tmp_path / "publish"
    publish.mkdir()
    if left_by == "a-process-gone":
        pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                             text=True).stdout.strip()
        started = "1"
    else:
        pid, started = os.getpid(), "1"  # this process, alive, but not started one tick after boot
    (publish / PUBLISH_LOCK).write_text(f"pid {pid}: run killed-r, publishing since 2026-12-06 06:45:35\n{started}\n")
    other = _hold_publish_lock(publish / PUBLISH_LOCK, writable=False)
    assert _publish_waiting_for(other, publish)[0].is_current
    assert f"another run is publishing into {publish}: waiting for it to finish ..." in capfd.readouterr().err


def _publish_a_day_then_build_the_next(conn, publish: Path):
    """The set of 2026-11-18 published from a one-table marts schema, which then holds the next day's rows."""
    from soe_assets.publish import publish_marts

    conn.execute("CREATE SCHEMA marts")
    conn.execute("CREATE TABLE marts.exceptions AS SELECT DATE '2026-11-18' AS as_of")
    first = publish_marts(conn, publish, run_id="first", as_of="2026-11-18")
    conn.execute("CREATE OR REPLACE TABLE marts.exceptions AS SELECT DATE '2026-11-19' AS as_of")
    return first


def test_a_publish_that_fails_leaves_no_partial_set_behind(tmp_path):
    """A set that cannot be completed (here a file to add is missing; on a full disk, any write) is removed:
    it would keep the space a full disk needs, and `current` stays on the previous set."""
    import duckdb

    from soe_assets.publish import publish_marts, published_as_of

    publish = tmp_path / "publish"
    with duckdb.connect() as conn:
        first = _publish_a_day_then_build_the_next(conn, publish)
        with pytest.raises(FileNotFoundError):
            publish_marts(conn, publish, run_id="second", as_of="2026-11-19",
                          extra_files={"sop_report.html": tmp_path / "missing.html"})
    assert [p.name for p in (publish / ".versions").iterdir()] == [first.version_dir.name]
    assert published_as_of(publish) == date(2026, 11, 18)


def test_a_re_run_of_the_published_as_of_replaces_the_current_set(tmp_path):
    """Only an earlier as_of (a backfill) leaves `current` where it is: the same day run again (a corrected
    extract) is the latest picture of that day, and readers get it."""
    import duckdb

    from soe_assets.publish import publish_marts

    publish = tmp_path / "publish"
    with duckdb.connect() as conn:
        conn.execute("CREATE SCHEMA marts")
        conn.execute("CREATE TABLE marts.exceptions AS SELECT 'first' AS run")
        publish_marts(conn, publish, run_id="first", as_of="2026-11-18")
        conn.execute("CREATE OR REPLACE TABLE marts.exceptions AS SELECT 'again' AS run")
        again = publish_marts(conn, publish, run_id="again", as_of="2026-11-18")
    assert again.is_current
    assert pd.read_parquet(publish / "exceptions.parquet")["run"].tolist() == ["again"]
    assert json.loads((publish / "_manifest.json").read_text())["run_id"] == "again"


def test_a_set_whose_manifest_cannot_be_written_is_not_left_behind(tmp_path, monkeypatch):
    """The manifest is part of the set: a disk that fills up as it is written leaves no version folder of the
    set's tables without it, and `current` stays on the previous set."""
    import duckdb

    from soe_assets import publish as publishing
    from soe_assets.publish import publish_marts, published_as_of

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    publish = tmp_path / "publish"
    with duckdb.connect() as conn:
        first = _publish_a_day_then_build_the_next(conn, publish)
        monkeypatch.setattr(publishing, "json", SimpleNamespace(loads=json.loads, dumps=disk_full))
        with pytest.raises(OSError, match="No space left"):
            publish_marts(conn, publish, run_id="second", as_of="2026-11-19")
    assert [p.name for p in (publish / ".versions").iterdir()] == [first.version_dir.name]
    assert published_as_of(publish) == date(2026, 11, 18)


def test_history_of_a_run_the_publish_gates_blocked_is_never_read_or_published(tmp_path):
    """Days 16 and 17 published, 18 blocked (its stages ran, publishing did not): the next run compares with
    day 17, what the planners last saw, and its set holds no row of day 18; a backfill of day 17 none of later
    days either."""
    import duckdb

    from soe_assets.detect.lifecycle import HISTORY_TABLE, HISTORY_TYPES, previous_run
    from soe_assets.publish import publish_marts
    from soe_assets.warehouse import ensure_published_runs, ensure_table

    def run(conn, day: int, published: bool):
        as_of = date(2026, 11, day)
        conn.execute(f"DELETE FROM {HISTORY_TABLE} WHERE as_of = ?", [as_of])  # a re-run replaces its day
        conn.execute(f"INSERT INTO {HISTORY_TABLE} (exception_id, status, as_of) VALUES (?, 'open', ?)",
                     [f"EX-{day}", as_of])
        conn.execute(f"CREATE OR REPLACE TABLE marts.exceptions AS SELECT DATE '{as_of}' AS as_of")
        return publish_marts(conn, tmp_path / "publish", run_id=f"r{day}", as_of=str(as_of)) if published else None

    with duckdb.connect() as conn:
        ensure_published_runs(conn)  # as every run's ingest does
        ensure_table(conn, HISTORY_TABLE, HISTORY_TYPES)
        run(conn, 16, True)
        run(conn, 17, True)
        run(conn, 18, False)  # blocked
        assert previous_run(conn, date(2026, 11, 19))["exception_id"].tolist() == ["EX-17"]
        latest = run(conn, 19, True)
        backfill = run(conn, 17, True)
        assert sorted(conn.execute(f"SELECT exception_id FROM {HISTORY_TABLE}").fetchnumpy()["exception_id"]) == [
            "EX-16", "EX-17", "EX-18", "EX-19"]  # kept in the warehouse: a re-run of day 18 replaces its rows
    history = pd.read_parquet(latest.version_dir / "exception_history.parquet")
    assert sorted(history["exception_id"]) == ["EX-16", "EX-17", "EX-19"]
    assert latest.row_counts["exception_history"] == 3
    assert sorted(pd.read_parquet(backfill.version_dir / "exception_history.parquet")["exception_id"]) == [
        "EX-16", "EX-17"]


@pytest.mark.parametrize(("config", "message"), [
    ({"horizon_weeks": 0, "time_fence_weeks": 0}, "horizon_weeks must be between 1 and 104"),
    ({"horizon_weeks": 105}, "horizon_weeks must be between 1 and 104"),
    ({"horizon_weeks": 6, "time_fence_weeks": 7}, "time_fence_weeks must be between 0 and horizon_weeks (6; got 7)"),
    ({"max_open_exceptions": -3}, "max_open_exceptions must be 0 (no alert budget) or more (got -3)"),
    ({"as_of": "2026/11/20"}, "as_of must be a day YYYY-MM-DD, or empty"),
    ({"as_of": "2026-13-01"}, "as_of '2026-13-01' is no day of the calendar"),
])
def test_a_run_launched_with_config_soe_run_would_refuse_fails_at_its_start(config, message):
    """The UI's launchpad takes any integers and text: the settings refuse the run before any step, in the
    config's words."""
    import dagster as dg

    from orchestration.resources import SoeSettings

    settings = SoeSettings(landing_dir="landing", publish_dir="publish", **config)
    with pytest.raises(dg.Failure, match=re.escape(message)):
        settings.setup_for_execution(dg.build_init_resource_context())
    SoeSettings(landing_dir="landing", publish_dir="publish", horizon_weeks=104, time_fence_weeks=104,
                as_of="2026-11-20").setup_for_execution(dg.build_init_resource_context())


def test_a_blocked_re_run_of_a_published_day_leaves_that_days_published_history_standing(tmp_path):
    """Day 17 published with EX-A (exceptions) and REC-A (recommendations), then re-run twice and blocked both
    times (EX-B, then EX-C): the next day compares with what the planners saw on day 17 and publishes it, not a
    blocked run's rows. A day published with no row keeps its emptiness; a published re-run of day 17 replaces
    it for good."""
    import duckdb

    from soe_assets.detect.lifecycle import HISTORY_TABLE, HISTORY_TYPES, previous_run
    from soe_assets.publish import publish_marts
    from soe_assets.respond.assets import RECOMMENDATION_HISTORY
    from soe_assets.warehouse import ensure_published_runs, replace_run_rows

    recommendation_types = {"recommendation_id": "VARCHAR", "as_of": "DATE"}

    def run(conn, day: int, exceptions: list[str], published: bool):
        as_of = date(2026, 11, day)
        rows = pd.DataFrame({"exception_id": exceptions, "status": "open", "as_of": as_of}).reindex(
            columns=list(HISTORY_TYPES))
        replace_run_rows(conn, HISTORY_TABLE, rows, HISTORY_TYPES, as_of)
        replace_run_rows(conn, RECOMMENDATION_HISTORY, pd.DataFrame(
            {"recommendation_id": [e.replace("EX", "REC") for e in exceptions], "as_of": as_of}),
            recommendation_types, as_of)
        conn.execute(f"CREATE OR REPLACE TABLE marts.exceptions AS SELECT DATE '{as_of}' AS as_of")
        return publish_marts(conn, tmp_path / "publish", run_id=f"r{day}-{exceptions}", as_of=str(as_of)) \
            if published else None

    def published_ids(version, table: str, column: str) -> list[str]:
        return sorted(pd.read_parquet(version.version_dir / f"{table}.parquet")[column])

    with duckdb.connect() as conn:
        ensure_published_runs(conn)  # as every run's ingest does
        run(conn, 16, [], True)  # published with nothing open
        # a re-run of day 16 stopped after its exceptions, before its recommendations (Ctrl-C, kill -9): only the
        # exceptions' published rows are kept aside, and both histories still read
        replace_run_rows(conn, HISTORY_TABLE, pd.DataFrame({"exception_id": ["EX-Y"], "status": "open",
                                                            "as_of": date(2026, 11, 16)}).reindex(
            columns=list(HISTORY_TYPES)), HISTORY_TYPES, date(2026, 11, 16))
        assert previous_run(conn, date(2026, 11, 17)).empty
        run(conn, 17, ["EX-A"], True)
        run(conn, 17, ["EX-B"], False)
        run(conn, 16, ["EX-Z"], False)
        run(conn, 17, ["EX-C"], False)
        assert previous_run(conn, date(2026, 11, 18))["exception_id"].tolist() == ["EX-A"]
        day_18 = run(conn, 18, ["EX-D"], True)
        assert published_ids(day_18, "exception_history", "exception_id") == ["EX-A", "EX-D"]
        assert published_ids(day_18, "recommendation_history", "recommendation_id") == ["REC-A", "REC-D"]
        run(conn, 17, ["EX-E"], True)  # a published re-run: its rows are the day's history now
        run(conn, 17, ["EX-F"], False)
        assert previous_run(conn, date(2026, 11, 18))["exception_id"].tolist() == ["EX-E"]
        day_19 = run(conn, 19, [], True)
        assert published_ids(day_19, "exception_history", "exception_id") == ["EX-D", "EX-E"]


def test_a_run_started_in_the_ui_is_alerted_by_the_assets_it_materialized(tmp_path, monkeypatch):
    """Dagster runs a UI materialization as its implicit asset job: the alert names the assets, not '__ASSET_JOB'."""
    import dagster as dg

    from orchestration.sensors import UI_ASSET_JOB, run_failure_alert_sensor
    from soe_assets.alerts import ALERT_LOG_ENV, WEBHOOK_ENV

    @dg.asset(group_name="kpis")
    def kpi_weekly() -> None:
        raise RuntimeError("disk full")

    job = dg.Definitions(assets=[kpi_weekly]).resolve_implicit_global_asset_job_def()
    assert job.name == UI_ASSET_JOB
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(instance=instance, raise_on_error=False, asset_selection=[kpi_weekly.key])
    assert not result.success
    failure = next(event for event in result.all_events if event.event_type_value == "PIPELINE_FAILURE")
    monkeypatch.setenv("SOE_WAREHOUSE", str(tmp_path / "soe.duckdb"))
    monkeypatch.delenv(ALERT_LOG_ENV, raising=False)
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor", dagster_instance=instance, dagster_run=result.dagster_run,
        dagster_event=failure,
    ).for_run_failure()
    run_failure_alert_sensor(context)

    (alert,) = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert alert["subject"] == "materialization of kpi_weekly"
    assert alert["name"] == UI_ASSET_JOB and alert["run_id"] == result.run_id
    # why, as `soe run` says it (Dagster's own message names the steps only)
    # the step's own error, without Dagster's 'Error occurred while executing op "kpi_weekly":' around it
    assert alert["message"] == "step kpi_weekly failed: disk full. The previously published marts are untouched."


def test_a_failed_runs_alert_says_whether_its_set_had_been_published(tmp_path):
    """A run killed right after its publish step is failed, but readers get its set: the alert says so, not
    'untouched'; a run that never published says the previous set is untouched; an unreadable warehouse, neither."""
    import duckdb

    from orchestration.sensors import run_failure_alert
    from soe_assets.warehouse import record_published

    warehouse = tmp_path / "soe.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        record_published(conn, date(2026, 11, 18), "killed-after-publish")
        record_published(conn, date(2026, 11, 11), "killed-backfill")
    published = run_failure_alert("killed-after-publish", "soe_full_run", "killed", warehouse)
    assert published.message == "killed. Its set of marts had been published before it ended: readers get it."
    # a backfill's set is written, but `current` stays on the later day: readers do not get it
    assert run_failure_alert("killed-backfill", "soe_full_run", "killed", warehouse).message == (
        "killed. Its set of marts had been published before it ended, as a backfill: readers still get the later "
        "as_of's set.")
    assert run_failure_alert("killed-before", "soe_full_run", "killed", warehouse).message.endswith(
        "The previously published marts are untouched.")
    (tmp_path / "garbage.duckdb").write_text("not a database")
    assert run_failure_alert("any", "soe_full_run", "killed", tmp_path / "garbage.duckdb").message.endswith(
        "The published marts are those of the latest run that published (see _manifest.json).")


HOLD_LOCK = """
import sys, time
from soe_assets import run_lock
run_lock.acquire(sys.argv[1], "a test holder")
print("held", flush=True)
sys.stdin.readline()
"""


@pytest.fixture()
def lock_held_elsewhere(tmp_path):
    """Another process holding the warehouse's run lock until the test ends."""
    import subprocess
    import sys

    warehouse = tmp_path / "soe.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(warehouse)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    assert holder.stdout.readline().strip() == "held"
    yield warehouse, holder.pid
    holder.stdin.close()
    holder.wait(timeout=30)


def test_the_run_lock_refuses_another_process_and_is_shared_within_one(lock_held_elsewhere, tmp_path):
    from soe_assets import run_lock

    warehouse, pid = lock_held_elsewhere
    with pytest.raises(run_lock.WarehouseBusy, match=f"a test holder, pid {pid} on "):
        run_lock.acquire(warehouse, "this test")
    # a free warehouse: held twice in this process (the CLI, then the run's resource), free after both release
    other = tmp_path / "other.duckdb"
    with run_lock.holding(other, "outer"), run_lock.holding(other, "inner"):
        pass
    with run_lock.holding(other, "again"):
        assert "again" in run_lock.lock_path(other).read_text()


def test_looking_at_the_run_lock_never_refuses_a_run_starting_that_moment(tmp_path):
    """A sensor or reader looks at the lock by taking it shared for an instant: a run starting in that instant
    waits it out instead of being refused, and two lookers never see each other as a run."""
    import fcntl

    from soe_assets import run_lock

    warehouse = tmp_path / "soe.duckdb"
    path = run_lock.lock_path(warehouse)
    path.write_text("")
    looking = os.open(path, os.O_RDONLY)
    fcntl.flock(looking, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a looker mid-look
    assert run_lock.held_elsewhere(warehouse) is None  # a second looker: not a run
    threading.Timer(0.1, os.close, [looking]).start()  # the look ends
    with run_lock.holding(warehouse, "a run"):
        assert "a run" in path.read_text()


def test_the_run_lock_held_twice_in_one_process_stays_taken_until_the_last_release(tmp_path):
    """The run's resource releases its hold when the job ends, inside `soe run`'s own: the warehouse stays locked
    against other processes until that outer hold is given back too."""
    from soe_assets import run_lock

    warehouse = tmp_path / "soe.duckdb"

    def taken_elsewhere() -> bool:  # as another process's run would try it: its own open of the lock file
        probe = os.open(run_lock.lock_path(warehouse), os.O_RDONLY)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(probe)
        return False

    with run_lock.holding(warehouse, "soe run"):
        with run_lock.holding(warehouse, "the run's resource"):
            pass
        assert taken_elsewhere()
    assert not taken_elsewhere()


def test_a_reader_of_the_live_warehouse_is_sent_to_the_published_marts_while_a_run_holds_it(lock_held_elsewhere,
                                                                                            capsys):
    """`soe exceptions --warehouse W` while a run holds W: a clear refusal, and the file is never opened (a
    reader holding it between two steps failed the run's next step)."""
    import duckdb

    from orchestration.cli import main

    warehouse, pid = lock_held_elsewhere
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("CREATE SCHEMA marts")
        conn.execute("CREATE TABLE marts.exceptions AS SELECT 1 AS x")
    assert main(["exceptions", "--warehouse", str(warehouse)]) == 2
    error = capsys.readouterr().err
    assert f"a run is writing the warehouse {warehouse} now (a test holder, pid {pid}" in error
    assert "read the published marts (--publish) instead" in error


def test_a_reader_of_the_live_warehouse_another_process_writes_is_told_so_in_one_line(tmp_path, capsys):
    """`soe exceptions --warehouse W` while a notebook (no run) holds W for writing: one line naming the file, the
    process and what to do, not DuckDB's lock error."""
    import duckdb
    from support import another_process_holding

    from orchestration.cli import main

    warehouse = tmp_path / "soe.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("CREATE SCHEMA marts")
        conn.execute("CREATE TABLE marts.exceptions AS SELECT 1 AS x")
    with another_process_holding(warehouse, 60) as notebook:
        assert main(["exceptions", "--warehouse", str(warehouse)]) == 2
    assert capsys.readouterr().err == (
        f"soe: error: the warehouse {warehouse} is held by another process (PID {notebook.pid}) that writes it: read "
        "the published marts (--publish) instead, or wait for it to close the file\n")


HOLD_WAREHOUSE_OPEN = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_step_waits_for_a_reader_that_holds_the_warehouse_instead_of_failing(tmp_path):
    """A reader (a notebook, a planner's command) holding the live file for a moment delays a step's
    connection, it does not fail the run; with no wait the same open fails on DuckDB's lock."""
    import subprocess
    import sys

    import duckdb

    from soe_assets.warehouse import connect, open_warehouse

    warehouse = tmp_path / "soe.duckdb"
    duckdb.connect(str(warehouse)).close()

    def reader(seconds: float) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", HOLD_WAREHOUSE_OPEN, str(warehouse), str(seconds)],
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "open"
        return process

    holder = reader(30)
    try:
        with pytest.raises(duckdb.IOException, match="held by another process"):
            open_warehouse(warehouse, lock_wait=0)
    finally:
        holder.kill()
        holder.wait()
    holder = reader(1.5)
    with connect(warehouse) as conn:
        conn.execute("CREATE TABLE written_after_the_reader AS SELECT 1 AS x")
    assert holder.wait(timeout=30) == 0
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT x FROM written_after_the_reader").fetchall() == [(1,)]


def test_a_run_stopped_between_steps_reads_as_interrupted_and_its_alert_says_so():
    """Ctrl-C just after the last step fails no step: Dagster records the run's own failure with the
    interruption ("Execution was interrupted unexpectedly"). The command line must say "run interrupted" (exit
    130) and the alert "interrupted", not "the run failed" with nothing above it."""
    from types import SimpleNamespace

    import dagster as dg
    from dagster._core.events import JobFailureData, RunFailureReason
    from dagster._utils.error import SerializableErrorInfo

    from orchestration.cli import _interrupted
    from orchestration.progress import INTERRUPTED
    from orchestration.sensors import step_failures

    def run_failure(error: SerializableErrorInfo | None) -> dg.DagsterEvent:
        return dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_FAILURE.value, job_name="soe_full_run",
                               event_specific_data=JobFailureData(error, RunFailureReason.UNEXPECTED_TERMINATION))

    stopped = run_failure(SerializableErrorInfo("KeyboardInterrupt\n", [], "KeyboardInterrupt"))
    assert _interrupted(SimpleNamespace(all_events=[stopped]))
    assert step_failures([stopped]) == f"the run failed: {INTERRUPTED}"
    # a run that failed in a step: its own failure carries no error, and nothing reads as an interruption
    failed = run_failure(None)
    assert not _interrupted(SimpleNamespace(all_events=[failed]))
    assert step_failures([failed]) == "the run failed"
    other = run_failure(SerializableErrorInfo("OSError: disk full\n", [], "OSError"))
    assert not _interrupted(SimpleNamespace(all_events=[other]))


@pytest.mark.parametrize(("interrupt", "error_class"), [("connection", "InterruptException"),
                                                         ("sigint", "RuntimeError")])
def test_a_step_interrupted_in_a_duckdb_query_reads_as_interrupted(interrupt, error_class):
    """Ctrl-C during a DuckDB query fails the step with DuckDB's 'Query interrupted' inside Dagster's own error:
    the terminal, the alert and the exit code of soe run take it for the interruption it is. DuckDB says it
    in two classes: InterruptException when the query is interrupted through its connection, RuntimeError
    when DuckDB meets the SIGINT a terminal's Ctrl-C sends (a run stopped so reported a failure)."""
    import os
    import signal
    import threading

    import dagster as dg
    import duckdb

    from orchestration.progress import INTERRUPTED, failure_reasons
    from orchestration.sensors import step_failures

    @dg.asset
    def long_query() -> None:
        conn = duckdb.connect()
        # On one thread DuckDB checks for a signal between its tasks; on two it may notice the SIGINT only when
        # the query has run to its end (minutes here)
        conn.execute("SET threads = 1")
        stop = conn.interrupt if interrupt == "connection" else lambda: os.kill(os.getpid(), signal.SIGINT)
        threading.Timer(0.3, stop).start()
        conn.execute("SELECT count(*) FROM range(100000000000) AS numbers(i) WHERE i % 7 = 3").fetchall()

    result = dg.materialize([long_query], raise_on_error=False, instance=dg.DagsterInstance.ephemeral())
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert error_class in {failure.step_failure_data.error.cls_name, failure.step_failure_data.error.cause.cls_name}
    assert failure_reasons(failure.step_failure_data.error) == [INTERRUPTED]
    assert step_failures(result.all_events) == f"step long_query failed: {INTERRUPTED}"


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_interrupts_a_stage_query_on_two_threads_at_once(tmp_path, stop):
    """On two threads DuckDB may not let Python see a signal another process sends (Ctrl-C, kill) until its query
    ends (this one: ~14 s here): the stop-signal watcher interrupts the open warehouse connections' queries as
    the signal comes, so the step fails as interrupted at once, and the command knows which signal it was."""
    import os
    import signal
    import subprocess
    import time

    import dagster as dg
    import duckdb

    from orchestration import stop_signals
    from orchestration.progress import INTERRUPTED, failure_reasons
    from orchestration.resources import WarehouseResource
    from soe_assets.warehouse import interrupt_queries

    warehouse = tmp_path / "w.duckdb"

    @dg.asset
    def long_query(warehouse: WarehouseResource) -> None:
        with warehouse.connect() as conn:
            conn.execute("CREATE TABLE written_before AS SELECT 1 AS x")
            subprocess.Popen(["sh", "-c", f"sleep 0.5; kill -{stop[3:]} {os.getpid()}"])
            conn.execute("SELECT count(*) FROM range(5000000000) AS numbers(i) WHERE i % 7 = 3").fetchall()

    started = time.monotonic()
    with stop_signals.noted(on_stop=interrupt_queries):
        result = dg.materialize([long_query], resources={"warehouse": WarehouseResource(path=str(warehouse))},
                                raise_on_error=False, instance=dg.DagsterInstance.ephemeral())
        assert stop_signals.received() == getattr(signal, stop)
    assert time.monotonic() - started < 5  # the query alone: ~14 s here
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert failure_reasons(failure.step_failure_data.error) == [INTERRUPTED]
    with duckdb.connect(str(warehouse), read_only=True) as conn:  # another configuration: refused while open
        assert conn.execute("SELECT x FROM written_before").fetchall() == [(1,)]


def test_sigterm_stops_the_command_again_after_its_dagster_run(tmp_path, monkeypatch):
    """A script that starts `soe run` in the background leaves it ignoring SIGINT, and Dagster ends a run by giving
    SIGTERM SIGINT's handler: `kill` was ignored from the end of the run (its alerts, its summary) until soe
    exited. The command's own SIGTERM handler is back once the run has ended."""
    import signal

    import dagster as dg

    from orchestration import stop_signals
    from orchestration.cli import Workspace, _execute_in_this_process
    from orchestration.progress import progress_logger

    for name in ("SOE_LANDING_DIR", "SOE_WAREHOUSE", "SOE_PUBLISH_DIR", "DAGSTER_HOME"):
        monkeypatch.setenv(name, "")  # the workspace's export sets them: put back after the test
    workspace = Workspace(landing=tmp_path / "landing", warehouse=tmp_path / "w" / "soe.duckdb",
                          publish=tmp_path / "publish")
    workspace.export()

    @dg.asset
    def quick_stage() -> None:
        pass

    job = dg.Definitions(assets=[quick_stage], jobs=[dg.define_asset_job("quick", selection=[quick_stage])],
                         loggers={"soe_progress": progress_logger}).resolve_job_def("quick")
    ignored_by_the_shell = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_signals.noted():
            assert _execute_in_this_process(job, workspace, echo=lambda _: None).success
            assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, ignored_by_the_shell)


def test_a_connection_a_stopped_stage_left_open_is_closed_when_the_run_ends(tmp_path):
    """The interrupt a stop signal raises in Python may come as a stage leaves its connection, before ``connect``
    closes it (its clean-up skipped, as this stage skips it): the run's end closes it, so the failure alert that
    follows can read the warehouse and the run lock is released with the file closed."""
    import dagster as dg
    import duckdb

    from orchestration.resources import WarehouseResource

    warehouse = tmp_path / "w.duckdb"
    left = []  # the stage's connection, left without its exit, as an interrupt at its start leaves it

    @dg.asset
    def stopped_stage(warehouse: WarehouseResource) -> None:
        left.append(warehouse.connect())
        left[0].__enter__().execute("CREATE TABLE written_before AS SELECT 1 AS x")
        raise KeyboardInterrupt

    result = dg.materialize([stopped_stage], resources={"warehouse": WarehouseResource(path=str(warehouse))},
                            raise_on_error=False, instance=dg.DagsterInstance.ephemeral())
    assert not result.success
    with duckdb.connect(str(warehouse), read_only=True) as conn:  # another configuration: refused while open
        assert conn.execute("SELECT x FROM written_before").fetchall() == [(1,)]


def test_a_failure_alert_carries_the_cause_without_terminal_colours(tmp_path):
    """dbt colours its verdicts and names the cause after ~500 characters of its own boilerplate: the alert
    keeps the cause and drops the colour codes."""
    import dagster as dg

    from orchestration.sensors import run_failure_alert, step_failures

    boilerplate = "The dbt CLI process failed. " * 20  # 560 characters before the cause

    @dg.asset
    def dbt_models() -> None:
        raise RuntimeError(f"{boilerplate}18 of 33 \x1b[31mERROR\x1b[0m creating int_run_weeks: Binder Error: "
                           'Referenced column "no_such_column" not found')

    result = dg.materialize([dbt_models], raise_on_error=False, instance=dg.DagsterInstance.ephemeral())
    alert = run_failure_alert("r1", "soe_full_run", step_failures(result.all_events), tmp_path / "w.duckdb",
                              outcome="Nothing published.")
    assert "\x1b" not in alert.message and "18 of 33 ERROR creating" in alert.message
    assert 'Referenced column "no_such_column" not found' in alert.message


@pytest.mark.parametrize("interrupt", ["connection", "sigint"])
def test_ctrl_c_in_a_stage_query_stops_the_run_before_any_other_step(tmp_path, interrupt):
    """A stage's query interrupted (DuckDB's own error, not KeyboardInterrupt) used to fail only its step: the
    run went on with every step that does not depend on it (the recommendations after the KPIs) before it
    reported the interruption. A stage's connection turns it into Python's interrupt, which ends the run."""
    import os
    import signal
    import threading

    import dagster as dg

    from orchestration.progress import INTERRUPTED, failure_reasons
    from soe_assets.warehouse import connect

    ran = []

    @dg.asset
    def a_interrupted_query() -> None:
        with connect(tmp_path / "soe.duckdb") as conn:
            stop = conn.interrupt if interrupt == "connection" else lambda: os.kill(os.getpid(), signal.SIGINT)
            threading.Timer(0.3, stop).start()
            # a few seconds' work, not minutes: in one full test session the signal took effect only once the
            # query had ended (five minutes); the run must stop before the next step either way
            conn.execute("SELECT count(*) FROM range(2000000000) AS numbers(i) WHERE i % 7 = 3").fetchall()

    @dg.asset
    def b_independent() -> None:  # after a_interrupted_query in the plan, not downstream of it
        ran.append("b_independent")

    result = dg.materialize([a_interrupted_query, b_independent], raise_on_error=False,
                            instance=dg.DagsterInstance.ephemeral())
    assert not result.success and ran == []
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert failure.step_key == "a_interrupted_query"
    assert failure_reasons(failure.step_failure_data.error) == [INTERRUPTED]
    assert [event.step_key for event in result.all_events if event.event_type_value == "STEP_START"] == [
        "a_interrupted_query"]


def test_a_step_whose_warehouse_another_process_holds_past_the_wait_fails_in_one_clear_line(tmp_path):
    """A notebook that opens the live file between two steps and holds it past the wait: the step fails with
    one line naming the file, the process and what to do (the run's output and its alert show it), not
    DuckDB's lock error."""
    import dagster as dg
    import duckdb
    from support import another_process_holding

    from orchestration.progress import failure_reasons
    from orchestration.resources import WarehouseResource

    warehouse = tmp_path / "soe.duckdb"
    duckdb.connect(str(warehouse)).close()

    @dg.asset
    def reads_the_warehouse(warehouse: WarehouseResource) -> None:
        with warehouse.connect() as conn:
            conn.execute("SELECT 1").fetchall()

    resource = WarehouseResource(path=str(warehouse), lock_wait_seconds=1.0)
    with another_process_holding(warehouse, 60, read_only=True) as notebook:
        result = dg.materialize([reads_the_warehouse], resources={"warehouse": resource}, raise_on_error=False,
                                instance=dg.DagsterInstance.ephemeral())
    failure = next(event for event in result.all_events if event.is_step_failure)
    # one line: the cause alone, without Dagster's 'Error occurred while executing op' before it
    assert failure_reasons(failure.step_failure_data.error) == [
        f"the warehouse {warehouse} is held by another process (PID {notebook.pid}), which did not let go within "
        "1 s: close that process or its connection to the file (a notebook, a BI tool); readers should read the "
        "published Parquet marts instead"]


def test_a_dagster_run_on_a_warehouse_another_run_holds_fails_at_its_start(lock_held_elsewhere):
    import dagster as dg

    from orchestration.resources import WarehouseResource
    from orchestration.sensors import step_failures

    warehouse, pid = lock_held_elsewhere
    wrote = []

    @dg.asset
    def touches_the_warehouse(warehouse: WarehouseResource) -> None:
        wrote.append(warehouse.path)

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([touches_the_warehouse], resources={"warehouse": WarehouseResource(path=str(warehouse))},
                            raise_on_error=False, instance=instance)
    assert not result.success and not wrote
    # what the run-failure alert says: the run failed before any step, its resources could not start
    why = step_failures(result.all_events)
    assert why.startswith("step touches_the_warehouse could not start")
    # resources set up for the whole run before any step (a run launched from the UI) name no step
    assert step_failures([event._replace(step_key=None) for event in result.all_events]).startswith(
        "the run could not start: ")
    assert "another soe run is using the warehouse" in why and f"a test holder, pid {pid}" in why
    assert "\n" not in why
    from orchestration.sensors import run_failure_alert_sensor
    from soe_assets.alerts import ALERT_LOG_ENV, WEBHOOK_ENV

    failure = next(event for event in result.all_events if event.event_type_value == "PIPELINE_FAILURE")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SOE_WAREHOUSE", str(warehouse))
        env.delenv(ALERT_LOG_ENV, raising=False)
        env.delenv(WEBHOOK_ENV, raising=False)
        run_failure_alert_sensor(dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor", dagster_instance=instance, dagster_run=result.dagster_run,
            dagster_event=failure).for_run_failure())
    (alert,) = [json.loads(line) for line in (warehouse.parent / "alerts.jsonl").read_text().splitlines()]
    assert "another soe run is using the warehouse" in alert["message"] and f"pid {pid}" in alert["message"]


HOLD_LOCK_WITH_CHILD = """
import subprocess, sys
from soe_assets import run_lock
run_lock.acquire(sys.argv[1], "a run about to be killed")
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "dbt-build-stand-in"],
                         start_new_session=True)
run_lock.record_child(sys.argv[1], child.pid)
print(child.pid, flush=True)
sys.stdin.readline()
"""


def test_a_dbt_build_left_running_by_a_killed_run_keeps_the_next_run_out(tmp_path):
    """kill -9 of a run ends its lock but not its dbt child, which still writes the warehouse: the next run is
    refused (naming the process) until the child has ended."""
    import signal
    import subprocess
    import sys

    from soe_assets import run_lock

    warehouse = tmp_path / "soe.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK_WITH_CHILD, str(warehouse)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    child = int(holder.stdout.readline())
    try:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with pytest.raises(run_lock.WarehouseBusy, match=re.escape(f"a dbt build (pid {child}) left by a run that was killed")):
            run_lock.acquire(warehouse, "the next run")
    finally:
        os.kill(child, signal.SIGKILL)
    # the child was the killed holder's: it ends as a zombie or is reaped, either way no dbt process any more
    deadline = datetime.now() + timedelta(seconds=30)
    while run_lock.is_dbt_process(child) and Path(f"/proc/{child}").exists() and datetime.now() < deadline:
        threading.Event().wait(0.05)
    with run_lock.holding(warehouse, "the next run"):
        assert "the next run" in run_lock.lock_path(warehouse).read_text()


def test_a_dbt_build_recorded_by_a_run_that_ended_never_keeps_the_next_run_out(tmp_path):
    """A run that ends gives back a clean lock: a dbt process running later (another warehouse's build, one that
    took the recorded pid) is no child of it."""
    import subprocess
    import sys

    from soe_assets import run_lock

    warehouse = tmp_path / "soe.duckdb"
    dbt = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "dbt-build-stand-in"])
    try:
        with run_lock.holding(warehouse, "a run that ends"):
            run_lock.record_child(warehouse, dbt.pid)
        with run_lock.holding(warehouse, "the next run"):
            assert "the next run" in run_lock.lock_path(warehouse).read_text()
    finally:
        dbt.kill()
        dbt.wait()


def test_the_daily_schedule_skips_with_its_reason_while_another_process_holds_the_warehouse(lock_held_elsewhere,
                                                                                          tmp_path, monkeypatch):
    """A scheduled run requested now would fail at its start and alert as a failed run: the tick is skipped and
    says why; with the warehouse free the schedule requests the run."""
    import dagster as dg

    from orchestration.schedules import soe_daily_schedule

    warehouse, pid = lock_held_elsewhere
    monkeypatch.setenv("SOE_WAREHOUSE", str(warehouse))
    with dg.instance_for_test() as instance:  # a schedule's context needs a persistent instance
        skipped = soe_daily_schedule(dg.build_schedule_context(instance=instance))
        assert isinstance(skipped, dg.SkipReason) and f"pid {pid}" in skipped.skip_message
        assert "waiting for the warehouse to be free" in skipped.skip_message
        monkeypatch.setenv("SOE_WAREHOUSE", str(tmp_path / "free.duckdb"))
        assert isinstance(soe_daily_schedule(dg.build_schedule_context(instance=instance)), dg.RunRequest)


def test_the_landing_sensor_waits_while_another_process_holds_the_warehouse(lock_held_elsewhere, tmp_path, monkeypatch):
    """A run requested now would fail on the run lock, and its batch, already in the cursor, would never run:
    the sensor waits, its cursor unchanged, and requests the batch once the warehouse is free."""
    import dagster as dg

    from orchestration.resources import SoeSettings
    from orchestration.sensors import landing_zone_sensor

    warehouse, pid = lock_held_elsewhere
    landing = tmp_path / "landing"
    (landing / "skus").mkdir(parents=True)
    (landing / "skus" / "2026-11-18.csv").write_text("sku_id\n")
    monkeypatch.setenv("SOE_SENSOR_SETTLE_SECONDS", "0")
    monkeypatch.setenv("SOE_WAREHOUSE", str(warehouse))
    settings = SoeSettings(landing_dir=str(landing), publish_dir=str(tmp_path / "p"))
    context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), cursor=None,
                                      resources={"settings": settings})
    waiting = landing_zone_sensor(context)
    assert isinstance(waiting, dg.SkipReason) and context.cursor is None
    assert waiting.skip_message.startswith("waiting for the warehouse to be free (a test holder, pid ")
    assert f"pid {pid}" in waiting.skip_message


def test_the_landing_sensor_does_not_wait_for_a_killed_soe_run(tmp_path, monkeypatch):
    """A `soe run` killed mid-run stays "started" in the instance (nothing was left to record its end). Its process
    is gone and the warehouse free: the sensor records it as failed, alerts once, and requests the batch."""
    import subprocess
    import sys

    import dagster as dg

    from orchestration.resources import SoeSettings
    from orchestration.sensors import CLI_TAG, landing_zone_sensor, process_tags

    landing = tmp_path / "landing"
    (landing / "skus").mkdir(parents=True)
    (landing / "skus" / "2026-11-18.csv").write_text("sku_id\n")
    monkeypatch.setenv("SOE_SENSOR_SETTLE_SECONDS", "0")
    monkeypatch.setenv("SOE_WAREHOUSE", str(tmp_path / "wh" / "soe.duckdb"))
    (tmp_path / "wh").mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    instance = dg.DagsterInstance.ephemeral()
    killed = dg.DagsterRun(job_name="soe_full_run", run_id="0badc0de-0000-0000-0000-000000000000",
                           status=dg.DagsterRunStatus.STARTED,
                           tags={CLI_TAG: "cli", **process_tags(), "soe/pid": gone.stdout.strip()})
    instance.add_run(killed)
    settings = SoeSettings(landing_dir=str(landing), publish_dir=str(tmp_path / "p"))
    context = dg.build_sensor_context(instance=instance, cursor=None, resources={"settings": settings})
    assert isinstance(landing_zone_sensor(context), dg.RunRequest)
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
    alerts = read_alert_log(tmp_path / "wh" / "alerts.jsonl")
    assert [a["run_id"] for a in alerts] == [killed.run_id]
    assert "killed?" in alerts[0]["message"]


def test_a_failed_run_that_does_not_ingest_is_alerted_with_the_warehouses_as_of(tmp_path):
    """A run of assets materialized on their own (from the UI) works on the as_of the warehouse holds: its alert
    names it. A run that ingests and failed before writing its own as_of names none (the warehouse's is an
    earlier run's)."""
    import dagster as dg
    import duckdb

    from orchestration.sensors import run_failure_alert

    warehouse = tmp_path / "soe.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("CREATE SCHEMA raw")
        conn.execute("CREATE TABLE raw.run_context AS SELECT DATE '2026-11-21' AS as_of, 'earlier-run' AS run_id")
    publish_only = run_failure_alert("ui-run", "__ASSET_JOB", "x", warehouse, assets=[dg.AssetKey("published_marts")])
    assert publish_only.as_of == "2026-11-21"
    full_run = run_failure_alert("full-run", "soe_full_run", "x", warehouse)
    assert full_run.as_of == ""
    with_ingest = run_failure_alert("ui-run-2", "__ASSET_JOB", "x", warehouse,
                                    assets=[dg.AssetKey(["raw", "run_context"]), dg.AssetKey("published_marts")])
    assert with_ingest.as_of == ""
    assert run_failure_alert("earlier-run", "soe_full_run", "x", warehouse).as_of == "2026-11-21"


def test_a_sensor_tick_writes_nothing_when_no_run_was_killed(tmp_path, monkeypatch):
    """Every tick looks for killed `soe run`s; finding none, it creates no file or folder (the alert log's)."""
    import dagster as dg

    from orchestration.resources import SoeSettings
    from orchestration.sensors import landing_zone_sensor

    (tmp_path / "landing" / "skus").mkdir(parents=True)
    monkeypatch.setenv("SOE_WAREHOUSE", str(tmp_path / "not-yet" / "soe.duckdb"))
    settings = SoeSettings(landing_dir=str(tmp_path / "landing"), publish_dir=str(tmp_path / "p"))
    context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources={"settings": settings})
    assert isinstance(landing_zone_sensor(context), dg.SkipReason)
    assert not (tmp_path / "not-yet").exists()


SENSOR_TICK = """
import sys
import dagster as dg
from orchestration.resources import SoeSettings
from orchestration.sensors import landing_zone_sensor
settings = SoeSettings(landing_dir=sys.argv[1], publish_dir=sys.argv[2])
context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources={"settings": settings})
result = landing_zone_sensor(context)
print(type(result).__name__, getattr(result, "skip_message", ""))
"""


@pytest.mark.parametrize("problem", ["missing", "unreadable source folder"])
def test_the_landing_zone_sensor_skips_a_zone_it_cannot_read_with_the_reason(tmp_path, monkeypatch, problem):
    """A mistyped landing path, or a source folder another system's user wrote with umask 077: the tick says why
    it starts nothing, instead of failing with a PermissionError traceback, or reporting nothing new. Run as root,
    the tick drops the capability that ignores file modes."""
    import subprocess
    import sys

    landing = tmp_path / "landing"
    if problem == "missing":
        expected = f"landing zone {landing} does not exist or is not a folder"
    else:
        (landing / "skus").mkdir(parents=True)
        (landing / "sales_orders").mkdir()
        (landing / "sales_orders" / "2026-11-20.csv").write_text("order_id\n")
        (landing / "sales_orders").chmod(0o000)
        expected = f"cannot read the sales_orders folder of the landing zone {landing / 'sales_orders'}: permission denied"
    as_a_user = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    monkeypatch.setenv("SOE_WAREHOUSE", str(tmp_path / "soe.duckdb"))
    try:
        completed = subprocess.run([*as_a_user, sys.executable, "-c", SENSOR_TICK, str(landing), str(tmp_path / "p")],
                                   cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                                   timeout=120, check=False)
    finally:
        if landing.exists():
            (landing / "sales_orders").chmod(0o755)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip() == f"SkipReason {expected}"


def test_an_alert_log_that_cannot_be_written_is_warned_about_and_the_webhook_still_gets_the_alert(tmp_path, monkeypatch):
    """A log path taken by a folder (or a read-only file): the alert must not be lost, nor fail the check or the
    run that raised it."""
    log = tmp_path / "alerts.jsonl"
    log.mkdir()
    warnings = []
    with WebhookServer() as server:
        monkeypatch.setenv(WEBHOOK_ENV, server.url)
        (delivery,) = deliver([_alert()], log, warn=warnings.append)
    assert delivery.logged_to is None and delivery.webhook_status == "delivered"
    assert len(server.received) == 1
    assert len(warnings) == 1 and f"alert log {log} cannot be written" in warnings[0] and "freshness" in warnings[0]
