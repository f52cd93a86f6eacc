"""Landing-zone contracts: every kind of bad input is quarantined with its reason, nothing valid is lost."""

from datetime import date, datetime, timedelta, timezone
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import AS_OF, minimal_network, write_landing_zone, write_source

from data_contracts.sources import SOURCES, SOURCES_BY_NAME
from soe_assets.ingest.landing import UNQUOTED_VALUE_PROBLEM, blank_line_numbers
from soe_assets.ingest.pipeline import LandingZoneError, ingest_landing_zone, resolve_as_of


def _order(order_id: str, **changes) -> dict:
    row = {
        "order_id": order_id, "line_no": 1, "customer_id": "C1", "sku_id": "SKU-A", "location_id": "DC-1",
        "order_date": "2026-11-10", "requested_date": "2026-11-25", "promised_date": "2026-11-25",
        "ordered_qty": 10, "shipped_qty": 0, "ship_date": "", "status": "open",
    }
    row.update(changes)
    return row


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    network = minimal_network()
    network["sales_orders"] = [_order("GOOD-1"), _order("GOOD-2", line_no=2)]
    return write_landing_zone(tmp_path / "landing", network)


# What a file rejected whole adds when the fixture's sales orders extract was loaded beside it.
ROWS_FROM_GOOD_EXTRACT = f"; the source's rows come from its other extracts (the latest loaded: {AS_OF.isoformat()}.csv)"


def _quarantine(result, source: str) -> pd.DataFrame:
    return result.quarantine[result.quarantine["source"] == source].reset_index(drop=True)


BAD_ROWS = [
    ("negative quantity", {"shipped_qty": -3}, "shipped_qty", "shipped_qty must be >= 0"),
    ("zero ordered", {"ordered_qty": 0}, "ordered_qty", "ordered_qty must be > 0"),
    ("unknown sku", {"sku_id": "SKU-NOPE"}, "sku_id", "unknown sku_id"),
    ("unknown location", {"location_id": "DC-9"}, "location_id", "unknown location_id"),
    ("bad date", {"requested_date": "2026-02-30"}, "requested_date", "requested_date is not a date"),
    ("enum outside set", {"status": "opened"}, "status", "status must be one of open, shipped, cancelled"),
    ("not a number", {"ordered_qty": "ten"}, "ordered_qty", "ordered_qty is not a number: 'ten'"),
    ("integer out of range", {"line_no": "1e30"}, "line_no", "line_no is not an integer: '1e30'"),
    ("required empty", {"customer_id": ""}, "customer_id", "customer_id is empty but required"),
    ("future event", {"order_date": "2026-11-30"}, "order_date", "after the extract date"),
    # DuckDB's cast takes these; the contract's YYYY-MM-DD does not
    ("slashed date", {"requested_date": "2026/11/20"}, "requested_date", "requested_date is not a date"),
    ("two-digit year", {"requested_date": "26-11-20"}, "requested_date", "requested_date is not a date"),
    ("date with a time", {"requested_date": "2026-11-20 15:30:00"}, "requested_date", "is not a date"),
    ("infinite date", {"requested_date": "infinity"}, "requested_date", "requested_date is not a date"),
    ("epoch", {"promised_date": "epoch"}, "promised_date", "promised_date is not a date"),
    # a real date no week or KPI can hold: a typo, or a placeholder for "no date"
    ("year 1026", {"requested_date": "1026-11-20"}, "requested_date",
     "requested_date is outside the dates 1900-01-01 to 2199-12-31"),
    ("placeholder date", {"promised_date": "9999-12-31"}, "promised_date", "is outside the dates"),
    ("tab inside a number", {"ordered_qty": "1\t0"}, "ordered_qty", "ordered_qty is not a number"),
    # DuckDB's number casts take these too
    ("digit separator", {"ordered_qty": "1_000"}, "ordered_qty", "ordered_qty is not a number: '1_000'"),
    ("doubled sign", {"line_no": "+-2"}, "line_no", "line_no is not an integer: '+-2'"),
    ("infinite quantity", {"ordered_qty": "inf"}, "ordered_qty", "ordered_qty is not a number: 'inf'"),
    # finite, but no real order: its value times the unit cost would not fit the KPIs' exact sums
    ("implausibly large quantity", {"shipped_qty": "1e28"}, "shipped_qty", "shipped_qty must be <= 1000000000000"),
]


