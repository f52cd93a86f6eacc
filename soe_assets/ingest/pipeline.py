"""Ingest a landing zone: read every extract, validate, upsert, quarantine.

The rules are those of ``shared/spec/landing-zone.md``: a source's files are
unioned and the latest valid version of each primary key wins (extract date,
then file name in byte order); an invalid row goes to the quarantine with
its source, file, 1-based row number, column and reason, and every valid row
of the same file still flows on; a file that cannot be read, has no extract
date in its name or lacks a contract column is quarantined whole.
"""

from __future__ import annotations

from collections.abc import Callable
import json
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from data_contracts.sources import SOURCES, SourceContract
from data_contracts.sql_rules import compile_contract, literal, text_alias
from data_contracts.validation import missing_columns
from soe_assets.ingest.landing import INVALID_UTF8, Extract, UnreadableFile, list_extracts, read_extract_text
from soe_assets.warehouse import RunContext, quote, replace_table

Progress = Callable[[str], None]


class LandingZoneError(Exception):
    """A problem with the landing zone as a whole that the user must fix (no traceback)."""


@dataclass
class SourceReport:
    source: str
    files_read: int = 0
    files_skipped: int = 0
    latest_extract_date: date | None = None
    rows_read: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0


@dataclass
class IngestResult:
    as_of: date
    reports: dict[str, SourceReport]
    conn: duckdb.DuckDBPyConnection  # holds schema ``raw`` with the validated tables and the quarantine

    def table(self, source: str) -> pd.DataFrame:
        return self.conn.execute(f"SELECT * FROM raw.{quote(source)}").df()

    @property
    def quarantine(self) -> pd.DataFrame:
        return self.conn.execute("SELECT * FROM raw.quarantine ORDER BY source, file, row_number").df()

    @property
    def rows_read(self) -> int:
        return sum(r.rows_read for r in self.reports.values())

    @property
    def rows_quarantined(self) -> int:
        return sum(r.rows_quarantined for r in self.reports.values())


def resolve_as_of(landing_dir: Path, requested: date | None) -> date:
    """The run's as_of: as requested, else the latest extract date in the landing zone."""
    check_landing_zone(landing_dir)
    if requested is not None:
        return requested
    dates = [e.extract_date for s in SOURCES for e in list_extracts(landing_dir, s.name) if e.extract_date]
    if not dates:
        raise LandingZoneError(f"no extract in {landing_dir} has a name starting with a date YYYY-MM-DD")
    return max(dates)


def check_landing_zone(landing_dir: Path) -> None:
    if not landing_dir.is_dir():
        raise LandingZoneError(f"landing zone {landing_dir} does not exist or is not a folder")
    missing = [s.name for s in SOURCES if s.required and not (landing_dir / s.name).is_dir()]
    if missing:
        raise LandingZoneError(
            f"landing zone {landing_dir} lacks required source folder(s): {', '.join(missing)} "
            "(see the landing-zone layout in the README)"
        )


def _json_object(columns: list[str]) -> str:
    """SQL building the raw record (text as received) of a row of ``_text``."""
    pairs = ", ".join(f"{literal(c)}, {quote(c)}" for c in columns)
    return f"CAST(json_object({pairs}) AS VARCHAR)"


