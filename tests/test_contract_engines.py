"""The compiled SQL contract rejects exactly what pandera's own validation rejects, for the same reasons."""

import json
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from support import AS_OF, minimal_network, write_landing_zone, write_source
from test_contracts import BAD_ROWS, _order

from data_contracts.sources import SOURCES_BY_NAME
from data_contracts.validation import MasterData, validate_extract
from soe_assets.ingest.landing import list_extracts, read_extract_text, stored_typed_columns
from soe_assets.ingest.pipeline import ingest_landing_zone


def test_sql_engine_and_pandera_agree_on_every_kind_of_bad_row(tmp_path):
    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    rows = [_order("OK-0")] + [_order(f"BAD-{i}", **change) for i, (_, change, _, _) in enumerate(BAD_ROWS)]
    rows += [_order("DUP"), _order("DUP", ordered_qty=3), _order("OK-1", line_no="2.5")]
    write_source(landing, "sales_orders", rows, suffix="_mixed")

    sql = ingest_landing_zone(landing, AS_OF).quarantine
    sql = sql[sql["file"] == f"{AS_OF.isoformat()}_mixed.csv"][["row_number", "column", "reason"]]

    extract = next(e for e in list_extracts(landing, "sales_orders") if e.file.endswith("_mixed.csv"))
    text = read_extract_text(extract).to_pandas()
    master = MasterData(sku_ids={"SKU-A", "SKU-B"}, location_ids={"PLANT-1", "DC-1", "DC-2"})
    reference = validate_extract(SOURCES_BY_NAME["sales_orders"], text, extract_date=AS_OF, master=master).rejections

    def normalised(frame: pd.DataFrame) -> list[tuple]:
        return sorted((int(r), c, reason) for r, c, reason in frame[["row_number", "column", "reason"]].itertuples(index=False))

    assert len(sql) >= len(BAD_ROWS) + 3
    assert normalised(sql) == normalised(reference)