@pytest.mark.parametrize("label,change,column,reason", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_each_bad_row_is_quarantined_with_its_reason_and_valid_rows_flow_on(landing, label, change, column, reason):
    write_source(landing, "sales_orders", [_order("OK-1"), _order("BAD-1", **change), _order("OK-2")],
                 extract=AS_OF, suffix="_erp")
    result = ingest_landing_zone(landing, AS_OF)

    quarantined = _quarantine(result, "sales_orders")
    assert len(quarantined) == 1, quarantined
    row = quarantined.iloc[0]
    assert row["file"] == f"{AS_OF.isoformat()}_erp.csv"
    assert row["row_number"] == 2
    assert row["column"] == column
    assert reason in row["reason"]
    assert '"order_id":"BAD-1"' in row["raw_record"]
    kept = set(result.table("sales_orders")["order_id"])
    assert kept == {"GOOD-1", "GOOD-2", "OK-1", "OK-2"}


def test_duplicated_key_in_one_file_quarantines_every_copy(landing):
    write_source(landing, "sales_orders", [_order("DUP"), _order("OK"), _order("DUP", ordered_qty=11)],
                 suffix="_erp")
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert list(quarantined["row_number"]) == [1, 3]
    assert (quarantined["column"] == "order_id, line_no").all()
    assert quarantined["reason"].str.contains("duplicated primary key").all()
    assert "DUP" not in set(result.table("sales_orders")["order_id"])
    assert "OK" in set(result.table("sales_orders")["order_id"])


def test_rows_whose_keys_cannot_be_read_are_no_copies_of_one_key(landing):
    """Two lines of one order with line numbers 'abc' and 'xyz', and two with no order id: each fails for its own
    key part, not as a duplicate of the other."""
    write_source(landing, "sales_orders", [_order("K", line_no="abc"), _order("K", line_no="xyz"),
                                           _order("", line_no=1), _order("", line_no=1), _order("OK")],
                 suffix="_erp")
    quarantined = _quarantine(ingest_landing_zone(landing, AS_OF), "sales_orders")
    assert sorted(set(quarantined["row_number"])) == [1, 2, 3, 4]
    assert not quarantined["reason"].str.contains("duplicated primary key").any(), quarantined["reason"].tolist()


def test_a_key_repeated_across_files_is_an_upsert_but_repeated_within_one_is_quarantined(landing):
    earlier = AS_OF - timedelta(days=7)
    write_source(landing, "sales_orders", [_order("TWICE", ordered_qty=5), _order("MOVED", ordered_qty=1)],
                 extract=earlier)
    write_source(landing, "sales_orders",
                 [_order("TWICE", ordered_qty=6), _order("MOVED", ordered_qty=2), _order("TWICE", ordered_qty=7)],
                 extract=AS_OF)
    progress: list[str] = []
    result = ingest_landing_zone(landing, AS_OF, progress=progress.append)
    orders = result.table("sales_orders").set_index("order_id")
    assert orders.loc["MOVED", "ordered_qty"] == 2  # once per file: the latest file wins, nothing quarantined
    assert orders.loc["TWICE", "ordered_qty"] == 5  # both copies in the latest file fail: the earlier one stands
    quarantined = _quarantine(result, "sales_orders")
    assert list(quarantined["row_number"]) == [1, 3]
    assert (quarantined["file"] == f"{AS_OF.isoformat()}.csv").all()
    assert quarantined["reason"].str.contains("duplicated primary key").all()
    assert quarantined["reason"].str.contains(f"the valid version of this key from {earlier.isoformat()}.csv stands").all()
    assert result.reports["sales_orders"].rows_quarantined == 2
    # the progress line accounts for every row read: 5 = 2 valid + 2 quarantined + 1 superseded (MOVED's first)
    line = next(p for p in progress if p.startswith("sales_orders"))
    assert "5 rows read" in line and "2 valid" in line and "1 superseded by later extracts" in line
    assert re.search(r" \(\d+\.\d s\)$", line), line  # how long the source took: the large ones take minutes


def test_missing_column_quarantines_the_whole_file_and_other_files_flow_on(landing):
    path = write_source(landing, "sales_orders", [_order("X")], suffix="_broken")
    frame = pd.read_csv(path).drop(columns=["promised_date"])
    frame.to_csv(path, index=False)
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert len(quarantined) == 1
    assert pd.isna(quarantined.loc[0, "row_number"])
    assert quarantined.loc[0, "column"] == "promised_date"
    assert "missing required column(s) promised_date" in quarantined.loc[0, "reason"]
    assert set(result.table("sales_orders")["order_id"]) == {"GOOD-1", "GOOD-2"}


def test_unreadable_and_undated_files_are_quarantined_whole(landing):
    (landing / "sales_orders" / f"{AS_OF.isoformat()}_empty.csv").write_text("")
    (landing / "sales_orders" / "orders_without_date.csv").write_text("order_id\nX\n")
    (landing / "sales_orders" / f"{AS_OF.isoformat()}_broken.parquet").write_bytes(b"not parquet at all")
    result = ingest_landing_zone(landing, AS_OF)
    reasons = dict(zip(_quarantine(result, "sales_orders")["file"], _quarantine(result, "sales_orders")["reason"]))
    assert "empty" in reasons[f"{AS_OF.isoformat()}_empty.csv"]
    assert "does not start with an extract date" in reasons["orders_without_date.csv"]
    assert "not a readable Parquet file" in reasons[f"{AS_OF.isoformat()}_broken.parquet"]
    assert set(result.table("sales_orders")["order_id"]) == {"GOOD-1", "GOOD-2"}


def test_a_name_may_end_any_way_after_its_date_and_the_content_tells_csv_from_parquet(landing):
    """The contract: "its name starts with the extract date (anything may follow)". A name without .csv or
    .parquet is read by what it holds; a compressed file is named as such, rejected whole; a Parquet file whose
    bytes are corrupt inside is rejected as Parquet, not read as text."""
    import gzip

    folder = landing / "sales_orders"
    pd.DataFrame([_order("TEXT")]).to_csv(folder / f"{AS_OF.isoformat()}_erp_eu", index=False)
    pd.DataFrame([_order("COLUMNS")]).to_parquet(folder / f"{AS_OF.isoformat()}_erp_us.dat", index=False)
    (folder / f"{AS_OF.isoformat()}_erp_apac.csv.gz").write_bytes(
        gzip.compress(pd.DataFrame([_order("PACKED")]).to_csv(index=False).encode()))
    (folder / f"{AS_OF.isoformat()}_erp_latam.xlsx").write_bytes(b"PK\x03\x04 a workbook")
    (folder / f"{AS_OF.isoformat()}_erp_emea.bin").write_bytes(b"PAR1 not parquet inside PAR1")
    result = ingest_landing_zone(landing, AS_OF)
    assert set(result.table("sales_orders")["order_id"]) == {"GOOD-1", "GOOD-2", "TEXT", "COLUMNS"}
    reasons = _quarantine(result, "sales_orders").set_index("file")["reason"]
    assert reasons[f"{AS_OF.isoformat()}_erp_apac.csv.gz"].startswith(
        "the file is gzip-compressed, not CSV or Parquet: unpack it into the source folder")
    assert reasons[f"{AS_OF.isoformat()}_erp_latam.xlsx"].startswith(
        "the file is a zip archive (as an Excel workbook is), not CSV or Parquet")
    assert reasons[f"{AS_OF.isoformat()}_erp_emea.bin"].startswith("not a readable Parquet file")
    assert len(reasons) == 3


@pytest.mark.parametrize("delimiter", [";", "\t"], ids=["semicolon", "tab"])
def test_wrong_delimiter_says_so(landing, delimiter):
    frame = pd.DataFrame([_order("SEMI")])
    frame.to_csv(landing / "sales_orders" / f"{AS_OF.isoformat()}_semi.csv", sep=delimiter, index=False)
    result = ingest_landing_zone(landing, AS_OF)
    reason = _quarantine(result, "sales_orders").loc[0, "reason"]
    assert "is the delimiter a comma?" in reason


def test_files_rejected_whole_say_what_to_fix(landing):
    """The usual export mistakes: Excel's 'Unicode text', a header in other case, a column named twice."""
    order = pd.DataFrame([_order("E1")])
    folder = landing / "sales_orders"
    (folder / f"{AS_OF.isoformat()}_unicode.csv").write_bytes(order.to_csv(index=False).encode("utf-16"))
    order.rename(columns={"order_id": "Order_ID", "sku_id": "SKU_ID"}).to_csv(
        folder / f"{AS_OF.isoformat()}_cased.csv", index=False)
    order.assign(note="a").rename(columns={"note": "status"}).to_csv(folder / f"{AS_OF.isoformat()}_twice.csv",
                                                                     index=False)
    # the same with a byte that is not UTF-8 elsewhere in the file: its slower reader sees the name twice too
    (folder / f"{AS_OF.isoformat()}_twice_latin1.csv").write_bytes(
        order.assign(note="Müller").rename(columns={"note": "status"}).to_csv(index=False).encode("latin-1"))
    reasons = _quarantine(ingest_landing_zone(landing, AS_OF), "sales_orders").set_index("file")["reason"]
    assert reasons[f"{AS_OF.isoformat()}_twice_latin1.csv"] == ("the header names a column twice: status"
                                                                + ROWS_FROM_GOOD_EXTRACT)
    assert reasons[f"{AS_OF.isoformat()}_unicode.csv"].startswith("the file is UTF-16 text")
    assert reasons[f"{AS_OF.isoformat()}_cased.csv"] == (
        "missing required column(s) order_id, sku_id (column names are case-sensitive: the header has "
        "Order_ID for order_id, SKU_ID for sku_id): the whole file is quarantined" + ROWS_FROM_GOOD_EXTRACT)
    assert reasons[f"{AS_OF.isoformat()}_twice.csv"] == "the header names a column twice: status" + ROWS_FROM_GOOD_EXTRACT


def test_an_extra_column_named_twice_is_ignored_like_any_extra_column(landing):
    """Only a contract column named twice makes the file ambiguous; an extra one (a note exported twice) costs
    nothing, in CSV as in Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = landing / "sales_orders"
    csv = pd.DataFrame([_order("CSV-1"), _order("CSV-2")]).to_csv(index=False).splitlines()
    lines = [csv[0] + ",note,note"] + [line + ",a,b" for line in csv[1:]]
    (folder / f"{AS_OF.isoformat()}_notes.csv").write_text("\n".join(lines) + "\n")
    frame = pd.DataFrame([_order("PQ-1")])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = pa.Table.from_arrays([*table.columns, pa.array(["a"]), pa.array(["b"])],
                                 names=[*table.column_names, "note", "note"])
    pq.write_table(table, folder / f"{AS_OF.isoformat()}_notes.parquet")
    result = ingest_landing_zone(landing, AS_OF)
    assert _quarantine(result, "sales_orders").empty
    assert {"CSV-1", "CSV-2", "PQ-1"} <= set(result.table("sales_orders")["order_id"])


def test_a_contract_column_stored_as_lists_rejects_its_file_with_that_reason(landing):
    """sku_id as list<string> (['SKU-A']): every row would read as an unknown SKU, sending the planner to master
    data; the file is rejected whole, naming the column and its type. A nested extra column costs nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(pd.DataFrame([_order("LIST-1")]), preserve_index=False)
    listed = table.set_column(table.column_names.index("sku_id"), "sku_id", pa.array([["SKU-A"]]))
    pq.write_table(listed, landing / "sales_orders" / f"{AS_OF.isoformat()}_lists.parquet")
    extra = table.append_column("tags", pa.array([["a", "b"]]))
    extra = extra.set_column(extra.column_names.index("order_id"), "order_id", pa.array(["NESTED-EXTRA"]))
    pq.write_table(extra, landing / "sales_orders" / f"{AS_OF.isoformat()}_tags.parquet")
    result = ingest_landing_zone(landing, AS_OF)
    rejected = _quarantine(result, "sales_orders").set_index("file")
    assert rejected.loc[f"{AS_OF.isoformat()}_lists.parquet", "reason"] == (
        "column(s) stored as nested values, not one value per row: sku_id (list<element: string>); the source's "
        f"rows come from its other extracts (the latest loaded: {AS_OF.isoformat()}_tags.parquet)")
    assert f"{AS_OF.isoformat()}_tags.parquet" not in rejected.index
    assert "NESTED-EXTRA" in set(result.table("sales_orders")["order_id"])


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "with a byte-order mark"])
def test_invalid_utf8_row_is_quarantined_and_the_rest_of_the_file_kept(landing, bom):
    path = write_source(landing, "sales_orders", [_order("U1"), _order("U2", customer_id="CAFE"), _order("U3")],
                        suffix="_latin")
    path.write_bytes(bom + path.read_bytes().replace(b"CAFE", b"CAF\xe9").replace(b"\n", b"\n\n", 1))
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert quarantined[["row_number", "column", "reason"]].values.tolist() == [  # the blank line 2 is row 1
        [3, "customer_id", "customer_id holds bytes that are not valid UTF-8"]]
    assert '"customer_id":"CAF\ufffd"' in quarantined.loc[0, "raw_record"]
    assert "_read_problem" not in quarantined.loc[0, "raw_record"]  # the record as received, no internal flag
    assert {"U1", "U3"} <= set(result.table("sales_orders")["order_id"])


