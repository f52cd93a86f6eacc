"""The Dagster UI, tried as a user would: start the webserver on the project, open it in
headless Chromium, check the asset graph shows every stage from sources to the published
marts and the asset checks. Screenshots are kept in test-output/.

Loopback only (127.0.0.1, a free port), bounded waits; skipped with a reason when
Chromium or Playwright is missing.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = REPO / "test-output"
STAGE_GROUPS = ["ingest", "reconcile", "detect", "respond", "kpis", "feedback", "publish"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (/usr/bin/chromium)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, server: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"dagster-webserver exited early with code {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"the UI did not answer on {url} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    (root / "dagster_home").mkdir()
    (root / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "SOE_LANDING_DIR": str(root / "landing"),
        "SOE_WAREHOUSE": str(root / "warehouse" / "soe.duckdb"),
        "SOE_PUBLISH_DIR": str(root / "publish"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "GX_ANALYTICS_ENABLED": "false",
    }
    port = _free_port()
    webserver = Path(sys.executable).parent / "dagster-webserver"
    log = (root / "webserver.log").open("w")
    server = subprocess.Popen(
        [str(webserver), "-m", "orchestration.definitions", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/server_info", server)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def _dismiss_welcome(page) -> None:
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.click(timeout=10_000)
    except Exception:  # noqa: BLE001 (no welcome dialog on this instance)
        pass


def test_asset_graph_shows_every_stage_from_sources_to_published_marts(ui_url, browser):
    OUTPUT.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1800, "height": 1100})
    # Global lineage: one node per stage group, edges ingest -> reconcile -> ... -> publish.
    page.goto(f"{ui_url}/asset-groups", wait_until="domcontentloaded", timeout=120_000)
    page.get_by_text("Global asset lineage").first.wait_for(timeout=120_000)
    _dismiss_welcome(page)
    page.get_by_text("publish").first.wait_for(timeout=60_000)
    page.wait_for_timeout(3000)
    page.screenshot(path=str(OUTPUT / "dagster-asset-graph.png"), full_page=True)
    text = page.inner_text("body")
    for group in STAGE_GROUPS:
        assert group in text, f"group {group} not shown in the asset graph"
    # The catalog lists the assets from the sources to the published marts.
    page.goto(f"{ui_url}/assets", wait_until="domcontentloaded", timeout=120_000)
    page.get_by_text("published_marts").first.wait_for(timeout=120_000)
    page.screenshot(path=str(OUTPUT / "dagster-asset-catalog.png"), full_page=True)
    text = page.inner_text("body")
    for asset in ["data_quality_issues", "sku_location_week", "exceptions", "published_marts"]:
        assert asset in text, f"asset {asset} not shown"
    page.close()


def test_asset_checks_are_visible(ui_url, browser):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{ui_url}/assets/raw/ingest_log?view=checks", wait_until="domcontentloaded", timeout=120_000)
    _dismiss_welcome(page)
    page.get_by_text("required_sources_have_rows").first.wait_for(timeout=120_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(OUTPUT / "dagster-ingest-log-checks.png"), full_page=True)
    text = page.inner_text("body")
    assert "required_sources_have_rows" in text and "quarantine_share_below_limit" in text
    page.goto(f"{ui_url}/assets/raw/sales_orders?view=checks", wait_until="domcontentloaded", timeout=120_000)
    # The checks list renders one entry at a time: wait for each name, not for the first only.
    for check in ("contract_violations", "freshness"):
        page.get_by_text(check, exact=True).first.wait_for(timeout=120_000)
    page.close()