def test_typed_parquet_and_csv_of_the_same_rows_are_judged_alike(tmp_path):
    """A typed Parquet extract skips the text round trip; it must keep, reject and explain exactly as CSV does."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    day = pd.Timestamp("2026-11-10").date()
    later = pd.Timestamp("2026-11-30").date()
    table = pa.table({
        "order_id": ["OK", "NEG", "INF", "NULLQ", "FUTURE", "DUP", "DUP", "NODATE", "ANCIENT"],
        "line_no": pa.array([1] * 9, pa.int64()),
        "customer_id": ["C1"] * 9,
        "sku_id": ["SKU-A"] * 9,
        "location_id": ["DC-1"] * 9,
        "order_date": pa.array([day, day, day, day, later, day, day, None, day], pa.date32()),
        "requested_date": pa.array([day] * 8 + [date(1026, 11, 10)], pa.date32()),
        "promised_date": pa.array([day] * 9, pa.date32()),
        "ordered_qty": pa.array([10.0, -1.0, float("inf"), None, 10.0, 10.0, 3.0, 10.0, 10.0], pa.float64()),
        "shipped_qty": pa.array([0.0] * 9, pa.float64()),
        "ship_date": pa.array([None] * 9, pa.date32()),
        "status": ["open"] * 9,
    })
    judged = {}
    for fmt in ("parquet", "csv"):
        landing = write_landing_zone(tmp_path / fmt / "landing", minimal_network())
        path = landing / "sales_orders" / f"{AS_OF.isoformat()}_typed.{fmt}"
        if fmt == "parquet":
            pq.write_table(table, path)
            stored = stored_typed_columns(pq.read_schema(path), SOURCES_BY_NAME["sales_orders"].columns)
            assert {"line_no", "order_date", "ordered_qty"} <= stored  # the path under test is taken
        else:
            pacsv.write_csv(table, path)
        result = ingest_landing_zone(landing, AS_OF)
        quarantine = result.quarantine
        quarantine = quarantine[quarantine["file"] == path.name]
        kept = result.table("sales_orders")
        judged[fmt] = (
            sorted(quarantine[["row_number", "column", "reason"]].itertuples(index=False, name=None)),
            sorted(kept[kept["_file"] == path.name][["order_id", "ordered_qty", "order_date"]].itertuples(
                index=False, name=None)),
        )
    rejections, kept = judged["parquet"]
    assert {row for row, _, _ in rejections} == {2, 3, 4, 5, 6, 7, 8, 9}
    assert (9, "requested_date", "requested_date is outside the dates 1900-01-01 to 2199-12-31") in rejections
    assert kept == [("OK", 10.0, pd.Timestamp(day))]
    assert judged["parquet"] == judged["csv"]


def test_dates_stored_as_timestamps_at_midnight_are_those_dates_in_their_own_time_zone(tmp_path):
    """pandas writes dates to Parquet as timestamps: one at midnight (naive, or in its own zone, named or as an
    offset) is that date, kept as the same date written as text; one with a time of day is rejected, as its text
    is in a CSV; the other rules (out of range, after the extract date) judge it like any date."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def stamps(zone: str | None, *values: str) -> pa.Array:
        """Each value's wall clock in ``zone`` (an IANA name or an offset), stored as Arrow stores it (UTC)."""
        if zone is None:
            tzinfo = None
        elif zone[0] in "+-":
            tzinfo = timezone(int(zone[0] + "1") * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:])))
        else:
            tzinfo = ZoneInfo(zone)
        clocks = [datetime.fromisoformat(v).replace(tzinfo=tzinfo) for v in values]
        utc = [c.astimezone(timezone.utc).replace(tzinfo=None) if tzinfo else c for c in clocks]
        return pa.array(utc, pa.timestamp("us", tz=zone))

    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    zoned = {"Europe/Berlin": "BERLIN", "+05:30": "OFFSET"}
    frames = []
    for zone in (None, *zoned):
        rows = ["NAIVE", "TIMED", "LATER", "ANCIENT"] if zone is None else [zoned[zone]]
        order_dates = {"TIMED": "2026-11-10 14:30", "LATER": "2026-11-30"}
        frames.append(pa.table({
            "order_id": rows, "line_no": pa.array([1] * len(rows), pa.int64()), "customer_id": ["C1"] * len(rows),
            "sku_id": ["SKU-A"] * len(rows), "location_id": ["DC-1"] * len(rows),
            "order_date": stamps(zone, *(order_dates.get(r, "2026-11-10") for r in rows)),
            "requested_date": stamps(zone, *("1026-11-25" if r == "ANCIENT" else "2026-11-25" for r in rows)),
            "promised_date": stamps(zone, *["2026-11-25"] * len(rows)),
            "ordered_qty": [10.0] * len(rows), "shipped_qty": [0.0] * len(rows),
            "ship_date": pa.array([None] * len(rows), pa.timestamp("us", tz=zone)), "status": ["open"] * len(rows),
        }))
    for position, table in enumerate(frames):
        pq.write_table(table, landing / "sales_orders" / f"{AS_OF.isoformat()}_stamped_{position}.parquet")
    result = ingest_landing_zone(landing, AS_OF)

    kept = result.table("sales_orders").set_index("order_id")
    for order in ("NAIVE", "BERLIN", "OFFSET"):
        assert kept.loc[order, "order_date"] == pd.Timestamp("2026-11-10"), order
        assert kept.loc[order, "requested_date"] == pd.Timestamp("2026-11-25"), order
        assert pd.isna(kept.loc[order, "ship_date"])
    quarantine = result.quarantine.set_index("row_number")[["column", "reason"]]
    assert quarantine.loc[2].tolist() == ["order_date", "order_date is not a date (YYYY-MM-DD): '2026-11-10 14:30:00'"]
    assert quarantine.loc[3].tolist() == [
        "order_date", f"order_date is after the extract date {AS_OF.isoformat()} (a future event cannot be reported)"]
    assert quarantine.loc[4].tolist() == ["requested_date", "requested_date is outside the dates 1900-01-01 to 2199-12-31"]
    assert len(quarantine) == 3


@pytest.mark.parametrize(("zone", "shown"), [("Europe/Berlin", "2026-11-10 00:30:00 Europe/Berlin"),
                                             ("+05:30", "2026-11-10 00:30:00+05:30")])