def test_invalid_utf8_in_an_extra_column_costs_no_row(landing):
    """An ERP export's free-text column in Latin-1 ("libellé: café"): extra columns are ignored, bad bytes and all;
    a contract value with a bad byte is quarantined alone, named, and not judged as an unknown id besides."""
    path = write_source(landing, "sales_orders",
                        [_order("X1") | {"note": "plain"}, _order("X2") | {"note": "CAFE"},
                         _order("X3", sku_id="SKU-ACAFE") | {"note": "x"}], suffix="_notes")
    path.write_bytes(path.read_bytes().replace(b"note", b"libell\xe9").replace(b"CAFE", b"caf\xe9"))
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert quarantined[["row_number", "column", "reason"]].values.tolist() == [
        [3, "sku_id", "sku_id holds bytes that are not valid UTF-8"]]
    assert {"X1", "X2"} <= set(result.table("sales_orders")["order_id"])


def test_a_file_with_invalid_utf8_and_malformed_rows_quarantines_both_and_keeps_the_rest(landing):
    """Invalid UTF-8 sends the file through the lenient read, which must not pad or cut a row with the wrong
    number of fields into a valid-looking one (a trailing comma stays harmless there too)."""
    orders = [_order("V1"), _order("V2", customer_id="CAFE"), _order("V3"), _order("V4"), _order("V5")]
    path = write_source(landing, "sales_orders", orders, suffix="_mixed")
    header, v1, v2, v3, v4, v5 = path.read_text().splitlines()
    lines = [header, v1, v2, "V-SHORT,1,C1", v3 + ",extra", v4 + ",", v5]
    path.write_bytes("\n".join(lines).encode().replace(b"CAFE", b"CAF\xe9"))
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert list(quarantined["row_number"]) == [2, 3, 4]
    reasons = list(quarantined["reason"])
    assert "not valid UTF-8" in reasons[0]
    assert reasons[1] == "malformed CSV row: 3 fields where the header has 12"
    assert reasons[2].startswith("malformed CSV row: 13 fields where the header has 12")
    kept = set(result.table("sales_orders")["order_id"])
    assert {"V1", "V4", "V5"} <= kept and not {"V2", "V3", "V-SHORT"} & kept  # V4's line ends with a comma


def test_broken_quoting_is_malformed_also_in_a_file_with_invalid_utf8(landing):
    """A bad byte elsewhere sends the file through the lenient read, which took ``"5"0`` for 50 and ``"C1" x`` for
    'C1 x' (DuckDB's reader, on a file without a bad byte, quarantines both rows). Spaces before a quoted value are
    dropped by both. A malformed row's record is its line as received, on either read."""
    orders = [_order("Q1"), _order("Q2", customer_id="CAFE"), _order("Q3"), _order("Q4"), _order("Q5")]
    path = write_source(landing, "sales_orders", orders, suffix="_quotes")
    header, q1, q2, q3, q4, q5 = path.read_text().splitlines()
    q3 = q3.replace(",10,0,", ',"5"0,0,')
    q4 = q4.replace(",C1,", ',"C1" x,')
    q5 = q5.replace(",C1,", ', "C1",')
    path.write_bytes("\n".join([header, q1, q2, q3, q4, q5, "Q-SHORT,1,C1"]).encode().replace(b"CAFE", b"CAF\xe9"))
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert list(quarantined["row_number"]) == [2, 3, 4, 6]
    reasons = list(quarantined["reason"])
    assert "not valid UTF-8" in reasons[0]
    assert reasons[1] == reasons[2] == UNQUOTED_VALUE_PROBLEM
    assert reasons[3] == "malformed CSV row: 3 fields where the header has 12"
    assert list(quarantined["raw_record"])[1:] == [q3, q4, "Q-SHORT,1,C1"]
    kept = result.table("sales_orders").set_index("order_id")
    assert {"Q1", "Q5"} <= set(kept.index) and not {"Q2", "Q3", "Q4"} & set(kept.index)
    assert kept.loc["Q5", "customer_id"] == "C1"


def test_the_lenient_read_rejects_a_broken_header_whole_and_ignores_columns_named_like_its_own(landing):
    """A file with a bad byte: a header with broken quoting is the file's problem (it escaped the ingest as an
    error); extra columns named like the two the lenient read adds are ignored like any extra column (one crashed
    the ingest, the other flagged nothing); a value longer than Python's default csv field limit is a value."""
    broken = write_source(landing, "sales_orders", [_order("H1")], suffix="_header")
    header, row = broken.read_text().splitlines()
    broken.write_bytes(("\n".join([header.replace("order_id,", '"order_id"x,', 1), row]) + "\n").encode()
                       + b"note\xe9\n")
    named = write_source(landing, "sales_orders",
                         [_order("N1") | {"_raw_line": "a", "_read_problem": "b", "note": "CAFE"},
                          _order("N2") | {"_raw_line": "c", "_read_problem": "", "note": "x" * 140_000}],
                         suffix="_named")
    named.write_bytes(named.read_bytes().replace(b"CAFE", b"CAF\xe9"))
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert set(quarantined["file"]) == {broken.name}  # the named file's rows all stand
    whole = quarantined.set_index("file").loc[broken.name]
    assert pd.isna(whole["row_number"]) and whole["reason"].startswith("the header row is malformed")
    assert {"N1", "N2"} <= set(result.table("sales_orders")["order_id"])


def test_spaces_before_a_quoted_header_name_are_dropped_as_in_a_row(landing):
    """`, "customer_id"` in the header names customer_id, as `, "C1"` in a row holds C1 (the file was rejected whole
    for a missing column, read through DuckDB; the lenient read took it)."""
    path = write_source(landing, "sales_orders", [_order("SP1")], suffix="_spaced")
    header, row = path.read_text().splitlines()
    path.write_text(header.replace(",customer_id,", ', "customer_id",') + "\n" + row.replace(",C1,", ', "C1",') + "\n")
    result = ingest_landing_zone(landing, AS_OF)
    assert path.name not in set(_quarantine(result, "sales_orders")["file"])
    kept = result.table("sales_orders").set_index("order_id")
    assert kept.loc["SP1", "customer_id"] == "C1"


def test_read_errors_deep_inside_a_streamed_file_are_handled_like_at_its_start(landing, monkeypatch):
    """Extracts are streamed in blocks: a bad byte or a broken row far from the header must not slip through."""
    monkeypatch.setattr("soe_assets.ingest.landing.BATCH_BYTES", 1024)  # many blocks for a small file
    orders = [_order(f"L{i}") for i in range(120)]
    latin = write_source(landing, "sales_orders", orders + [_order("LATE", customer_id="CAFE")], suffix="_latin")
    latin.write_bytes(latin.read_bytes().replace(b"CAFE", b"CAF\xe9"))
    ragged = write_source(landing, "sales_orders", [_order(f"R{i}") for i in range(120)], suffix="_ragged")
    ragged.write_text(ragged.read_text() + "R-X,1,C1,SKU-A,DC-1,2026-11-10,2026-11-25,2026-11-25,10,0,,open,extra\n")
    assert latin.stat().st_size > 4 * 1024 and ragged.stat().st_size > 4 * 1024

    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders").set_index("file")
    assert quarantined.loc[latin.name, "row_number"] == 121
    assert "not valid UTF-8" in quarantined.loc[latin.name, "reason"]
    assert quarantined.loc[ragged.name, "row_number"] == 121  # the broken row alone
    assert "13 fields where the header has 12" in quarantined.loc[ragged.name, "reason"]
    kept = set(result.table("sales_orders")["order_id"])
    assert {f"L{i}" for i in range(120)} | {f"R{i}" for i in range(120)} <= kept and "R-X" not in kept


def test_rows_of_a_large_csv_read_in_parallel_keep_their_numbers_in_the_quarantine(landing):
    """DuckDB reads a large CSV on both threads and the loading table stores no row number: every rejected
    row must still be named by its own line, however deep in the file, and every other row kept."""
    rows = 300_000  # ~20 MB: DuckDB splits a CSV into 8 MB chunks for its threads
    bulk = pd.DataFrame([_order("BULK")] * rows)
    bulk["order_id"] = [f"B{i:06d}" for i in range(rows)]
    bad = [1, 77_777, 150_001, 233_333, rows - 1]  # 0-based positions
    bulk.loc[bad, "ordered_qty"] = -1
    duplicated = [120_000, 280_000]  # the second copies the first's key
    bulk.loc[duplicated[1], "order_id"] = bulk.loc[duplicated[0], "order_id"]
    path = write_source(landing, "sales_orders", bulk, suffix="_bulk")
    assert path.stat().st_size > 16 * 2**20

    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert list(quarantined["row_number"]) == sorted(i + 1 for i in bad + duplicated)
    records = dict(zip(quarantined["row_number"], quarantined["raw_record"]))
    for position in bad:
        assert f'"order_id":"{bulk.loc[position, "order_id"]}"' in records[position + 1]
    kept = set(result.table("sales_orders")["order_id"])
    expected = set(bulk["order_id"].drop(index=bad + duplicated)) | {"GOOD-1", "GOOD-2"}
    assert kept == expected


