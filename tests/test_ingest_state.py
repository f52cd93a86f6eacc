"""A daily run reads only the extracts that arrived since the last run, and ends where a full read would."""

from dataclasses import asdict, replace
from datetime import datetime, timedelta
import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from support import AS_OF, minimal_network, write_landing_zone, write_source

from data_contracts.sources import SOURCES
from soe_assets.ingest.pipeline import IngestResult, ingest_landing_zone
from soe_assets.ingest.state import SAMPLED_BYTES, record_manifest, take_manifest

FIRST_RUN = datetime(2026, 11, 18, 6, 0)
SECOND_RUN = datetime(2026, 11, 18, 18, 0)
TWO_WEEKS_AGO, A_WEEK_AGO = AS_OF - timedelta(days=14), AS_OF - timedelta(days=7)


def _order(order_id: str, ordered_qty: float = 10.0, **changes) -> dict:
    row = {"order_id": order_id, "line_no": 1, "customer_id": "C1", "sku_id": "SKU-A", "location_id": "DC-1",
           "order_date": "2026-11-01", "requested_date": "2026-11-25", "promised_date": "2026-11-25",
           "ordered_qty": ordered_qty, "shipped_qty": 0, "ship_date": "", "status": "open"}
    row.update(changes)
    return row


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    """Three weeks of sales-order extracts whose quarantine notes depend on the newest one: a key rejected a week
    ago (its valid version from two weeks ago stands until today's extract brings a newer one; a blank line
    before it, which counts as a row), a file rejected whole (it names the latest extract loaded), and a key
    duplicated in today's extract. Today's shipments extract has a name DuckDB would take for a glob pattern, so
    Arrow reads it."""
    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    write_source(landing, "sales_orders", [_order("K1", 5), _order("K3")], extract=TWO_WEEKS_AGO)
    rejected = write_source(landing, "sales_orders", [_order("K4"), _order("K1", 6, shipped_qty=-3)],
                            extract=A_WEEK_AGO)
    header, first_row, rest = rejected.read_text().split("\n", 2)
    rejected.write_text(f"{header}\n{first_row}\n\n{rest}")
    (landing / "shipments" / f"{AS_OF}.csv").rename(landing / "shipments" / f"{AS_OF}[eu].csv")
    write_source(landing, "sales_orders", pd.DataFrame([_order("K5")]).drop(columns="status"),
                 extract=A_WEEK_AGO, suffix="_broken")
    write_source(landing, "sales_orders", minimal_network()["sales_orders"]
                 + [_order("K1", 7), _order("K2"), _order("K2", 3)], extract=AS_OF)
    write_source(landing, "purchase_orders", minimal_network()["purchase_orders"][:3], extract=A_WEEK_AGO)
    (landing / "sales_orders" / "notes.csv").write_text("an undated file: rejected whole, first in the order\n")
    write_source(landing, "shipments", minimal_network()["shipments"][:2], extract=A_WEEK_AGO, fmt="parquet")
    return landing


TODAYS = ["sales_orders", "purchase_orders", "shipments", "inventory_snapshots"]


def _hold_back(landing: Path, sources: list[str]) -> list[tuple[Path, Path]]:
    """Move today's extracts of each source aside (a subfolder, which runs never read)."""
    moves = []
    for source in sources:
        (landing / source / "held").mkdir()
        for extract in (landing / source).glob(f"{AS_OF.isoformat()}*.csv"):
            aside = landing / source / "held" / extract.name
            extract.rename(aside)
            moves.append((aside, extract))
    return moves


def _ingest(warehouse: Path, landing: Path, detected_at: datetime, **options) -> IngestResult:
    conn = duckdb.connect(str(warehouse))
    return ingest_landing_zone(landing, AS_OF, conn=conn, detected_at=detected_at, **options)


def _full_read(landing: Path) -> IngestResult:
    return ingest_landing_zone(landing, AS_OF, detected_at=SECOND_RUN)


def _tables(result: IngestResult) -> dict[str, pd.DataFrame]:
    tables = {s.name: result.table(s.name) for s in SOURCES if s.name in result.reports}
    tables["quarantine"] = result.quarantine
    return {name: frame.astype(str).sort_values(list(frame.columns)).reset_index(drop=True)
            for name, frame in tables.items()}


def _counts(result: IngestResult) -> dict[str, dict]:
    return {name: {k: v for k, v in asdict(report).items() if k not in ("files_kept", "reread_because")}
            for name, report in result.reports.items()}


def assert_same_as_full_read(result: IngestResult, landing: Path) -> None:
    full = _full_read(landing)
    expected, got = _tables(full), _tables(result)
    assert got.keys() == expected.keys()
    for name in expected:
        pd.testing.assert_frame_equal(got[name], expected[name], obj=name)
    assert _counts(result) == _counts(full)