def test_a_zoned_timestamp_is_quarantined_as_the_file_holds_it_on_its_own_clock(tmp_path, zone, shown):
    """A date stored as a zoned timestamp with a time of day (00:30 on 10 November in its zone, 9 November in UTC):
    the reason and the raw record show it on the file's own clock, with its zone, not on the day UTC puts it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    landing = write_landing_zone(tmp_path / "landing", minimal_network())
    order = dict(minimal_network()["sales_orders"][0], order_id="ZONED")
    table = pa.Table.from_pylist([order]).set_column(
        list(order).index("order_date"), "order_date",
        pa.array([pd.Timestamp("2026-11-10 00:30", tz=zone).tz_convert("UTC").tz_localize(None)],
                 pa.timestamp("us", tz=zone)))
    pq.write_table(table, landing / "sales_orders" / f"{AS_OF.isoformat()}_zoned.parquet")
    rejected = ingest_landing_zone(landing, AS_OF).quarantine.set_index("file").loc[f"{AS_OF.isoformat()}_zoned.parquet"]
    assert rejected["reason"] == "order_date is not a date (YYYY-MM-DD): '2026-11-10 00:30:00'"
    assert json.loads(rejected["raw_record"])["order_date"] == shown


def test_the_fast_text_and_timestamp_paths_mean_what_the_general_ones_mean():
    """The cheap paths skip trim's copy and the zoned parse only where the result cannot differ."""
    import duckdb

    from data_contracts.sql_rules import literal, parsed_text, plain_cast, trimmed_text, typed_expression
    from data_contracts.validation import EDGE_BLANKS

    values = [
        "SKU-A", " SKU-A", "SKU-A ", "  ", "", "\u00a0SKU\u00a0", "\u3000x", "é", " é ", "\tSKU\t", "a b",
        "2026-11-03T10:00:00", "2026-11-03 10:00:00", "2026-11-03T10:00:00Z", "2026-11-03T10:00:00+01:00",
        "2026-11-03T10:00:00-05", "2026-11-03T10:00:00.5+05:30", "2026-11-03+10:00:00", "2026-11-03",
        "2026-1-3T1:00:00+01:00", "2026-11-03T10:00", "2026-11-03T10:00+01", "2026-11-03T25:00:00",
        "2026-13-03T10:00:00", "2026-11-03T10:00:00 Europe/Paris", "not a time", "2026-11-03x10:00:00",
        " 2026-11-03T10:00:00 ", "\u00a02026-11-03T10:00:00", "2026-11-03T10:00:00\u3000", "\t2026-11-03\t",
        "\u00a02026-11-03", "2026-02-30", "5", " 5 ", "\u00a05\u00a0", "\t-2.5\n", "5.0", "5.5", "1e3", "+7",
        "inf", "-Infinity", "nan", "1,5", "0x10", "1_000", "9223372036854775807", "1e300",
        "SKU\n", "\r\nSKU", "SKU \t", "\x0bSKU", "SKU\x0c", "2026-11-03\n", "epoch", "infinity", "2026/11/03",
        "26-11-03", "1026-11-03", "2026-11-03T10:00:00,5", "2026-11-03T10Z", "2026-11-03T10+01:00",
    ]
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("CREATE TABLE t AS SELECT unnest(?) AS v", [values])
    text = f"NULLIF(trim(v, {literal(EDGE_BLANKS)}), '')"
    rows = conn.execute(f"SELECT v, {trimmed_text('v')}, {text} FROM t").fetchall()
    assert len(rows) == len(values)
    for value, fast_text, general_text in rows:
        assert fast_text == general_text == (value.strip(EDGE_BLANKS) or None), value  # as the pandas engine strips
    # A typed value read from its plain cast where that reads back as received, trimmed and parsed by the
    # general rule elsewhere, is the trimmed text's value by the general rule.
    for kind, parsing in (("date", 3), ("ts", 8), ("int", 3), ("num", 3)):
        received = conn.execute(
            f"SELECT v, {parsed_text(kind, 'v', plain_cast(kind, 'v'))}, {typed_expression(kind, text)} FROM t"
        ).fetchall()
        assert [(v, fast) for v, fast, _ in received] == [(v, general) for v, _, general in received], kind
        assert sum(value is not None for _, value, _ in received) >= parsing, kind  # the values above that parse do