def test_the_quarantine_picks_exactly_the_failed_rows_around_keys_that_look_alike(landing):
    """The quarantine finds a file's failed rows again by their typed keys: rows sharing part of a failed key,
    keys written differently but equal when typed, and keys with a blank or unparseable part must each be
    quarantined or kept exactly as the rules say, under their own row numbers, whatever extra columns the
    file has."""
    rows = [
        _order("K-1", line_no=1, ordered_qty="abc"),  # 1 fails (not a number)
        _order("K-1", line_no=2),  # 2 kept: shares only the order id with row 1
        _order(" K-2", line_no="1"),  # 3 and 4: the same key once typed (trimmed, 1.0 = 1): both copies fail
        _order("K-2", line_no="1.0"),
        _order("", line_no=3),  # 5 and 6: a blank key part fails, however many rows have it
        _order("", line_no=3),
        _order("K-3", line_no="x"),  # 7 and 8: an unparseable key part fails
        _order("K-3", line_no="y"),
        _order("K-3", line_no=1),  # 9 kept: its key is whole
        _order("K-4", line_no=1),  # 10 kept
    ]
    for row in rows:  # an extra column named like the ingest's own aliases must not stand in for the key
        row["order_id__text"] = "K-4"
    write_source(landing, "sales_orders", rows, suffix="_lookalike")
    result = ingest_landing_zone(landing, AS_OF)

    quarantined = _quarantine(result, "sales_orders")
    assert sorted(set(quarantined["row_number"])) == [1, 3, 4, 5, 6, 7, 8]
    assert result.reports["sales_orders"].rows_quarantined == 7
    by_row = quarantined.groupby("row_number")["reason"].apply(" | ".join)
    assert "ordered_qty is not a number" in by_row[1]
    assert all("duplicated primary key" in by_row[r] for r in (3, 4))
    assert all("order_id is empty" in by_row[r] for r in (5, 6))
    assert all("line_no is not an integer" in by_row[r] for r in (7, 8))
    assert '"order_id":" K-2"' in quarantined.loc[quarantined["row_number"] == 3, "raw_record"].iloc[0]
    kept = set(zip(*result.table("sales_orders")[["order_id", "line_no"]].to_dict("list").values()))
    assert kept == {("GOOD-1", 1), ("GOOD-2", 2), ("K-1", 2), ("K-3", 1), ("K-4", 1)}


SINGLE_KEY_SOURCES = [s.name for s in SOURCES if len(s.primary_key) == 1]


@pytest.mark.parametrize("source", SINGLE_KEY_SOURCES)
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_failed_rows_of_a_source_keyed_by_one_column_are_quarantined(landing, source, fmt):
    """The quarantine finds failed rows by their whole key, a struct even when the key has one part; a
    duplicated key and a blank key are quarantined under their row numbers and every other row is kept."""
    key = SOURCES_BY_NAME[source].primary_key[0]
    valid = minimal_network()[source]
    template = valid[-1]
    rows = [*valid, {**template, key: "DUP-KEY"}, {**template, key: "DUP-KEY"}, {**template, key: ""}]
    write_source(landing, source, rows, suffix="_bad_keys", fmt=fmt)
    result = ingest_landing_zone(landing, AS_OF)

    quarantined = _quarantine(result, source)
    assert sorted(set(quarantined["row_number"])) == [len(valid) + 1, len(valid) + 2, len(valid) + 3]
    by_row = quarantined.groupby("row_number")["reason"].apply(" | ".join)
    assert "duplicated primary key" in by_row[len(valid) + 1]
    assert f"{key} is empty" in by_row[len(valid) + 3]
    assert result.reports[source].rows_quarantined == 3
    assert sorted(result.table(source)[key]) == sorted(row[key] for row in valid)


def test_csv_is_read_as_rfc_4180(landing):
    """Quoted commas, quotes and line breaks are values; spaces around a quoted field and a trailing comma
    (one empty field more than the header) are dropped; the row numbers count records, not lines."""
    path = write_source(landing, "sales_orders", [_order("C1", customer_id='ACME, "Inc"\nEU'), _order("C2"),
                                                  _order("C3", ordered_qty=-1)], suffix="_rfc")
    lines = path.read_text().split("\n")
    assert lines[3].startswith("C2,")
    lines[3] = lines[3].replace(",C1,", ', "C1" ,') + ","
    path.write_text("\n".join(lines))
    result = ingest_landing_zone(landing, AS_OF)
    kept = result.table("sales_orders").set_index("order_id")
    assert kept.loc["C1", "customer_id"] == 'ACME, "Inc"\nEU'
    assert kept.loc["C2", "customer_id"] == "C1"
    assert list(_quarantine(result, "sales_orders")["row_number"]) == [3]


@pytest.mark.parametrize("blank_lines, rows", [
    ([], [1, 2]),
    ([2, 3], [3, 4, 5]),  # the two lines after the header (rows 1 and 2) are blank
    ([4, 5, 7], [1, 2, 5, 7, 8]),  # rows 3, 4 and 6 are blank
])
def test_rows_read_are_numbered_as_the_file_shows_them(blank_lines, rows):
    from soe_assets.ingest.pipeline import rows_counting_blank_lines
    read = np.arange(1, len(rows) + 1)
    assert rows_counting_blank_lines(read, np.array(blank_lines, dtype=np.int64)).tolist() == rows


@pytest.mark.parametrize("block_size", [1, 2, 3, 7, 1 << 24])
def test_blank_lines_are_found_outside_quoted_values_whatever_the_read_blocks(tmp_path, block_size):
    path = tmp_path / "x.csv"
    # lines: 1 header, 2 a row whose quoted value holds a blank line, 3 blank, 4 row, 5-6 blank (CRLF), 7 row
    path.write_bytes(b'a,b\n1,"x\n\ny"\n\n2,3\n\r\n\r\n4,"5\r\n"\n')
    assert blank_line_numbers(path, block_size).tolist() == [3, 5, 6]
    path.write_bytes(b'\r\n\n' + path.read_bytes())  # blank lines before the header: no rows, not counted
    assert blank_line_numbers(path, block_size).tolist() == [3, 5, 6]


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_malformed_csv_rows_are_quarantined_one_by_one_and_the_rest_of_the_file_flows_on(landing, newline):
    """A row with too many or too few fields or a broken quote goes to the quarantine as the line received,
    numbered as the file's rows (a quoted line break does not start a row; a blank line is one, as an editor or a
    spreadsheet shows it, though it holds nothing to quarantine); every other row is kept, and a row rejected by
    the contract after them keeps its own number."""
    orders = [_order(f"M{i}") for i in range(8)]
    orders[1]["customer_id"] = 'ACME\nEU'  # a quoted line break before the broken rows
    orders[6]["ordered_qty"] = -1  # rejected by the contract, after them
    path = write_source(landing, "sales_orders", orders, suffix="_broken")
    too_many = "M-EXTRA,1,C1,SKU-A,DC-1,2026-11-10,2026-11-25,2026-11-25,10,0,,open,surplus,more,most"
    too_few = "M-SHORT,1,C1,SKU-A,DC-1,2026-11-10,2026-11-25,2026-11-25,10,0"
    broken_quote = 'M-QUOTE,1,"C"7,SKU-A,DC-1,2026-11-10,2026-11-25,2026-11-25,10,0,,open'
    text = path.read_text().replace("\nM2,", f"\n\n{too_many}\nM2,")  # rows: 1 M0, 2 M1 (two lines), 3 blank
    text = text.replace("\nM5,", f"\n\n\n{too_few}\n{broken_quote}\nM5,").replace("\nM6,", "\n\nM6,")
    path.write_bytes(text.replace("\n", newline).encode())

    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert quarantined[["row_number", "column"]].fillna("").values.tolist() == [
        [4, ""], [10, "ship_date"], [11, "customer_id"], [14, "ordered_qty"]]
    reasons = list(quarantined["reason"])
    assert reasons[0] == ("malformed CSV row: 15 fields where the header has 12 "
                          "(a comma inside a value that is not quoted?)")
    assert reasons[1] == "malformed CSV row: 10 fields where the header has 12"
    assert "text after its closing quote" in reasons[2]
    assert list(quarantined["raw_record"])[:3] == [too_many, too_few, broken_quote]
    assert '"order_id":"M6"' in list(quarantined["raw_record"])[3]
    kept = result.table("sales_orders")
    assert set(kept["order_id"]) == {"GOOD-1", "GOOD-2"} | {f"M{i}" for i in range(8) if i != 6}
    assert kept.set_index("order_id").loc["M1", "customer_id"] == f"ACME{newline}EU"
    report = result.reports["sales_orders"]
    assert (report.rows_read_by_file[path.name], report.rows_quarantined) == (11, 4)


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"], ids=["DuckDB's read", "the lenient read"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("filler", ["   ", "\t", " , ,  ", "all commas"])
def test_a_line_holding_no_value_is_quarantined_as_an_empty_row(landing, filler, newline, encoding):
    """A line of spaces, a tab, or blanks and commas (as a spreadsheet exports a row it thinks used) holds no
    value: it is one quarantined row, for the row as a whole (no column), saying it is empty, with its line as
    received (a line that splits into the header's fields, its empty fields); a truly empty line is still no row.
    The rows around it flow on, and the rows after it keep their numbers. The lenient read (a file holding bytes
    that are not UTF-8) says the same."""
    orders = [_order("E1") | {"note": "café"}, _order("E2") | {"note": ""},
              _order("E3", ordered_qty=-1) | {"note": ""}, _order("E4") | {"note": ""}]
    path = write_source(landing, "sales_orders", orders, suffix="_gaps")
    filler = "," * (len(orders[0]) - 1) if filler == "all commas" else filler
    text = path.read_text().replace("\nE2,", f"\n{filler}\nE2,").replace("\nE3,", "\n\nE3,")  # rows 2 and 4
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert quarantined[["row_number", "column", "reason"]].values.tolist() == [
        [2, None, "empty row: no column holds a value"], [5, "ordered_qty", "ordered_qty must be > 0"]]
    received = quarantined.loc[0, "raw_record"]
    if filler.startswith(",,"):  # split as the header is: its fields, every one empty
        assert json.loads(received) == dict.fromkeys([*orders[0]], "")
    else:
        assert received == filler
    assert {"GOOD-1", "GOOD-2", "E1", "E2", "E4"} == set(result.table("sales_orders")["order_id"])
    report = result.reports["sales_orders"]
    assert (report.rows_read_by_file[path.name], report.rows_quarantined) == (5, 2)