class _SourceIngest:
    """Validates, upserts and quarantines one source inside the DuckDB connection."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, source: SourceContract, detected_at: datetime,
                 master_tables: dict[str, str] | None) -> None:
        self.conn = conn
        self.source = source
        self.detected_at = detected_at
        self.master_tables = master_tables
        self.report = SourceReport(source.name)
        self.valid = f"_valid_{source.name}"
        self.rejected = f"_rejected_{source.name}"
        typed = ", ".join(f"CAST(NULL AS {t}) AS {quote(c)}" for c, t in source.sql_columns.items())
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {self.valid} AS SELECT {typed}, CAST(NULL AS VARCHAR) AS _file, "
            "CAST(NULL AS DATE) AS _extract_date, CAST(NULL AS BIGINT) AS _row_number, "
            "CAST(NULL AS INTEGER) AS _file_order LIMIT 0"
        )
        pk = ", ".join(f"CAST(NULL AS {source.sql_columns[c]}) AS {quote(c)}" for c in source.primary_key)
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {self.rejected} AS SELECT {pk}, CAST(NULL AS VARCHAR) AS file, "
            "CAST(NULL AS BIGINT) AS row_number LIMIT 0"
        )

    def quarantine_file(self, extract: Extract, reason: str, column: str | None = None, raw: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO raw.quarantine VALUES (?, ?, NULL, ?, ?, ?, ?)",
            [self.source.name, extract.file, column, reason, raw, self.detected_at],
        )

    def add(self, extract: Extract, file_order: int) -> None:
        source, conn = self.source, self.conn
        try:
            text = read_extract_text(extract)
        except UnreadableFile as error:
            self.quarantine_file(extract, str(error))
            return
        self.report.files_read += 1
        self.report.latest_extract_date = max(filter(None, [self.report.latest_extract_date, extract.extract_date]))
        self.report.rows_read += text.num_rows
        header = [c for c in text.column_names if not c.startswith("_")]
        missing = missing_columns(source, header)
        if missing:
            hint = " (is the delimiter a comma?)" if len(header) <= 2 and ";" in "".join(header) else ""
            self.quarantine_file(
                extract,
                f"missing required column(s) {', '.join(missing)}{hint}: the whole file is quarantined",
                column=", ".join(missing),
                raw=json.dumps(header),
            )
            self.report.rows_quarantined += text.num_rows
            return
        rules = compile_contract(source, extract_date=extract.extract_date.isoformat(), master_tables=self.master_tables)
        failures = list(rules.failures)
        if INVALID_UTF8 in text.column_names:
            failures.append(("", quote(INVALID_UTF8), literal("the row holds bytes that are not valid UTF-8")))
        as_text = ", ".join(f"{expression} AS {text_alias(c)}" for c, expression in rules.text_columns.items())
        typed = ", ".join(f"{expression} AS {quote(c)}" for c, expression in rules.typed_columns.items())
        utf8 = f", {quote(INVALID_UTF8)}" if INVALID_UTF8 in text.column_names else ""
        keyed = (
            f"as_text AS (SELECT _row_number, {as_text}{utf8} FROM _text), "
            f"typed AS (SELECT *, {typed} FROM as_text), "
            f"keyed AS (SELECT *, {rules.key_copies} AS _key_copies FROM typed)"
        )
        columns = ", ".join(quote(c) for c in source.columns)
        any_failure = " OR ".join(f"coalesce({condition}, false)" for _, condition, _ in failures)
        conn.register("_text", text)
        try:
            # Pass 1, every row: typed values and one boolean; cheap enough for millions of rows.
            conn.execute(
                f"CREATE OR REPLACE TEMP TABLE _checked AS WITH {keyed} "
                f"SELECT _row_number, {columns}, ({any_failure}) AS _failed FROM keyed"
            )
            conn.execute(
                f"INSERT INTO {self.valid} SELECT {columns}, ?, ?, _row_number, ? FROM _checked WHERE NOT _failed",
                [extract.file, extract.extract_date, file_order],
            )
            failed = conn.execute("SELECT count(*) FROM _checked WHERE _failed").fetchall()[0][0]
            if failed:
                self._quarantine_rows(extract, keyed, failures, header)
            self.report.rows_quarantined += failed
        finally:
            conn.unregister("_text")
            conn.execute("DROP TABLE IF EXISTS _checked")

    def _quarantine_rows(self, extract: Extract, keyed: str, failures: list[tuple[str, str, str]],
                         header: list[str]) -> None:
        """Pass 2, failed rows only: every reason, with the raw record as received."""
        failure_list = ", ".join(
            f"CASE WHEN {condition} THEN {{'column': {literal(column) if column else 'NULL'}, 'reason': {reason}}} END"
            for column, condition, reason in failures
        )
        self.conn.execute(
            f"""
            INSERT INTO raw.quarantine
            WITH {keyed},
                 listed AS (SELECT _row_number, unnest(list_filter([{failure_list}], lambda f: f IS NOT NULL))
                                AS failure
                            FROM keyed WHERE _row_number IN (SELECT _row_number FROM _checked WHERE _failed))
            SELECT ?, ?, _row_number, listed.failure.column, listed.failure.reason, {_json_object(header)}, ?
            FROM listed JOIN _text USING (_row_number)
            ORDER BY _row_number, listed.failure.column
            """,
            [self.source.name, extract.file, self.detected_at],
        )
        pk = ", ".join(quote(c) for c in self.source.primary_key)
        self.conn.execute(
            f"INSERT INTO {self.rejected} SELECT {pk}, ?, _row_number FROM _checked WHERE _failed", [extract.file]
        )

    def finish(self) -> None:
        """Upsert: per key the valid row of the latest file wins; note where a rejected newer key fell back."""
        source, conn = self.source, self.conn
        pk = ", ".join(quote(c) for c in source.primary_key)
        columns = ", ".join(quote(c) for c in source.columns)
        # Keys are unique within a file, so with one file read there is nothing to upsert.
        latest_only = (
            f" QUALIFY row_number() OVER (PARTITION BY {pk} ORDER BY _file_order DESC) = 1"
            if self.report.files_read > 1 else ""
        )
        conn.execute(
            f"CREATE OR REPLACE TABLE raw.{quote(source.name)} AS SELECT {columns}, _file, _extract_date, _row_number "
            f"FROM {self.valid}{latest_only}"
        )
        join = " AND ".join(f"k.{quote(c)} = t.{quote(c)}" for c in source.primary_key)
        conn.execute(
            f"""
            UPDATE raw.quarantine AS q
            SET reason = q.reason || '; the valid version of this key from ' || s.kept_file || ' stands'
            FROM (SELECT k.file, k.row_number, t._file AS kept_file
                  FROM {self.rejected} AS k JOIN raw.{quote(source.name)} AS t ON {join}) AS s
            WHERE q.source = ? AND q.file = s.file AND q.row_number = s.row_number
            """,
            [source.name],
        )
        self.report.rows_valid = conn.execute(f"SELECT count(*) FROM raw.{quote(source.name)}").fetchone()[0]
        conn.execute(f"DROP TABLE {self.valid}")
        conn.execute(f"DROP TABLE {self.rejected}")


def _ingest_source(
    conn: duckdb.DuckDBPyConnection, source: SourceContract, landing_dir: Path, as_of: date,
    detected_at: datetime, master_tables: dict[str, str] | None,
) -> SourceReport:
    ingest = _SourceIngest(conn, source, detected_at, master_tables)
    for file_order, extract in enumerate(list_extracts(landing_dir, source.name)):
        if extract.extract_date is None:
            ingest.quarantine_file(extract, "file name does not start with an extract date YYYY-MM-DD")
        elif extract.extract_date > as_of:
            ingest.report.files_skipped += 1  # not yet happened from this run's point of view
        else:
            ingest.add(extract, file_order)
    ingest.finish()
    return ingest.report


def ingest_landing_zone(
    landing_dir: Path,
    as_of: date | None = None,
    progress: Progress | None = None,
    conn: duckdb.DuckDBPyConnection | None = None,
    detected_at: datetime | None = None,
) -> IngestResult:
    """Ingest every source into schema ``raw`` of ``conn`` (an in-memory database if none)."""
    resolved = resolve_as_of(landing_dir, as_of)
    conn = conn or duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
    conn.execute(
        "CREATE OR REPLACE TABLE raw.quarantine (source VARCHAR, file VARCHAR, row_number BIGINT, "
        '"column" VARCHAR, reason VARCHAR, raw_record VARCHAR, detected_at TIMESTAMP)'
    )
    detected_at = detected_at or datetime.now().replace(microsecond=0)
    reports: dict[str, SourceReport] = {}
    master_tables: dict[str, str] | None = None
    for source in SOURCES:
        if master_tables is None and {"skus", "locations"} <= reports.keys():
            conn.execute("CREATE OR REPLACE TEMP TABLE _master_sku AS SELECT DISTINCT sku_id AS id FROM raw.skus")
            conn.execute(
                "CREATE OR REPLACE TEMP TABLE _master_location AS SELECT DISTINCT location_id AS id FROM raw.locations"
            )
            master_tables = {"sku": "_master_sku", "location": "_master_location"}
        report = _ingest_source(conn, source, landing_dir, resolved, detected_at, master_tables)
        reports[source.name] = report
        if progress:
            progress(
                f"{source.name:<20} {report.files_read} file(s), {report.rows_read:>11,} rows read, "
                f"{report.rows_valid:>11,} kept, {report.rows_quarantined:>7,} quarantined"
            )
    return IngestResult(as_of=resolved, reports=reports, conn=conn)


def write_run_metadata(conn: duckdb.DuckDBPyConnection, result: IngestResult, context: RunContext) -> None:
    """Write ``raw.run_context`` (the run parameters every stage reads) and ``raw.ingest_log``."""
    replace_table(
        conn,
        "raw",
        "run_context",
        pd.DataFrame([asdict(context)]),
        {"as_of": "DATE", "horizon_weeks": "INTEGER", "time_fence_weeks": "INTEGER", "run_id": "VARCHAR",
         "started_at": "TIMESTAMP"},
    )
    log = pd.DataFrame([asdict(report) for report in result.reports.values()])
    replace_table(
        conn,
        "raw",
        "ingest_log",
        log,
        {"source": "VARCHAR", "files_read": "INTEGER", "files_skipped": "INTEGER", "latest_extract_date": "DATE",
         "rows_read": "BIGINT", "rows_valid": "BIGINT", "rows_quarantined": "BIGINT"},
    )