def test_a_daily_run_reads_only_new_extracts_and_ends_where_a_full_read_would(landing: Path, tmp_path: Path):
    warehouse = tmp_path / "soe.duckdb"
    moves = _hold_back(landing, TODAYS)
    first = _ingest(warehouse, landing, FIRST_RUN)
    first.conn.close()
    for aside, back in moves:
        aside.rename(back)

    daily = _ingest(warehouse, landing, SECOND_RUN)

    kept = {name: report.files_kept for name, report in daily.reports.items()}
    assert kept["sales_orders"] == 4 and kept["purchase_orders"] == 1 and kept["shipments"] == 1
    assert kept["skus"] == 1 and kept["inventory_snapshots"] == 0  # nothing before today's extract
    assert not any(report.reread_because for report in daily.reports.values())
    assert_same_as_full_read(daily, landing)
    # the notes of the kept files' quarantine rows now name today's extract
    quarantine = daily.quarantine
    rejected = quarantine[quarantine["file"] == f"{A_WEEK_AGO}.csv"].iloc[0]
    assert rejected["reason"].endswith(f"the valid version of this key from {AS_OF}.csv stands")
    for rejected_whole in (f"{A_WEEK_AGO}_broken.csv", "notes.csv"):
        reason = quarantine.loc[quarantine["file"] == rejected_whole, "reason"].item()
        assert reason.endswith(f"(the latest loaded: {AS_OF}.csv)"), reason
    # every row is stamped with the time of the run that found it (kept or read)
    assert set(quarantine["detected_at"]) == {pd.Timestamp(SECOND_RUN)}
    assert daily.table("sales_orders").set_index("order_id").loc["K1", "ordered_qty"] == 7


def test_a_run_with_nothing_new_reads_nothing_and_changes_nothing(landing: Path, tmp_path: Path):
    warehouse = tmp_path / "soe.duckdb"
    first = _ingest(warehouse, landing, FIRST_RUN)
    before = _tables(first)
    first.conn.close()

    again = _ingest(warehouse, landing, SECOND_RUN)

    for name, report in again.reports.items():
        folder = landing / name
        assert report.files_kept == (len(list(folder.iterdir())) if folder.is_dir() else 0), name
    assert again.reports["sales_orders"].files_kept == 5
    assert set(again.quarantine["detected_at"]) == {pd.Timestamp(SECOND_RUN)}
    after = _tables(again)
    after["quarantine"]["detected_at"] = str(pd.Timestamp(FIRST_RUN))
    for name in before:
        assert after[name].equals(before[name]), name
    assert _counts(again) == _counts(first)


@pytest.mark.parametrize("change, source, reason", [
    ("rewrite", "sales_orders", "was changed or removed"),
    ("rewrite in the middle", "sales_orders", "was changed or removed"),
    ("remove", "sales_orders", "fewer extracts"),
    ("earlier", "sales_orders", "a new one sorts before it"),
    ("master data", "sales_orders", "master data"),
    ("asked", "purchase_orders", "a full read was asked for"),
])
def test_a_changed_landing_zone_is_read_in_full_and_says_why(landing: Path, tmp_path: Path, change: str,
                                                             source: str, reason: str):
    warehouse = tmp_path / "soe.duckdb"
    if change == "rewrite in the middle":  # an extract larger than the bytes its digest reads at either end
        write_source(landing, "sales_orders", [_order(f"B{number:05}") for number in range(4000)],
                     extract=A_WEEK_AGO, suffix="_bulk")
    _ingest(warehouse, landing, FIRST_RUN).conn.close()
    folder = landing / "sales_orders"
    if change == "rewrite in the middle":  # a corrected re-send copied with its old times (cp -p, tar x)
        path = next(folder.glob(f"{A_WEEK_AGO}_bulk.*"))
        stat, content = path.stat(), path.read_bytes()
        middle = content.index(b"B02000,")
        assert SAMPLED_BYTES < middle < len(content) - SAMPLED_BYTES
        line_end = content.index(b"\n", middle)
        path.write_bytes(content[:middle] + content[middle:line_end].replace(b",10.0,", b",90.0,") + content[line_end:])
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert path.stat().st_size == stat.st_size and path.read_bytes() != content
    elif change == "rewrite":  # same name, size and modification time: only the content differs
        path = folder / f"{TWO_WEEKS_AGO}.csv"
        stat = path.stat()
        path.write_text(path.read_text().replace(",5.0,", ",9.0,"))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert path.stat().st_size == stat.st_size
    elif change == "remove":
        (folder / f"{AS_OF}.csv").rename(folder / f"{AS_OF + timedelta(days=30)}.csv")  # after as_of: skipped
    elif change == "earlier":
        write_source(landing, "sales_orders", [_order("K6")], extract=A_WEEK_AGO, suffix="_late")
    elif change == "master data":
        write_source(landing, "skus", [{"sku_id": "SKU-C", "product_family": "parts", "unit_cost": 1.0,
                                        "unit_price": 2.0}], extract=AS_OF, suffix="_new")

    result = _ingest(warehouse, landing, SECOND_RUN, reread=change == "asked")

    assert result.reports[source].files_kept == 0
    assert reason in result.reports[source].reread_because
    assert_same_as_full_read(result, landing)