def test_a_line_of_spaces_before_the_header_is_named_as_the_cause(landing):
    """Blank lines before a header are skipped; a line of spaces is a line with a value, so it is the header: the
    file lacks every column, and the reason says the header line holds no names."""
    path = write_source(landing, "sales_orders", [_order("S1")], suffix="_spaces")
    path.write_text("   \n" + path.read_text())
    reasons = _quarantine(ingest_landing_zone(landing, AS_OF), "sales_orders")["reason"].tolist()
    assert len(reasons) == 1 and reasons[0].startswith("missing required column(s) order_id, line_no")
    assert reasons[0].endswith(" (the header line holds no names: the first line that is not empty is the header): "
                               "the whole file is quarantined" + ROWS_FROM_GOOD_EXTRACT)


def test_a_file_name_that_is_not_utf8_is_quarantined_whole_and_shown_escaped(landing):
    """A Latin-1 byte in a file name (as a Windows share may deliver it) is no text: the file is rejected whole
    under its name with the byte escaped, and every other extract is read."""
    path = write_source(landing, "sales_orders", [_order("N1")], suffix="_lat")
    odd = os.fsdecode(os.fsencode(path).replace(b"_lat", b"_lat\xe9"))
    os.rename(path, odd)
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert quarantined[["file", "reason"]].values.tolist() == [
        [f"{AS_OF.isoformat()}_lat\\xe9.csv",
         "the file name is not valid UTF-8 (its other bytes are shown as \\xNN): rename the file"
         + ROWS_FROM_GOOD_EXTRACT]]
    assert quarantined["row_number"].isna().all()
    assert {"GOOD-1", "GOOD-2"} <= set(result.table("sales_orders")["order_id"])


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "with a byte-order mark"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("blank_before", [1, 2])
def test_blank_lines_before_the_header_are_no_rows(landing, newline, blank_before, bom):
    """A CSV whose header follows blank lines (the first holding only a byte-order mark, as some exports write
    it): the header is not read as a row, and rows are numbered from it (row 1 is the first line after the
    header; the blank line after B1 is row 2)."""
    orders = [_order("B1"), _order("B2", ordered_qty="bad"), _order("B3")]
    path = write_source(landing, "sales_orders", orders, suffix="_lead")
    text = path.read_text().replace("\nB2,", "\n\nB2,").replace("\nB3,", "\nB3,1,too,few\nB3,")
    path.write_bytes(bom + (newline * blank_before + text.replace("\n", newline)).encode())
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert quarantined[["row_number", "column"]].fillna("").values.tolist() == [[3, "ordered_qty"], [4, "location_id"]]
    assert quarantined.loc[1, "reason"] == "malformed CSV row: 4 fields where the header has 12"
    assert {"B1", "B3"} <= set(result.table("sales_orders")["order_id"])
    report = result.reports["sales_orders"]
    assert (report.rows_read_by_file[path.name], report.rows_quarantined) == (4, 2)


def test_a_quote_never_closed_makes_the_rest_of_the_file_one_malformed_row(landing):
    """RFC 4180 reads everything after an opening quote into the value until the quote closes: with no
    closing quote, the rest of the file is that one row, quarantined; the rows before it are kept."""
    path = write_source(landing, "sales_orders", [_order("W1"), _order("W2"), _order("W3")], suffix="_open")
    path.write_text(path.read_text().replace(",C1,SKU-A", ',"C1,SKU-A', 2).replace(',"C1,SKU-A', ",C1,SKU-A", 1))
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert list(quarantined["row_number"]) == [2]
    assert "is not closed" in quarantined.loc[0, "reason"]
    assert quarantined.loc[0, "raw_record"].startswith('W2,1,"C1,SKU-A') and "W3" in quarantined.loc[0, "raw_record"]
    assert set(result.table("sales_orders")["order_id"]) == {"GOOD-1", "GOOD-2", "W1"}
    assert result.reports["sales_orders"].rows_read_by_file[path.name] == 2


def test_malformed_rows_deep_in_a_large_csv_read_in_parallel_keep_their_numbers(landing):
    """Both threads skip malformed rows in their own chunk: each is numbered by its own line, and the rows the
    contract rejects between and after them keep theirs (the file is read again, skipping them, to find those)."""
    rows = 300_000  # ~20 MB: DuckDB splits a CSV into 8 MB chunks for its threads
    bulk = pd.DataFrame([_order("BULK")] * rows)
    bulk["order_id"] = [f"B{i:06d}" for i in range(rows)]
    rejected = [5, 150_000, rows - 2]  # 0-based positions among the well-formed rows
    bulk.loc[rejected, "ordered_qty"] = -1
    path = write_source(landing, "sales_orders", bulk, suffix="_bulk")
    header, *body = path.read_text().splitlines()
    malformed_after = [0, 100_000, 200_000, 200_000, rows - 1]  # a malformed line after these well-formed rows
    out, inserted = [header], 0
    for position, line in enumerate(body):
        out.append(line)
        while inserted < len(malformed_after) and malformed_after[inserted] == position:
            out.append(line + ",surplus")
            inserted += 1
    path.write_text("\n".join(out) + "\n")
    assert path.stat().st_size > 16 * 2**20

    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    malformed_rows = [after + 2 + i for i, after in enumerate(malformed_after)]
    rejected_rows = [p + 1 + sum(after < p for after in malformed_after) for p in rejected]
    assert list(quarantined["row_number"]) == sorted(malformed_rows + rejected_rows)
    numbered = dict(zip(quarantined["row_number"], quarantined["raw_record"]))
    for position, row in zip(rejected, rejected_rows):
        assert f'"order_id":"{bulk.loc[position, "order_id"]}"' in numbered[row]
    for after, row in zip(malformed_after, malformed_rows):
        assert numbered[row] == body[after] + ",surplus"
    assert len(result.table("sales_orders")) == 2 + rows - len(rejected)


def test_a_parquet_extract_corrupt_inside_is_quarantined_whole_and_the_rest_flows_on(landing):
    """Parquet is read natively by DuckDB: a damaged page far from the footer must still quarantine the file."""
    import os

    import pyarrow.parquet as pq

    orders = pd.DataFrame([_order(f"P{i}", customer_id=f"customer-{i}-{os.urandom(8).hex()}") for i in range(3000)])
    path = landing / "sales_orders" / f"{AS_OF.isoformat()}_damaged.parquet"
    orders.to_parquet(path, index=False, row_group_size=300, compression="snappy")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 200] = os.urandom(200)
    path.write_bytes(bytes(data))
    assert pq.ParquetFile(path).metadata.num_rows == 3000  # the footer is intact: only reading the pages fails

    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert list(quarantined["file"]) == [path.name] and pd.isna(quarantined.loc[0, "row_number"])
    assert "not a readable Parquet file" in quarantined.loc[0, "reason"]
    assert set(result.table("sales_orders")["order_id"]) == {"GOOD-1", "GOOD-2"}