def test_both_engines_read_every_date_and_timestamp_form_alike():
    """DuckDB's casts take forms the contract does not ('2026-11-2 ' as 2 November, a one-digit hour, a
    signed year); each value must be typed, unparseable or out of range in SQL exactly as in pandas."""
    import duckdb

    from data_contracts.sql_rules import parsed_text, plain_cast
    from data_contracts.validation import _parse_column

    forms = {
        "date": ["2026-11-20", " 2026-11-20 ", "2026-11-2 ", " 026-11-20", "-026-11-20", "+026-11-20", "0026-11-20",
                 "0000-01-01", "2026-11-20 ", "2026-1-20 ", "02026-1-20", "2026-11-20 (BC)", "10000-01-01",
                 "2026 11 20", "2026\\11\\20", "2026-11-20 10:00:00 BC", "2026-11-20 (bc)", "1899-12-31", "2199-12-31", "2200-01-01", "2024-02-29", "2026-02-29"],
        "ts": ["2026-11-20T10:00:00", "2026-11-20 10:00:00", "2026-11-2  10:00:00", " 026-11-20 10:00:00",
               "-026-11-20 10:00:00", "2026-11-20 1:00:00", "2026-11-20T10:00:0 ", "2026-11-20T10:00:00+01:00",
               "2026-11-20 10:00:00Z", "0000-01-01T00:00:00", "2026-11-20T10:00", "2199-12-31T23:59:59",
               "2200-01-01T00:00:00", "1899-12-31T23:59:59", "2026-11-20 (BC)", "2026-11-20 (BC) 10:00:00",
               "2026-11-20", "2026-11-20T10:00:00.5+05:30", "2026-11-20T10:00:00,5Z", "2026-11-20T10Z",
               "2026-11-20T10", "2026-11-20 10-05", "2026-11-20T1", "2026-11-20T10:30,5", "2026-11-20T10:00:00,",
               "2026-11-20t10:00:00z", "2026-11-20T24Z", "2026-11-20T10+01:00:00", "2026-11-20T10:00:00,5 Z",
               "2026-11-20T10:00:00,5+1", "2026-11-20T10:00:00,5 UTC", "2026-11-20T08:00:00+25:00",
               "2026-11-20T08:00:00-99:00", "2026-11-20T08:00:00+14:60", "2026-11-20T10-24", "2026-11-20T08:00:00+2400",
               "2026-11-20T08:00:00+23:59", "2026-11-20T08:00:00-12:00"],
    }
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    for kind, values in forms.items():
        typed = parsed_text(kind, "v", plain_cast(kind, "v"))
        in_range = f"{typed} BETWEEN DATE '1900-01-01' AND TIMESTAMP '2199-12-31 23:59:59.999999'"
        sql = conn.execute(f"SELECT CAST({typed} AS VARCHAR), {in_range} FROM unnest(?) AS t(v)", [values]).fetchall()
        parsed, unparseable, out_of_range = _parse_column(kind, pd.Series(values, dtype="string"))
        for value, (in_sql, sql_in_range), in_pandas, bad, outside in zip(values, sql, parsed, unparseable, out_of_range):
            if outside:  # a real date the range rule rejects: SQL types it, and its range check fails
                assert in_sql is not None and not sql_in_range, value
            elif bad:
                assert in_sql is None, value
            else:
                assert sql_in_range and pd.Timestamp(in_sql) == in_pandas, value


def test_iso_8601_timestamps_with_a_decimal_comma_or_the_hour_alone_are_read_in_both_engines():
    """ISO 8601 prefers the comma as decimal sign and lets a time stop at the hour: neither engine's own
    parse reads those forms, the contract does (a plan committed so would be quarantined whole)."""
    import duckdb

    from data_contracts.sql_rules import parsed_text, plain_cast
    from data_contracts.validation import _parse_column

    expected = {
        "2026-11-20T10:00:00,5Z": "2026-11-20 10:00:00.5", "2026-11-20T10:00:00,25": "2026-11-20 10:00:00.25",
        "2026-11-20T10Z": "2026-11-20 10:00:00", "2026-11-20T10": "2026-11-20 10:00:00",
        "2026-11-20T10+01:00": "2026-11-20 09:00:00", "2026-11-20 23-05": "2026-11-21 04:00:00",
    }
    values = list(expected)
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    typed = parsed_text("ts", "v", plain_cast("ts", "v"))
    in_sql = [row[0] for row in conn.execute(f"SELECT {typed} FROM unnest(?) AS t(v)", [values]).fetchall()]
    in_pandas, unparseable, _ = _parse_column("ts", pd.Series(values, dtype="string"))
    assert not unparseable.any()
    assert [pd.Timestamp(value) for value in in_sql] == list(in_pandas) == [pd.Timestamp(v) for v in expected.values()]