def test_a_run_stopped_before_recording_what_it_ingested_leaves_the_next_run_a_full_read(landing: Path,
                                                                                         tmp_path: Path):
    warehouse = tmp_path / "soe.duckdb"
    _ingest(warehouse, landing, FIRST_RUN).conn.close()
    with duckdb.connect(str(warehouse)) as conn:  # as a run stopped mid-ingest leaves it
        conn.execute("DELETE FROM ingest_state.extracts WHERE source = 'sales_orders'")
        conn.execute("DELETE FROM raw.sales_orders WHERE order_id = 'K3'")

    result = _ingest(warehouse, landing, SECOND_RUN)

    assert result.reports["sales_orders"].files_kept == 0
    assert "no record of what the last run ingested" in result.reports["sales_orders"].reread_because
    assert result.reports["purchase_orders"].files_kept == 2
    assert not result.reports["purchase_orders"].reread_because
    assert_same_as_full_read(result, landing)


def test_a_record_made_before_change_times_were_kept_leads_to_one_full_read(landing: Path, tmp_path: Path):
    """A warehouse whose record of the extracts has no change times (an earlier soe): the run adds the column and
    reads every source in full once, then keeps its extracts again."""
    warehouse = tmp_path / "soe.duckdb"
    _ingest(warehouse, landing, FIRST_RUN).conn.close()
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("ALTER TABLE ingest_state.extracts DROP COLUMN changed_ns")

    result = _ingest(warehouse, landing, SECOND_RUN)
    assert result.reports["sales_orders"].files_kept == 0
    assert_same_as_full_read(result, landing)
    result.conn.close()
    assert _ingest(warehouse, landing, SECOND_RUN).reports["sales_orders"].files_kept == 5


def test_what_a_run_ingested_is_recorded_whole_or_not_at_all(landing: Path, tmp_path: Path):
    """A run stopped while recording a source's extracts leaves no record of it: a part would be trusted."""
    warehouse = tmp_path / "soe.duckdb"
    first = _ingest(warehouse, landing, FIRST_RUN)
    conn = first.conn
    recorded = take_manifest(conn, "sales_orders")[0]
    assert len(recorded) == 5
    broken = replace(recorded[1], rows_read="not a count")  # the second insert fails after the first
    with pytest.raises(duckdb.Error):
        record_manifest(conn, "sales_orders", [recorded[0], broken, *recorded[2:]], "any")
    assert conn.execute("SELECT count(*) FROM ingest_state.extracts WHERE source = 'sales_orders'").fetchall() == [(0,)]
    record_manifest(conn, "sales_orders", recorded, "any")
    assert len(take_manifest(conn, "sales_orders")[0]) == 5


def test_an_extract_that_cannot_be_opened_is_quarantined_whole_and_the_rest_loaded(
        landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A file without read permission (simulated: the tests may run as root, which reads any file) is
    quarantined whole in a full and in a daily run; the source's other extracts still load."""
    warehouse = tmp_path / "soe.duckdb"
    moves = _hold_back(landing, ["purchase_orders"])
    _ingest(warehouse, landing, FIRST_RUN).conn.close()
    for aside, back in moves:
        aside.rename(back)
    locked = landing / "purchase_orders" / f"{AS_OF}.csv"
    opening = Path.open

    def refuse_locked(path: Path, *args, **kwargs):
        if path == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return opening(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse_locked)
    for result in (_ingest(warehouse, landing, SECOND_RUN), _full_read(landing)):
        quarantine = result.quarantine
        reason = quarantine.loc[(quarantine["source"] == "purchase_orders") & (quarantine["file"] == locked.name),
                                "reason"].item()
        assert reason.startswith("the file cannot be opened: Permission denied"), reason
        assert set(result.table("purchase_orders")["_file"]) == {f"{A_WEEK_AGO}.csv"}
        assert len(result.table("purchase_orders")) == 3