def test_a_parquet_column_named_like_duckdbs_row_number_does_not_shift_row_numbers(landing):
    frame = pd.DataFrame([_order("N1"), _order("N2", ordered_qty=-1)]).assign(file_row_number=[70, 80])
    path = landing / "sales_orders" / f"{AS_OF.isoformat()}_extra.parquet"
    frame.to_parquet(path, index=False)
    result = ingest_landing_zone(landing, AS_OF)
    assert list(_quarantine(result, "sales_orders")["row_number"]) == [2]
    kept = result.table("sales_orders").set_index("order_id")
    assert kept.loc["N1", "_file"] == path.name


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_extra_columns_named_like_the_reads_own_are_ignored(landing, fmt):
    """The read numbers rows as ``_row_number`` and flags rows it cannot take as received in ``_read_problem``:
    an extract's own columns of those names are extra columns like any other, ignored, and must not stand in
    for them."""
    frame = pd.DataFrame([_order("E1"), _order("E2", ordered_qty="x"), _order("E3")]).assign(
        _row_number=["junk", "more junk", "7"], _read_problem=["bad", "bad", ""])
    write_source(landing, "sales_orders", frame.astype(str), suffix="_own_names", fmt=fmt)
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert list(quarantined["row_number"]) == [2]
    assert list(quarantined["column"]) == ["ordered_qty"]
    assert "_row_number" not in quarantined["raw_record"].iloc[0]
    assert {"E1", "E3"} <= set(result.table("sales_orders")["order_id"])


def test_a_spreadsheet_style_csv_with_odd_extra_columns_and_blanks_loads_every_valid_row(landing):
    """A trailing comma on every line (an unnamed last column), extra columns named like the read's own in the
    middle of the header, and ids edged by tabs or line breaks (a quoted field): the values are the ids."""
    columns = list(pd.DataFrame([_order("X")]).columns)
    header = ["_row_number", *columns[:3], "_read_problem", *columns[3:], ""]
    rows = [_order("E1", customer_id="\tC1\t"), _order("E2", ordered_qty="x"), _order("\tE3\n")]
    lines = [",".join(header)] + [
        ",".join(["9", *(f'"{row[c]}"' for c in columns[:3]), "true", *(str(row[c]) for c in columns[3:]), ""])
        for row in rows]
    (landing / "sales_orders" / f"{AS_OF.isoformat()}_sheet.csv").write_text("\n".join(lines) + "\n")
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "sales_orders")
    assert quarantined[["row_number", "column"]].values.tolist() == [[2, "ordered_qty"]]
    kept = result.table("sales_orders").set_index("order_id")
    assert {"E1", "E3"} <= set(kept.index)
    assert kept.loc["E1", "customer_id"] == "C1"


def test_a_parquet_file_name_with_glob_characters_is_read_as_that_one_file(landing):
    frame = pd.DataFrame([_order("G1")])
    frame.to_parquet(landing / "sales_orders" / f"{AS_OF.isoformat()}_[eu]*.parquet", index=False)
    frame.assign(order_id="DECOY").to_parquet(landing / "sales_orders" / f"{AS_OF.isoformat()}_eX.parquet", index=False)
    result = ingest_landing_zone(landing, AS_OF)
    kept = result.table("sales_orders")
    assert list(kept.loc[kept["_file"] == f"{AS_OF.isoformat()}_[eu]*.parquet", "order_id"]) == ["G1"]
    assert _quarantine(result, "sales_orders").empty


def test_latest_extract_wins_and_csv_parquet_mix(landing):
    earlier = AS_OF - timedelta(days=7)
    write_source(landing, "sales_orders", [_order("UPS", status="open", ordered_qty=10)], extract=earlier, fmt="parquet")
    write_source(landing, "sales_orders", [_order("UPS", status="shipped", shipped_qty=10, ship_date="2026-11-17")],
                 extract=AS_OF, suffix="_b")
    # Same date, later file name (byte order) wins over "_a".
    write_source(landing, "sales_orders", [_order("SAME", ordered_qty=1)], extract=AS_OF, suffix="_a")
    write_source(landing, "sales_orders", [_order("SAME", ordered_qty=2)], extract=AS_OF, suffix="_c")
    result = ingest_landing_zone(landing, AS_OF)
    orders = result.table("sales_orders").set_index("order_id")
    assert orders.loc["UPS", "status"] == "shipped"
    assert orders.loc["UPS", "_file"] == f"{AS_OF.isoformat()}_b.csv"
    assert orders.loc["SAME", "ordered_qty"] == 2
    assert result.table("sales_orders")["order_id"].is_unique


def test_rejected_newest_version_leaves_the_newest_valid_version_standing(landing):
    earlier = AS_OF - timedelta(days=7)
    write_source(landing, "sales_orders", [_order("KEEP", ordered_qty=10)], extract=earlier)
    write_source(landing, "sales_orders", [_order("KEEP", ordered_qty=-1)], extract=AS_OF, suffix="_b")
    result = ingest_landing_zone(landing, AS_OF)
    orders = result.table("sales_orders").set_index("order_id")
    assert orders.loc["KEEP", "ordered_qty"] == 10
    reason = _quarantine(result, "sales_orders").loc[0, "reason"]
    assert f"the valid version of this key from {earlier.isoformat()}.csv stands" in reason


def test_extracts_dated_after_as_of_are_not_read(landing):
    write_source(landing, "sales_orders", [_order("LATER")], extract=AS_OF + timedelta(days=1))
    result = ingest_landing_zone(landing, AS_OF)
    assert "LATER" not in set(result.table("sales_orders")["order_id"])
    assert result.reports["sales_orders"].files_skipped == 1


def test_default_as_of_is_the_latest_extract_date(landing):
    write_source(landing, "inventory_snapshots", minimal_network()["inventory_snapshots"], extract=AS_OF + timedelta(days=2))
    assert ingest_landing_zone(landing).as_of == AS_OF + timedelta(days=2)


def test_missing_required_source_is_a_clear_error_naming_it(landing):
    for path in (landing / "shipments").iterdir():
        path.unlink()
    (landing / "shipments").rmdir()
    with pytest.raises(LandingZoneError, match="shipments"):
        ingest_landing_zone(landing, AS_OF)


def test_missing_optional_pos_sales_is_fine(landing):
    assert not (landing / "pos_sales").exists()
    result = ingest_landing_zone(landing, AS_OF)
    assert result.table("pos_sales").empty
    assert result.quarantine.empty


@pytest.mark.parametrize("source, row, kept", [
    ("sop_plan", {"plan_version": "BAD"}, lambda table: table["plan_version"].eq("BAD").sum()),
    # a capacity week named by its Tuesday would give its resource a second, overlapping week
    ("resource_capacity", {"resource_id": "LINE-9"}, lambda table: table["resource_id"].eq("LINE-9").sum()),
])
def test_a_week_start_must_be_a_monday(landing, source, row, kept):
    valid = {**minimal_network()[source][0], **row}
    write_source(landing, source, [valid, {**valid, "week_start": "2026-11-24"}], suffix="_weekly")
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, source)
    assert quarantined[["row_number", "column", "reason"]].values.tolist() == [
        [2, "week_start", "week_start must be a Monday (ISO week start)"]]
    assert kept(result.table(source)) == 1  # its Monday row of the same file flows on


def test_a_production_order_must_be_made_at_a_plant(landing):
    """production_orders.location_id is "a plant": an order at a DC would count as supply where nothing is made."""
    order = minimal_network()["production_orders"][0]
    write_source(landing, "production_orders", [{**order, "production_order_id": "MO-AT-DC", "location_id": "DC-1"},
                                                {**order, "production_order_id": "MO-NOWHERE", "location_id": "X-9"},
                                                {**order, "production_order_id": "MO-AT-PLANT"}], suffix="_mes")
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, "production_orders")
    assert quarantined[["row_number", "column", "reason"]].values.tolist() == [
        [1, "location_id", "location_id is not a plant (location_type in master data locations)"],
        [2, "location_id", "unknown location_id (not in master data locations)"],
    ]
    assert "MO-AT-PLANT" in set(result.table("production_orders")["production_order_id"])


def test_an_id_whose_master_data_row_was_quarantined_is_unknown_and_says_why(landing):
    """DC-9's only row in locations has a location_type outside the set, SKU-Q's a negative cost: both are
    quarantined, so a shipment from DC-9 and an order of SKU-Q are rejected, saying the id's own row was."""
    write_source(landing, "locations", [{"location_id": "DC-9", "location_type": "warehouse", "region": "north"}],
                 suffix="_new")
    write_source(landing, "skus", [{"sku_id": "SKU-Q", "product_family": "x", "unit_cost": -1, "unit_price": 2}],
                 suffix="_new")
    shipment = minimal_network()["shipments"][0]
    write_source(landing, "shipments", [{**shipment, "shipment_id": "SH-DC9", "from_location_id": "DC-9"},
                                        {**shipment, "shipment_id": "SH-X9", "from_location_id": "X-9"}], suffix="_tms")
    write_source(landing, "sales_orders", [_order("Q1", sku_id="SKU-Q")], suffix="_q")
    result = ingest_landing_zone(landing, AS_OF)
    assert _quarantine(result, "shipments")[["row_number", "reason"]].values.tolist() == [
        [1, "unknown from_location_id (not in master data locations: its row there was quarantined)"],
        [2, "unknown from_location_id (not in master data locations)"]]
    assert _quarantine(result, "sales_orders")["reason"].tolist() == [
        "unknown sku_id (not in master data skus: its row there was quarantined)"]