def test_a_timestamp_with_a_utc_offset_no_clock_has_is_unparseable_in_both_engines():
    """An offset hour past 23 or minute past 59 is no ISO 8601 offset: DuckDB read '+25:00' as a day and an
    hour, so a plan committed '2026-11-24T08:00:00+99:00' came into force four days early. Offsets a clock
    has, however far from UTC, still parse."""
    import duckdb

    from data_contracts.sql_rules import parsed_text, plain_cast
    from data_contracts.validation import _parse_column

    impossible = ["2026-11-20T08:00:00+25:00", "2026-11-20T08:00:00+24:00", "2026-11-20T08:00:00+14:60",
                  "2026-11-20T08:00:00-99:00", "2026-11-20T08:00:00+2500", "2026-11-20T10-24", "2026-11-20 08:00+30"]
    possible = {"2026-11-20T08:00:00+23:59": "2026-11-19 08:01:00", "2026-11-20T08:00:00-12:00": "2026-11-20 20:00:00",
                "2026-11-20T08:00:00+0530": "2026-11-20 02:30:00", "2026-11-20T10-05": "2026-11-20 15:00:00"}
    values = impossible + list(possible)
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    typed = parsed_text("ts", "v", plain_cast("ts", "v"))
    in_sql = [row[0] for row in conn.execute(f"SELECT {typed} FROM unnest(?) AS t(v)", [values]).fetchall()]
    in_pandas, unparseable, _ = _parse_column("ts", pd.Series(values, dtype="string"))
    assert in_sql[:len(impossible)] == [None] * len(impossible)
    assert unparseable.tolist() == [True] * len(impossible) + [False] * len(possible)
    expected = [pd.Timestamp(v) for v in possible.values()]
    assert [pd.Timestamp(v) for v in in_sql[len(impossible):]] == list(in_pandas[len(impossible):]) == expected


def test_a_timestamp_without_a_zone_is_read_alike_after_one_with_a_zone() -> None:
    """pandas gives a value without a zone the offset of a zoned value parsed before it in one call."""
    from data_contracts.validation import _parse_column

    values = ["2026-11-20T10:00:00+05:30", "2026-11-20T10:00", "2026-11-20T10Z", "2026-11-20 10:00:00"]
    forward, _, _ = _parse_column("ts", pd.Series(values, dtype="string"))
    backward, _, _ = _parse_column("ts", pd.Series(values[::-1], dtype="string"))
    expected = [pd.Timestamp(t) for t in ("2026-11-20 04:30", "2026-11-20 10:00", "2026-11-20 10:00", "2026-11-20 10:00")]
    assert list(forward) == expected and list(backward) == expected[::-1]


def test_both_engines_read_every_number_form_alike():
    """DuckDB's number casts take a digit separator ('1_000') and a doubled sign ('+-1' as -1), and read
    'inf'; the contract's numbers are finite decimals: each form must parse, or fail, alike in SQL and pandas."""
    import duckdb

    from data_contracts.sql_rules import parsed_text, plain_cast
    from data_contracts.validation import _parse_column

    forms = ["5", " 5 ", "5.0", "5.5", "-2.5", "+7", ".5", "5.", "1e3", "1E-3", "-.5e1", "00012", "-0", "1e300",
             "1_000", " 1_000 ", "-1_1", "1_0.5", "+-1", " +-1", "+-.5", "--1", "++1", "-+1", "0x10", "1,5", "1 000",
             "inf", "-inf", "Infinity", "nan", "NaN", "1e400", "e3", "1e", "1.2.3", "５", ""]
    conn = duckdb.connect()
    for kind in ("num", "int"):
        typed = parsed_text(kind, "v", plain_cast(kind, "v"))
        sql = [row[0] for row in conn.execute(f"SELECT {typed} FROM unnest(?) AS t(v)", [forms]).fetchall()]
        parsed, unparseable, _ = _parse_column(kind, pd.Series(forms, dtype="string"))
        in_pandas = [None if bad or pd.isna(value) else float(value) for value, bad in zip(parsed, unparseable)]
        assert [(f, None if v is None else float(v)) for f, v in zip(forms, sql)] == list(zip(forms, in_pandas)), kind
        assert sum(v is not None for v in in_pandas) >= 9, kind  # the plain forms above do parse