def test_timestamps_accept_iso_8601_with_offset_decimal_comma_or_the_hour_alone(landing):
    row = minimal_network()["sop_plan"][0]
    stamps = {"TZ": "2026-11-03T10:00:00+01:00", "COMMA": "2026-11-03T10:00:00,5Z", "HOUR": "2026-11-03T10Z"}
    write_source(landing, "sop_plan", [{**row, "plan_version": version, "committed_at": stamp}
                                       for version, stamp in stamps.items()], suffix="_tz")
    result = ingest_landing_zone(landing, AS_OF)
    committed = result.table("sop_plan").set_index("plan_version")["committed_at"]
    assert committed[list(stamps)].tolist() == [pd.Timestamp("2026-11-03 09:00:00"),
                                                pd.Timestamp("2026-11-03 10:00:00.5"), pd.Timestamp("2026-11-03 10:00")]
    assert _quarantine(result, "sop_plan").empty


def test_a_commit_time_with_an_offset_no_clock_has_is_quarantined_not_moved(landing):
    """'+99:00' is no UTC offset: the row is quarantined, its version is not committed at a made-up time."""
    row = minimal_network()["sop_plan"][0]
    write_source(landing, "sop_plan", [{**row, "plan_version": "ODD", "committed_at": "2026-11-24T08:00:00+99:00"}],
                 suffix="_odd")
    result = ingest_landing_zone(landing, AS_OF)
    assert "ODD" not in set(result.table("sop_plan")["plan_version"])
    assert _quarantine(result, "sop_plan")[["column", "reason"]].values.tolist() == [
        ["committed_at", "committed_at is not an ISO 8601 timestamp: '2026-11-24T08:00:00+99:00'"]]


def _typed_plan_parquet(landing: Path, rows: list[dict], name: str, zone: str | None = None,
                        unit: str = "ns") -> Path:
    """Plan rows as a Parquet extract storing ``committed_at`` as a timestamp (``zone``, ``unit``) and
    ``week_start`` as a date."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame(rows)
    frame["committed_at"] = pd.to_datetime(frame["committed_at"]).dt.tz_localize(zone)
    frame["week_start"] = pd.to_datetime(frame["week_start"]).dt.date
    table = pa.Table.from_pandas(frame, preserve_index=False)
    index = table.schema.get_field_index("committed_at")
    table = table.set_column(index, "committed_at", table["committed_at"].cast(pa.timestamp(unit, tz=zone)))
    path = landing / "sop_plan" / f"{AS_OF.isoformat()}_{name}.parquet"
    pq.write_table(table, path)
    assert pq.read_schema(path).field("committed_at").type == pa.timestamp(unit, tz=zone)
    return path


def test_typed_parquet_timestamps_mean_what_their_text_means(landing):
    """Stored timestamps skip the text parse: with a zone they become UTC, without one they are UTC already.
    Each version is committed after the minimal network's, so it is the one in force and kept."""
    base = minimal_network()["sop_plan"][0]
    for version, stamp, zone, unit in (("ZONED", "2026-11-03 10:00:00", "Europe/Paris", "ns"),
                                       ("NAIVE", "2026-11-03 09:00:00", None, "ns"),
                                       ("NAIVE_MS", "2026-11-03 09:00:00", None, "ms")):
        path = _typed_plan_parquet(landing, [{**base, "plan_version": version, "committed_at": stamp}],
                                   version.lower(), zone, unit)
        result = ingest_landing_zone(landing, AS_OF)
        committed = result.table("sop_plan").set_index("plan_version")["committed_at"]
        assert committed[version] == pd.Timestamp("2026-11-03 09:00:00")
        assert _quarantine(result, "sop_plan").empty
        path.unlink()


def _plan_version(name: str, committed_at: str) -> list[dict]:
    """The minimal network's plan rows as another version."""
    return [{**row, "plan_version": name, "committed_at": committed_at} for row in minimal_network()["sop_plan"]]


def test_every_valid_row_of_every_plan_version_reaches_the_warehouse(landing):
    """An older version and one committed after as_of, as Parquet beside the network's CSV plan: every valid
    row of every version is kept (staging shows the source as received; the committed plan picks the
    version in force), the bad one quarantined with its place in the file."""
    in_force = minimal_network()["sop_plan"]
    older = _plan_version("2026-10", "2026-10-05 09:00:00")
    older[2] = {**older[2], "demand_qty": -5.0}
    _typed_plan_parquet(landing, older, "older")
    _typed_plan_parquet(landing, _plan_version("2026-12", f"{AS_OF + timedelta(days=2)} 09:00:00"), "next_cycle")
    result = ingest_landing_zone(landing, AS_OF)
    kept = result.table("sop_plan")
    assert kept.groupby("plan_version").size().to_dict() == {
        "2026-10": len(in_force) - 1, "2026-11": len(in_force), "2026-12": len(in_force)}
    rejected = _quarantine(result, "sop_plan")
    assert rejected[["file", "row_number", "column"]].values.tolist() == [[f"{AS_OF}_older.parquet", 3, "demand_qty"]]
    report = result.reports["sop_plan"]
    assert (report.rows_read, report.rows_valid, report.rows_quarantined) == (3 * len(in_force), 3 * len(in_force) - 1, 1)


def test_a_key_duplicated_in_an_older_plan_version_quarantines_every_copy(landing):
    older = _plan_version("2026-10", "2026-10-05 09:00:00")
    _typed_plan_parquet(landing, older + older[:1], "older")
    result = ingest_landing_zone(landing, AS_OF)
    rejected = _quarantine(result, "sop_plan")
    assert sorted(rejected["row_number"]) == [1, len(older) + 1]
    assert rejected["reason"].str.startswith("duplicated primary key").all()
    assert result.reports["sop_plan"].rows_valid == 2 * len(older) - 1
    assert set(result.table("sop_plan")["plan_version"]) == {"2026-10", "2026-11"}


def test_empty_landing_zone_is_a_clear_error(tmp_path):
    with pytest.raises(LandingZoneError, match="does not exist"):
        ingest_landing_zone(tmp_path / "nowhere", date(2026, 1, 1))


def test_the_sample_network_passes_its_own_contracts(tmp_path):
    from soe_assets.sample_network import NetworkSize, generate_landing_zone

    summary = generate_landing_zone(tmp_path / "landing", seed=3, size=NetworkSize(skus=12, dcs=2, plants=1, stores=2))
    result = ingest_landing_zone(tmp_path / "landing")
    assert result.as_of == summary.as_of
    assert result.quarantine.empty, result.quarantine.head().to_string()
    assert result.rows_read == sum(summary.rows_per_source.values())
    assert result.reports["pos_sales"].rows_valid > 0


def test_a_file_rejected_whole_says_what_the_source_rows_come_from(landing):
    """Whether the source's data is missing or only not updated: the reason names the latest extract loaded
    beside the rejected file (here an earlier day's), or says that none was and the source has no rows."""
    stock = pd.read_csv(next((landing / "inventory_snapshots").glob("*.csv")))
    (landing / "inventory_snapshots" / f"{AS_OF.isoformat()}.csv").unlink()
    earlier = AS_OF - timedelta(days=7)
    stock.assign(snapshot_date=earlier.isoformat()).to_csv(
        landing / "inventory_snapshots" / f"{earlier.isoformat()}.csv", index=False)
    stock.drop(columns=["on_hand_qty"]).to_csv(landing / "inventory_snapshots" / f"{AS_OF.isoformat()}.csv",
                                               index=False)
    for path in (landing / "lanes").glob("*"):
        path.unlink()
    (landing / "lanes" / f"{AS_OF.isoformat()}.csv").write_text("from_location_id;to_location_id\n")
    result = ingest_landing_zone(landing, AS_OF)
    assert _quarantine(result, "inventory_snapshots")["reason"].tolist() == [
        "missing required column(s) on_hand_qty: the whole file is quarantined; the source's rows come from its "
        f"other extracts (the latest loaded: {earlier.isoformat()}.csv)"]
    assert len(result.table("inventory_snapshots")) == len(stock)  # the earlier day's rows stand
    (lanes_reason,) = _quarantine(result, "lanes")["reason"].tolist()
    assert lanes_reason.endswith("; no extract of this source was loaded, so it has no rows this run")
    assert result.table("lanes").empty


def test_between_files_of_one_date_the_later_name_in_byte_order_wins(landing):
    """Byte order, not the alphabet: 'B' (0x42) sorts before 'a' (0x61), so '_a' is the later file; and '_10'
    before '_9' (no natural sort)."""
    write_source(landing, "sales_orders", [_order("CASE", ordered_qty=1)], suffix="_a")
    write_source(landing, "sales_orders", [_order("CASE", ordered_qty=2)], suffix="_B")
    write_source(landing, "sales_orders", [_order("NUM", ordered_qty=9)], suffix="_9")
    write_source(landing, "sales_orders", [_order("NUM", ordered_qty=10)], suffix="_10")
    orders = ingest_landing_zone(landing, AS_OF).table("sales_orders").set_index("order_id")
    assert orders.loc["CASE", "ordered_qty"] == 1
    assert orders.loc["CASE", "_file"] == f"{AS_OF.isoformat()}_a.csv"
    assert orders.loc["NUM", "ordered_qty"] == 9


def test_a_file_missing_a_column_is_counted_whole_and_its_header_recorded(landing):
    """The whole file is quarantined: every row it holds counts as quarantined, and the raw record is the
    header as a JSON list (docs/columns.md)."""
    path = write_source(landing, "sales_orders", [_order("M1"), _order("M2"), _order("M3")], suffix="_broken")
    frame = pd.read_csv(path).drop(columns=["status"])
    frame.to_csv(path, index=False)
    result = ingest_landing_zone(landing, AS_OF)
    (row,) = _quarantine(result, "sales_orders").to_dict("records")
    assert json.loads(row["raw_record"]) == list(frame.columns)
    report = result.reports["sales_orders"]
    assert report.rows_read == 5 and report.rows_quarantined == 3 and report.rows_valid == 2


def test_the_raw_record_of_a_rejected_row_keeps_its_extra_columns(landing):
    """The raw record is the row as received, by the header's names: an extra column is part of it."""
    write_source(landing, "sales_orders", [_order("OK", note="fine"), _order("BAD", status="opened", note="typo")],
                 suffix="_erp")
    (row,) = _quarantine(ingest_landing_zone(landing, AS_OF), "sales_orders").to_dict("records")
    record = json.loads(row["raw_record"])
    assert record["note"] == "typo" and record["order_id"] == "BAD" and record["status"] == "opened"


# minimal_network has no POS; a sale for the tests that cover every source
_POS_SALE = {"sale_date": AS_OF.isoformat(), "sku_id": "SKU-A", "location_id": "DC-1", "qty": 3}
_ID_COLUMN = {"purchase_orders": "po_id", "production_orders": "production_order_id", "shipments": "shipment_id"}


@pytest.mark.parametrize("source,column", [("purchase_orders", "ordered_qty"), ("production_orders", "planned_qty"),
                                           ("shipments", "qty")])
def test_a_zero_quantity_where_the_contract_says_more_than_zero_is_quarantined(landing, source, column):
    row = minimal_network()[source][0]
    write_source(landing, source, [{**row, _ID_COLUMN[source]: "ZERO", column: 0}], suffix="_zero")
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, source)
    assert quarantined[["row_number", "column", "reason"]].values.tolist() == [[1, column, f"{column} must be > 0"]]
    assert "ZERO" not in set(result.table(source)[_ID_COLUMN[source]])


def test_zero_quantities_where_the_contract_says_at_least_zero_are_valid(landing):
    stock = minimal_network()["inventory_snapshots"][0]
    write_source(landing, "inventory_snapshots", [{**stock, "on_hand_qty": 0, "quality_hold_qty": 0}], suffix="_zero")
    write_source(landing, "pos_sales", [{"sale_date": AS_OF.isoformat(), "sku_id": "SKU-A", "location_id": "DC-1",
                                         "qty": 0}])
    lane = minimal_network()["lanes"][0]
    write_source(landing, "lanes", [{**lane, "to_location_id": "DC-2", "from_location_id": "DC-1", "transit_days": 0,
                                     "cost_per_unit": 0}], suffix="_zero")
    result = ingest_landing_zone(landing, AS_OF)
    assert result.quarantine.empty, result.quarantine.to_string()
    assert result.table("pos_sales")["qty"].tolist() == [0]


# Every column the landing-zone contract says names a sku or a location (written out from landing-zone.md, not
# taken from the code under test).
_REFERENCES = [
    ("lanes", "from_location_id", "location"), ("lanes", "to_location_id", "location"),
    ("sop_plan", "sku_id", "sku"), ("sop_plan", "location_id", "location"),
    ("sales_orders", "sku_id", "sku"), ("sales_orders", "location_id", "location"),
    ("inventory_snapshots", "sku_id", "sku"), ("inventory_snapshots", "location_id", "location"),
    ("purchase_orders", "sku_id", "sku"), ("purchase_orders", "location_id", "location"),
    ("production_orders", "sku_id", "sku"), ("production_orders", "location_id", "location"),
    ("resource_capacity", "location_id", "location"),
    ("shipments", "sku_id", "sku"), ("shipments", "from_location_id", "location"),
    ("shipments", "to_location_id", "location"),
    ("pos_sales", "sku_id", "sku"), ("pos_sales", "location_id", "location"),
]


@pytest.mark.parametrize("source,column,kind", _REFERENCES, ids=[f"{s}.{c}" for s, c, _ in _REFERENCES])
def test_an_id_unknown_to_master_data_is_quarantined_in_every_column_that_names_one(landing, source, column, kind):
    """landing-zone.md: every sku_id / location_id, and from_location_id / to_location_id too, must exist in
    master data."""
    rows = minimal_network().get(source) or [_POS_SALE]
    unknown = f"{kind.upper()}-NOWHERE"
    bad = {**rows[0], column: unknown}
    if source in _ID_COLUMN:
        bad[_ID_COLUMN[source]] = "UNKNOWN-REF"
    write_source(landing, source, [bad], suffix="_unknown")
    result = ingest_landing_zone(landing, AS_OF)
    quarantined = _quarantine(result, source)
    assert quarantined[["row_number", "column"]].values.tolist() == [[1, column]], quarantined.to_string()
    assert quarantined.loc[0, "reason"] == f"unknown {column} (not in master data {kind}s)"
    assert unknown not in set(result.table(source)[column])


def test_the_first_and_last_dates_the_contract_takes_are_valid(landing):
    """The dates a value may carry are 1900-01-01 to 2199-12-31, both included."""
    write_source(landing, "sales_orders", [_order("EDGE", requested_date="1900-01-01", promised_date="2199-12-31")],
                 suffix="_edge")
    result = ingest_landing_zone(landing, AS_OF)
    assert _quarantine(result, "sales_orders").empty
    edge = result.table("sales_orders").set_index("order_id").loc["EDGE"]
    assert (str(edge["requested_date"])[:10], str(edge["promised_date"])[:10]) == ("1900-01-01", "2199-12-31")


def test_an_as_of_up_to_35_days_after_the_latest_extract_is_a_run(landing):
    """README: a day more than 35 days after the latest extract is refused; 35 days is not more."""
    assert resolve_as_of(landing, AS_OF + timedelta(days=35)) == AS_OF + timedelta(days=35)
    with pytest.raises(LandingZoneError, match="36 days after the latest extract"):
        resolve_as_of(landing, AS_OF + timedelta(days=36))


def test_an_extract_dated_a_day_ahead_of_the_clock_dates_the_run_two_days_do_not(tmp_path):
    """README: a latest extract date still to come on the machine's clock is refused, with a day of slack for
    time zones."""
    today = datetime.now(timezone.utc).date()
    landing = write_landing_zone(tmp_path / "landing", minimal_network(), extract=today)
    tomorrow = write_source(landing, "sales_orders", minimal_network()["sales_orders"][:1],
                            extract=today + timedelta(days=1), suffix="_east")
    assert resolve_as_of(landing, None) == today + timedelta(days=1)
    tomorrow.unlink()
    write_source(landing, "sales_orders", minimal_network()["sales_orders"][:1], extract=today + timedelta(days=2),
                 suffix="_east")
    with pytest.raises(LandingZoneError, match="is after today"):
        resolve_as_of(landing, None)


# The event dates "no event after the extract date" covers (README: declared in data_contracts/sources.py).
_EVENT_DATES = [("sales_orders", "order_date"), ("sales_orders", "ship_date"), ("inventory_snapshots", "snapshot_date"),
                ("purchase_orders", "order_date"), ("purchase_orders", "received_date"),
                ("production_orders", "actual_finish_date"), ("shipments", "actual_arrival_date"),
                ("pos_sales", "sale_date")]


@pytest.mark.parametrize("source,column", _EVENT_DATES, ids=[f"{s}.{c}" for s, c in _EVENT_DATES])
def test_an_event_dated_after_its_extract_is_quarantined(landing, source, column):
    rows = minimal_network().get(source) or [_POS_SALE]
    bad = {**rows[0], column: (AS_OF + timedelta(days=1)).isoformat()}
    if source in _ID_COLUMN:
        bad[_ID_COLUMN[source]] = "FUTURE"
    if source == "sales_orders":
        bad["order_id"] = "FUTURE"
    write_source(landing, source, [bad], suffix="_future")
    quarantined = _quarantine(ingest_landing_zone(landing, AS_OF), source)
    assert quarantined[["row_number", "column"]].values.tolist() == [[1, column]], quarantined.to_string()
    assert quarantined.loc[0, "reason"].startswith(f"{column} is after the extract date {AS_OF.isoformat()}")
