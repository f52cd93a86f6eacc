"""Ingest a landing zone: read every extract, validate, upsert, quarantine.

The rules are those of ``shared/spec/landing-zone.md``: a source's files are
unioned and the latest valid version of each primary key wins (extract date,
then file name in byte order); an invalid row goes to the quarantine with
its source, file, 1-based row number, column and reason, and every valid row
of the same file still flows on; a file that cannot be read, has no extract
date in its name or lacks a contract column is quarantined whole. Each
extract is read once: a run keeps what the last run ingested from the
extracts still there as they were (``soe_assets.ingest.state``).
"""

from __future__ import annotations

from collections.abc import Callable
import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from data_contracts.sources import SOURCES, SourceContract
from data_contracts.sql_rules import (
    DUPLICATE_KEY, CompiledContract, as_received, compile_contract, literal, text_alias,
)
from data_contracts.validation import EDGE_BLANKS, missing_columns
from soe_assets.ingest.landing import (
    EMPTY_ROW_PROBLEM, FIELD_COUNT_PROBLEM, MALFORMED_ROWS, RAW_LINE, READ_PROBLEM, REPLACEMENT_CHARACTER,
    UNNAMED_COLUMN_PREFIX, UNQUOTED_COMMA_HINT, UNQUOTED_VALUE_PROBLEM, Extract, ExtractReader, InvalidUtf8,
    UnreadableFile, blank_line_numbers, ignored_folders, list_extracts, stored_timestamps, stored_typed_columns,
)
from soe_assets.ingest.state import (
    STATE_SCHEMA, FileState, IngestedFile, code_fingerprint, ensure_manifest, master_fingerprint, record_manifest,
    rejected_keys_name, rejected_keys_table, take_manifest, unchanged_files,
)
from soe_assets.warehouse import RunContext, ensure_published_runs, quote, replace_table, table_exists

Progress = Callable[[str], None]
# The data row of each line DuckDB found malformed in the file being loaded (a registered frame).
MALFORMED_ROW_NUMBERS = "_malformed_row_numbers"


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
    rows_read_by_file: dict[str, int] = field(default_factory=dict)  # per file read; not a column of the log
    folders_ignored: list[str] = field(default_factory=list)  # folders inside the source folder: not extracts
    files_kept: int = 0  # extracts the last run ingested as they are now: their rows stand, unread
    reread_because: str = ""  # why the last run's extracts were read again in full, if it ingested any


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


# The longest default freshness limit (master data and the plan): an as_of further past every extract is refused.
LONGEST_DEFAULT_FRESHNESS_DAYS = max(source.default_freshness_days for source in SOURCES)


def resolve_as_of(landing_dir: Path, requested: date | None) -> date:
    """The run's as_of: as requested, else the latest extract date in the landing zone. A requested day
    before every extract has nothing to describe: an error, not a run whose every source is empty."""
    check_landing_zone(landing_dir)
    extracts = [e for s in SOURCES for e in list_extracts(landing_dir, s.name) if e.extract_date]
    dates = [e.extract_date for e in extracts]
    if not dates:
        raise LandingZoneError(f"no extract in {landing_dir} has a name starting with a date YYYY-MM-DD")
    if requested is None:
        return _default_as_of(landing_dir, extracts)
    if requested < min(dates):
        raise LandingZoneError(f"as_of {requested} is before every extract in {landing_dir} (the earliest is dated "
                               f"{min(dates)}, the latest {max(dates)}): there is no data for that day")
    if (requested - max(dates)).days > LONGEST_DEFAULT_FRESHNESS_DAYS:
        # a mistyped year would publish a set every later run takes for the newer one (a backfill)
        raise LandingZoneError(f"as_of {requested} is {(requested - max(dates)).days} days after the latest extract "
                               f"in {landing_dir} ({max(dates)}): every source would be stale, even master data "
                               f"and the plan ({LONGEST_DEFAULT_FRESHNESS_DAYS} days); is the date mistyped?")
    return requested


# An extract may be dated a day ahead of this machine's clock (taken in a time zone east of it), not more.
CLOCK_SLACK_DAYS = 1


def _default_as_of(landing_dir: Path, extracts: list[Extract]) -> date:
    """The latest extract date, unless it looks like a mistyped file name, which would date the run and publish
    a set every later run takes for the newer one: a day still to come on this machine's clock (an extract
    records what has happened), or a date held by a minority of the sources and ahead of every other source's
    newest extract by more than any source may be stale."""
    newest: dict[str, date] = {}
    for extract in extracts:
        newest[extract.source] = max(newest.get(extract.source, extract.extract_date), extract.extract_date)
    latest = max(newest.values())
    named = sorted(f"{e.source}/{e.file}" for e in extracts if e.extract_date == latest)
    files = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
    advice = "is its date mistyped? Rename the file, or pass --as-of to choose the run's day"
    today = datetime.now(timezone.utc).date()
    if (latest - today).days > CLOCK_SLACK_DAYS:
        raise LandingZoneError(f"the latest extract date in {landing_dir}, {latest} ({files}), is after today "
                               f"({today}): an extract records what has happened; {advice}")
    behind = [day for day in newest.values() if day < latest]
    if behind and len(behind) > len(newest) / 2 and (latest - max(behind)).days > LONGEST_DEFAULT_FRESHNESS_DAYS:
        raise LandingZoneError(f"the latest extract date in {landing_dir}, {latest} ({files}), is "
                               f"{(latest - max(behind)).days} days after every other source's newest extract "
                               f"({max(behind)}): {advice}")
    return latest


def check_landing_zone(landing_dir: Path) -> None:
    present = readable_source_folders(landing_dir)
    missing = [s.name for s in SOURCES if s.required and s.name not in present]
    if missing:
        raise LandingZoneError(
            f"landing zone {landing_dir} lacks required source folder(s): {', '.join(missing)} "
            "(see the landing-zone layout in the README)"
        )


def readable_source_folders(landing_dir: Path) -> set[str]:
    """The sources with a folder in the landing zone; a LandingZoneError if the zone is no folder, or this user
    cannot read it or one of those folders."""
    if not landing_dir.is_dir():
        raise LandingZoneError(f"landing zone {landing_dir} does not exist or is not a folder")
    _refuse_unlistable(landing_dir, "the landing zone")
    present = {s.name for s in SOURCES if (landing_dir / s.name).is_dir()}
    for name in sorted(present):
        _refuse_unlistable(landing_dir / name, f"the {name} folder of the landing zone")
    return present


def _refuse_unlistable(folder: Path, what: str) -> None:
    """A folder this user cannot list (another system's user wrote it with umask 077): its extracts cannot even be
    named, so none can be quarantined; the user must fix the permissions."""
    try:
        with os.scandir(folder) as entries:
            first = next(entries, None)
            if first is not None:
                first.stat()  # listing needs read permission, reaching an entry search (x) permission
    except PermissionError:
        raise LandingZoneError(f"cannot read {what} {folder}: permission denied") from None


def _json_object(columns: list[str], zones: dict[str, str]) -> str:
    """SQL building the raw record (text as received) of a row of ``_text``; a zoned timestamp of a Parquet file
    (``zones``: column -> its zone) on its own clock."""
    pairs = ", ".join(f"{literal(c)}, {as_received(quote(c), zones[c]) if c in zones else quote(c)}" for c in columns)
    return f"CAST(json_object({pairs}) AS VARCHAR)"


READ_FAILURE = ("", f"{quote(READ_PROBLEM)} <> ''", quote(READ_PROBLEM))
READ_FINE = f"{quote(READ_PROBLEM)} = ''"


def _blank(text: str) -> str:
    """SQL: ``text`` (VARCHAR) is NULL or holds nothing but blanks, as a contract value is blank."""
    return f"coalesce(trim({text}, {literal(EDGE_BLANKS)}) = '', true)"


def _line_holds_no_value(line: str) -> str:
    """SQL: a CSV line as received holds only blanks and commas, so every field it splits into is blank."""
    return _blank(f"replace({line}, ',', '')")


def _garbled(column: str) -> str:
    """SQL: the lenient read replaced bytes of the column's value that are not UTF-8 (by U+FFFD)."""
    return f"coalesce(contains({text_alias(column)}, {literal(REPLACEMENT_CHARACTER)}), false)"


@dataclass
class _LoadedFile:
    """An extract as the load read it: what quarantining its failed rows needs once every file is loaded."""

    extract: Extract
    lenient: bool
    rules: CompiledContract
    header: list[str]  # the record's columns as received
    zones: dict[str, str]  # the columns the file stores as zoned timestamps, with their zone
    csv: bool  # the reader's verdict on the file's format (read from its first bytes where its name says none)
    malformed_rows: int = 0  # rows skipped by the read as malformed (quarantined as the file loaded)

    @property
    def carried(self) -> list[str]:
        """The columns the read adds to the record: a lenient read's ``READ_PROBLEM`` and ``RAW_LINE``."""
        return [READ_PROBLEM, RAW_LINE] if self.lenient else []

    @property
    def _read_failures(self) -> list[tuple[str, str, str]]:
        """A row the read could not split as the header does; a contract value holding bytes that are not UTF-8
        (an extra column's are ignored with the column: an accent in a free-text column costs no row)."""
        if not self.lenient:
            return []
        return [READ_FAILURE] + [
            (column, f"({READ_FINE} AND {_garbled(column)})", literal(f"{column} holds bytes that are not valid UTF-8"))
            for column in self.rules.text_columns
        ]

    @property
    def failures(self) -> list[tuple[str, str, str]]:
        """Every reason a row can fail; a row the read could not split fails for that alone (a short row is
        padded), and a value whose bytes were replaced is judged for that alone (not as an unknown id)."""
        if not self.lenient:
            return self.rules.failures
        judged = [(column, f"({READ_FINE} AND NOT {_garbled(column)} AND {condition})"
                   if column in self.rules.text_columns else f"({READ_FINE} AND {condition})", reason)
                  for column, condition, reason in self.rules.failures]
        return judged + self._read_failures

    @property
    def row_failed(self) -> str:
        """SQL over ``layers``: the row fails a rule decidable row by row."""
        rules = self.rules.row_failures + self._read_failures
        return " OR ".join(f"coalesce({condition}, false)" for _, condition, _ in rules)

    def layers(self, relation: str, numbered: bool = True) -> str:
        return self.rules.layers(relation, self.carried, numbered)

    @property
    def record(self) -> str:
        """SQL over the file's rows: the raw record of a row (one the lenient read could not split: its line, as
        DuckDB's reader gives a malformed row's)."""
        fields = _json_object(self.header, self.zones)
        return f"CASE WHEN {READ_FINE} THEN {fields} ELSE {quote(RAW_LINE)} END" if self.lenient else fields

    @property
    def holds_no_value(self) -> str:
        """SQL over the file's rows: every field of the row is blank (one the lenient read could not split: its
        line holds only blanks and commas, as ``_quarantine_malformed`` judges DuckDB's malformed lines)."""
        fields = " AND ".join(_blank(f"CAST({quote(column)} AS VARCHAR)") for column in self.header)
        return (f"CASE WHEN {READ_FINE} THEN {fields} ELSE {_line_holds_no_value(quote(RAW_LINE))} END"
                if self.lenient else fields)


def _header_hint(header: list[str], missing: list[str]) -> str:
    """Why a header may lack contract columns that are there in another form: another delimiter, other case, a
    first line of spaces taken for the header."""
    if all(name.startswith(UNNAMED_COLUMN_PREFIX) for name in header):
        return " (the header line holds no names: the first line that is not empty is the header)"
    if len(header) <= 2 and any(delimiter in "".join(header) for delimiter in ";\t|"):
        return " (is the delimiter a comma?)"
    by_case = {name.lower(): name for name in header}
    cased = [f"{by_case[column]} for {column}" for column in missing if column in by_case]
    return f" (column names are case-sensitive: the header has {', '.join(cased)})" if cased else ""


def _key_struct(parts: list[str]) -> str:
    """SQL: one STRUCT value of a key's parts, for matching whole keys with ``IN``.

    Struct values compare NULL parts as equal, so a key with a blank part finds
    its rows too. A struct literal rather than ``ROW(...)``: ``ROW(x) IN (...)``
    of a one-part key binds as the bare value against a one-field tuple, which
    DuckDB refuses.
    """
    return "{" + ", ".join(f"'k{i}': {part}" for i, part in enumerate(parts)) + "}"


def _repeated_hashes(table: str) -> str:
    """SQL: the key hashes of ``table`` equal to their predecessor in sorted order (keys that may repeat;
    sorting the hashes takes less than half the time of grouping them, see ``_flag_duplicate_keys``)."""
    return (f"SELECT _key_hash FROM (SELECT _key_hash, lag(_key_hash) OVER (ORDER BY _key_hash) AS previous "
            f"FROM {table}) WHERE _key_hash = previous")


class _SourceIngest:
    """Validates, upserts and quarantines one source inside the DuckDB connection.

    Every row of every extract is written once, typed, into a loading table with
    its file order and a ``_failed`` flag; ``finish`` finds the repeated keys of
    all files in one pass, quarantines the failed rows, deletes them and the
    superseded rows (few) and renames the table ``raw.<source>``. Writing the rows once
    is what keeps ingest cheap: copying millions of rows between tables costs
    more than validating them.

    The loading table stores no row numbers, and its rows are in no particular
    order: numbering rows as they are read would run DuckDB's CSV reader on one
    thread, and keeping the file's order costs the insert 10-20% on large files.
    The few files with rejected rows are read again, numbered, to find them
    (``_quarantine_failed``).

    Only the extracts after those the last run ingested, unchanged since, are
    loaded (``begin``); their valid rows are then upserted into the kept rows
    of ``raw.<source>`` (``_merge_into_kept_rows``).
    """

    def __init__(self, conn: duckdb.DuckDBPyConnection, source: SourceContract, detected_at: datetime,
                 master_tables: dict[str, str] | None, files: list[str]) -> None:
        self.conn = conn
        self.source = source
        self.detected_at = detected_at
        self.master_tables = master_tables
        self.report = SourceReport(source.name)
        self.loaded: dict[int, _LoadedFile] = {}
        self.loading = f"raw.{quote('_loading_' + source.name)}"
        self.rejected = rejected_keys_table(source.name)
        self.files = files
        self.considered: list[FileState] = []  # the extracts this run considered, in order (``begin``)
        self.kept: list[IngestedFile] = []  # the last run's extracts whose rows stand (``begin``)
        self.kept_loaded: list[Extract] = []  # those of them whose valid rows took part in the upsert
        self.quarantined_by_file: dict[str, int] = {}
        self.key = ", ".join(quote(c) for c in source.primary_key)
        # The data rows of each extract that its read skipped as malformed (``_load``).
        self.malformed = f"_malformed_{source.name}"
        self._blank_lines: dict[Path, np.ndarray] = {}  # per CSV file read: see ``blank_lines``
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {self.malformed} (_file_order INTEGER, row_number BIGINT)")
        typed = ", ".join(f"{quote(c)} {t}" for c, t in source.sql_columns.items())
        # The file names as an ENUM of the source's files: a VARCHAR repeated on every row cost as much to
        # write as a data column (0.5 s per 24M rows).
        file_type = f"ENUM({', '.join(literal(f) for f in files)})" if files else "VARCHAR"
        conn.execute(
            f"CREATE OR REPLACE TABLE {self.loading} ({typed}, _file {file_type}, _extract_date DATE, "
            "_file_order INTEGER, _failed BOOLEAN, _key_hash UBIGINT)"
        )

    def begin(self, considered: list[tuple[int, Extract]], validated_with: str, reread: bool) -> int:
        """Keep the rows and quarantine of the leading extracts the last run ingested as they are now
        (``state.unchanged_files``), unless ``reread``; start afresh otherwise. Returns how many are kept."""
        name, conn = self.source.name, self.conn
        self.considered = [FileState.of(extract, file_order) for file_order, extract in considered]
        previous, validated = take_manifest(conn, name)
        kept, self.report.reread_because = unchanged_files(previous, validated, self.considered, validated_with)
        if not previous and self._ingested_before():
            self.report.reread_because = ("the warehouse has no record of what the last run ingested (it stopped "
                                          "during ingest, or an older soe built the warehouse)")
        if reread and kept:
            kept, self.report.reread_because = 0, "a full read was asked for"
        if kept and not (table_exists(conn, "raw", name) and table_exists(conn, STATE_SCHEMA, rejected_keys_name(name))):
            kept, self.report.reread_because = 0, "the warehouse lacks the rows the last run ingested"
        self.kept = previous[:kept]
        self.kept_loaded = [extract for ingested, (_, extract) in zip(self.kept, considered) if ingested.loaded]
        for ingested, (_, extract) in zip(self.kept, considered):
            if ingested.rows_read is not None:
                self._count_read(extract, ingested.rows_read)
            self._count_quarantined(extract.file, ingested.rows_quarantined)
        self.report.files_kept = kept
        if not kept:
            conn.execute("DELETE FROM raw.quarantine WHERE source = ?", [name])
            pk = ", ".join(f"CAST(NULL AS {self.source.sql_columns[c]}) AS {quote(c)}" for c in self.source.primary_key)
            conn.execute(
                f"CREATE OR REPLACE TABLE {self.rejected} AS SELECT {pk}, CAST(NULL AS VARCHAR) AS file, "
                "CAST(NULL AS BIGINT) AS row_number LIMIT 0"
            )
        return kept

    def _ingested_before(self) -> bool:
        """Whether the warehouse holds rows or quarantine of this source from an earlier run."""
        name = self.source.name
        quarantined = self.conn.execute("SELECT count(*) FROM raw.quarantine WHERE source = ?", [name]).fetchall()
        return quarantined[0][0] > 0 or (table_exists(self.conn, "raw", name) and self.conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM raw.{quote(name)} LIMIT 1)").fetchall()[0][0] > 0)

    def _count_quarantined(self, file: str, rows: int) -> None:
        self.quarantined_by_file[file] = self.quarantined_by_file.get(file, 0) + rows
        self.report.rows_quarantined += rows

    def ingested(self) -> list[IngestedFile]:
        """What this run counted for each extract it considered (the next run's ``begin`` reads it)."""
        loaded = {extract.file for extract in self.kept_loaded} | {file.extract.file for file in self.loaded.values()}
        return [IngestedFile(state, self.report.rows_read_by_file.get(state.file),
                             self.quarantined_by_file.get(state.file, 0), state.file in loaded)
                for state in self.considered]

    def quarantine_file(self, extract: Extract, reason: str, column: str | None = None, raw: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO raw.quarantine VALUES (?, ?, NULL, ?, ?, ?, ?)",
            [self.source.name, extract.file, column, reason, raw, self.detected_at],
        )

    def _open(self, extract: Extract, lenient: bool) -> ExtractReader | None:
        try:
            try:
                return ExtractReader(extract, lenient=lenient)
            except InvalidUtf8:
                return ExtractReader(extract, lenient=True)  # which may find the file unreadable too
        except UnreadableFile as error:
            self.quarantine_file(extract, str(error))
            return None

    def _run_over(self, native: str, sql: str) -> int:
        """Run ``sql`` over DuckDB's own read ``native`` as ``_text``; the count in its result's first column."""
        self.conn.execute(f"CREATE OR REPLACE TEMP VIEW _text AS {native}")
        try:
            return self.conn.execute(sql).fetchall()[0][0]
        finally:
            self.conn.execute("DROP VIEW IF EXISTS _text")

    def _run_over_arrow(self, reader: ExtractReader, sql: str) -> int:
        """Run ``sql`` over the extract streamed through Arrow as ``_text``; a read error met there is raised
        as the extract's own error, any other error as itself."""
        self.conn.register("_text", reader.batches())
        try:
            return self.conn.execute(sql).fetchall()[0][0]
        except duckdb.Error:
            if reader.error is not None:
                raise reader.error from None
            raise
        finally:
            self.conn.unregister("_text")

    def _scan(self, reader: ExtractReader, sql: str, numbered: bool, skip_malformed: bool = False) -> int:
        """Run ``sql`` over a fresh read of the extract as ``_text`` (with ``_row_number`` when ``numbered``);
        returns the count in the first column of its result.

        DuckDB reads the file natively where it can. Where that scan fails, the
        file is streamed through Arrow and ``sql`` runs again: a failed statement
        has changed nothing, and Arrow's verdict stands.
        """
        native = reader.native_sql(numbered, skip_malformed)
        if native:
            try:
                return self._run_over(native, sql)
            except duckdb.InterruptException:
                raise
            except duckdb.Error:
                pass  # read again through Arrow, below
        return self._run_over_arrow(reader, sql)

    def _load(self, reader: ExtractReader, insert: str, file_order: int) -> tuple[int, int]:
        """Run the load ``insert`` over the extract; returns (rows loaded, malformed rows quarantined).

        DuckDB's strict read first. A CSV it refuses is loaded again without
        its malformed rows, each quarantined with its line as received, so the
        rest of the file flows on; a file that holds bytes that are not UTF-8
        raises ``InvalidUtf8`` instead (the lenient read names those rows).
        Anything else DuckDB refuses is read by Arrow, whose verdict stands.
        """
        strict = reader.native_sql(numbered=False)
        if strict:
            try:
                return self._run_over(strict, insert), 0
            except duckdb.InterruptException:
                raise
            except duckdb.Error:
                pass
        skipping = reader.native_sql(numbered=False, skip_malformed=True)
        if skipping:
            self.conn.begin()
            try:
                loaded = self._run_over(skipping, insert)
                malformed = self._quarantine_malformed(reader, file_order)
            except Exception as error:
                self.conn.rollback()
                if isinstance(error, duckdb.InterruptException) or not isinstance(error, duckdb.Error):
                    raise  # InvalidUtf8 (the caller reads the file leniently), or a failure of its own
            else:
                self.conn.commit()
                return loaded, malformed
            finally:
                self.conn.execute(f"DROP TABLE IF EXISTS {MALFORMED_ROWS}")
                self.conn.execute(f"DROP TABLE IF EXISTS {MALFORMED_ROWS}_scans")
        return self._run_over_arrow(reader, insert), 0

    def _quarantine_malformed(self, reader: ExtractReader, file_order: int) -> int:
        """The rows the last skipping read found malformed (``MALFORMED_ROWS``) to the quarantine, each with its
        line as received; their numbers to ``self.malformed``. Raises ``InvalidUtf8`` when a row is refused
        for its encoding. DuckDB numbers lines, blank ones included; like every numbering while the source
        loads, these count rows read (``_count_blank_lines_as_rows`` counts the blank lines back in)."""
        if self.conn.execute(f"SELECT count(*) FROM {MALFORMED_ROWS} WHERE error_type = 'INVALID ENCODING'").fetchall()[0][0]:
            raise InvalidUtf8("the file holds bytes that are not valid UTF-8")
        lines = self.conn.execute(f"SELECT DISTINCT line FROM {MALFORMED_ROWS}").fetchnumpy()["line"].astype("int64")
        from_header = lines - reader.blank_lines_before_header  # DuckDB counts the file's lines from its first
        blanks_before = np.searchsorted(self.blank_lines(reader.extract.path), from_header)
        self.conn.register(MALFORMED_ROW_NUMBERS,
                           pd.DataFrame({"line": lines, "row_number": from_header - 1 - blanks_before}))
        width = len(reader.header_names)
        names = "MAP {" + ", ".join(f"'c{position}': {literal(name)}"
                                    for position, name in enumerate(reader.header_names)) + "}"
        field_count = FIELD_COUNT_PROBLEM.format(found="{}", expected=width)
        # One row per malformed line. DuckDB lists a row lacking fields once per missing column (the
        # first missing column's position is the number of fields found); a row with too many, once. A line of
        # blanks and commas holds no value: an empty row, for the row as a whole.
        self.conn.execute(
            f"""
            INSERT INTO raw.quarantine
            WITH lines AS (
                SELECT line, any_value(error_type) AS error_type, any_value(error_message) AS error_message,
                       max(TRY_CAST(regexp_extract(error_message, 'Found: (\\d+)', 1) AS INTEGER)) AS fields_found,
                       -- the line breaks of the blank lines before it and of a CRLF row's line break
                       trim(any_value(csv_line), chr(13) || chr(10)) AS csv_line,
                       min(CAST(substr(column_name, 2) AS INTEGER)) AS position
                FROM {MALFORMED_ROWS} GROUP BY line
            )
            SELECT ?, ?, numbers.row_number, CASE WHEN NOT no_value THEN {names}['c' || position] END,
                   CASE WHEN no_value THEN {literal(EMPTY_ROW_PROBLEM)} ELSE CASE error_type
                       WHEN 'MISSING COLUMNS' THEN format({literal(field_count)}, position)
                       WHEN 'TOO MANY COLUMNS'
                           THEN format({literal(field_count)}, fields_found)
                                || {literal(UNQUOTED_COMMA_HINT)}
                       WHEN 'UNQUOTED VALUE'
                           THEN {literal(UNQUOTED_VALUE_PROBLEM)}
                       ELSE 'malformed CSV row: ' || error_message END END,
                   csv_line, ?
            FROM (SELECT *, {_line_holds_no_value("csv_line")} AS no_value FROM lines)
                JOIN {MALFORMED_ROW_NUMBERS} AS numbers USING (line) ORDER BY line
            """,
            [self.source.name, reader.extract.file, self.detected_at],
        )
        malformed = self.conn.execute(
            f"INSERT INTO {self.malformed} SELECT {file_order}, row_number FROM {MALFORMED_ROW_NUMBERS}").fetchall()[0][0]
        self.conn.unregister(MALFORMED_ROW_NUMBERS)
        return malformed

    def rules(self, reader: ExtractReader) -> CompiledContract:
        """The contract compiled for one extract (its date, the types its file stores)."""
        return compile_contract(
            self.source, extract_date=reader.extract.extract_date.isoformat(), master_tables=self.master_tables,
            stored_typed=stored_typed_columns(reader.schema, self.source.columns),
            stored_timestamps=stored_timestamps(reader.schema),
        )

    def add(self, extract: Extract, file_order: int, lenient: bool = False) -> None:
        source = self.source
        reader = self._open(extract, lenient)
        if reader is None:
            return
        twice = [name for name in reader.repeated_names if name in source.columns]
        if twice:
            self.quarantine_file(extract, f"the header names a column twice: {', '.join(twice)}")
            return
        nested = [field for field in reader.schema if field.name in source.columns and pa.types.is_nested(field.type)]
        if nested:  # every value of the column is a list, struct or map: no row of the file can be read
            typed = ", ".join(f"{field.name} ({field.type})" for field in nested)
            self.quarantine_file(extract, f"column(s) stored as nested values, not one value per row: {typed}",
                                 column=", ".join(field.name for field in nested))
            return
        missing = missing_columns(source, reader.column_names)
        if missing:
            self._quarantine_incomplete(reader, missing)
            return
        loaded = _LoadedFile(extract, reader.lenient, self.rules(reader),
                             header=[c for c in reader.column_names if c not in (READ_PROBLEM, RAW_LINE)],
                             zones={c: zone for c, zone in stored_timestamps(reader.schema).items() if zone},
                             csv=reader.is_csv)
        layers = loaded.layers("_text", numbered=False)
        columns = ", ".join(quote(c) for c in source.columns)
        insert = (f"INSERT INTO {self.loading} WITH {layers} "
                  f"SELECT {columns}, {literal(extract.file)}, DATE {literal(extract.extract_date.isoformat())}, "
                  f"{file_order}, ({loaded.row_failed}), hash({self.key}) FROM typed")
        try:
            # Every row, read in parallel: typed values and one boolean; cheap enough for millions of rows.
            rows, loaded.malformed_rows = self._load(reader, insert, file_order)
        except InvalidUtf8:  # a failed INSERT loads nothing: read the file again, leniently
            self.add(extract, file_order, lenient=True)
            return
        except UnreadableFile as error:
            self.quarantine_file(extract, str(error))
            return
        self._count_read(extract, rows + loaded.malformed_rows)
        self._count_quarantined(extract.file, loaded.malformed_rows)
        self.loaded[file_order] = loaded

    def _quarantine_failed(self, file_order: int) -> None:
        """The extract's failed rows to the quarantine, numbered and as received.

        The loading table knows which rows failed, with their typed keys, but
        not where they stand in the file; so the file is read once more,
        numbered, and the rows whose key is one of its failed keys are picked.
        Those are exactly the failed rows: a row sharing a failed row's key in
        the same file is a copy of that key, and every copy of a duplicated key
        fails (a key with a blank or unparseable part fails itself). Numbering a
        CSV reads it on one thread, so that read types only the key columns.
        """
        loaded = self.loaded[file_order]
        stored_key = _key_struct([quote(k) for k in self.source.primary_key])
        self.conn.execute(f"CREATE OR REPLACE TEMP TABLE _failed_keys AS SELECT DISTINCT {stored_key} AS key "
                          f"FROM {self.loading} WHERE _failed AND _file_order = {file_order}")
        typed_key = _key_struct([loaded.rules.typed_value(k) for k in self.source.primary_key])
        self._scan(ExtractReader(loaded.extract, lenient=loaded.lenient),
                   f"CREATE OR REPLACE TEMP TABLE _failed_text AS SELECT * FROM _text "
                   f"WHERE {typed_key} IN (SELECT key FROM _failed_keys)", numbered=True,
                   skip_malformed=loaded.malformed_rows > 0)
        if loaded.malformed_rows:
            self.conn.execute(f"DROP TABLE IF EXISTS {MALFORMED_ROWS}")
            self.conn.execute(f"DROP TABLE IF EXISTS {MALFORMED_ROWS}_scans")
            self._number_past_malformed_rows(file_order)
        self._quarantine_rows(loaded, file_order)
        self.conn.execute(f"INSERT INTO {self.rejected} WITH {loaded.layers('_failed_text')} "
                          f"SELECT {self.key}, ?, _row_number FROM typed", [loaded.extract.file])
        self.conn.execute("DROP TABLE _failed_text")
        self.conn.execute("DROP TABLE _failed_keys")

    def _number_past_malformed_rows(self, file_order: int) -> None:
        """Turn ``_failed_text``'s numbers among the rows read into the file's data rows: the k-th row read
        follows every malformed row with fewer than k rows read before it."""
        self.conn.execute(
            f"""
            UPDATE _failed_text AS f SET _row_number = f._row_number + (
                SELECT count(*) FROM (SELECT row_number - row_number() OVER (ORDER BY row_number) AS read_before
                                      FROM {self.malformed} WHERE _file_order = {file_order})
                WHERE read_before < f._row_number)
            """
        )

    def _quarantine_incomplete(self, reader: ExtractReader, missing: list[str]) -> None:
        """A file lacking a contract column is quarantined whole; its rows still count as read."""
        header = reader.column_names
        self.quarantine_file(
            reader.extract,
            f"missing required column(s) {', '.join(missing)}{_header_hint(header, missing)}: "
            "the whole file is quarantined",
            column=", ".join(missing),
            raw=json.dumps(header),
        )
        try:
            rows = sum(batch.num_rows for batch in reader.batches())
        except UnreadableFile:
            rows = 0
        self._count_read(reader.extract, rows)
        self._count_quarantined(reader.extract.file, rows)

    def _count_read(self, extract: Extract, rows: int) -> None:
        self.report.rows_read_by_file[extract.file] = rows
        self.report.files_read += 1
        self.report.latest_extract_date = max(filter(None, [self.report.latest_extract_date, extract.extract_date]))
        self.report.rows_read += rows

    def _same_key(self, left: str, right: str, compare: str = "=") -> str:
        """SQL matching rows of aliases ``left`` and ``right`` on the primary key."""
        return " AND ".join(f"{left}.{quote(k)} {compare} {right}.{quote(k)}" for k in self.source.primary_key)

    def _flag_duplicate_keys(self) -> None:
        """Every copy of a key repeated within one extract fails; keys repeated across extracts are kept for the upsert.

        The key hashes, stored as each row was loaded, are sorted once: a hash
        equal to its predecessor is a key that may occur more than once in any
        file (one integer column instead of the key's text; sorting 72M hashes
        takes less than half the time of grouping them, whose table of 72M
        groups outgrows the caches). Only those rows, in ``_repeated``, are
        grouped by the key itself: per file for the duplicates (``_duplicate_keys``),
        across files for the upsert (``finish``).
        """
        self.conn.execute(
            f"CREATE OR REPLACE TEMP TABLE _repeated AS SELECT {self.key}, _file_order, _failed FROM {self.loading} "
            f"WHERE _key_hash IN ({_repeated_hashes(self.loading)})"
        )
        # A key with a blank or unparseable part fails for that alone: two such rows are no copies of one key.
        complete = " AND ".join(f"{quote(c)} IS NOT NULL" for c in self.source.primary_key)
        self.conn.execute(
            f"CREATE OR REPLACE TEMP TABLE _duplicate_keys AS SELECT {self.key}, _file_order FROM _repeated "
            f"WHERE {complete} GROUP BY ALL HAVING count(*) > 1"
        )
        if self.conn.execute("SELECT count(*) FROM _duplicate_keys").fetchall()[0][0]:
            for table in (self.loading, "_repeated"):
                self.conn.execute(
                    f"UPDATE {table} AS c SET _failed = true FROM _duplicate_keys AS d "
                    f"WHERE c._file_order = d._file_order AND {self._same_key('c', 'd', 'IS NOT DISTINCT FROM')}"
                )

    def _quarantine_rows(self, loaded: _LoadedFile, file_order: int) -> None:
        """Failed rows only (``_failed_text``): every reason, with the raw record as received; a row that holds no
        value once, for the row as a whole (not once per required column, blank like every other)."""
        failure_list = ", ".join(
            f"CASE WHEN {condition} THEN {{'column': {literal(column) if column else 'NULL'}, 'reason': {reason}}} END"
            for column, condition, reason in loaded.failures
        )
        empty_row = f"[{{'column': CAST(NULL AS VARCHAR), 'reason': {literal(EMPTY_ROW_PROBLEM)}}}]"
        same_key = self._same_key("t", "d", "IS NOT DISTINCT FROM")
        self.conn.execute(
            f"""
            INSERT INTO raw.quarantine
            WITH {loaded.layers("_failed_text")},
                 flagged AS (SELECT t.*, EXISTS (SELECT 1 FROM _duplicate_keys AS d
                                                 WHERE d._file_order = {file_order} AND {same_key})
                                 AS {DUPLICATE_KEY} FROM typed AS t),
                 empty AS (SELECT _row_number FROM _failed_text WHERE {loaded.holds_no_value}),
                 listed AS (SELECT _row_number,
                                   unnest(CASE WHEN _row_number IN (SELECT _row_number FROM empty) THEN {empty_row}
                                          ELSE list_filter([{failure_list}], lambda f: f IS NOT NULL) END) AS failure
                            FROM flagged)
            SELECT ?, ?, _row_number, listed.failure.column, listed.failure.reason, {loaded.record}, ?
            FROM listed JOIN _failed_text USING (_row_number)
            ORDER BY _row_number, listed.failure.column
            """,
            [self.source.name, loaded.extract.file, self.detected_at],
        )

    def blank_lines(self, path: Path) -> np.ndarray:
        """The CSV's blank lines (``blank_line_numbers``), read once: numbering its malformed rows and then its
        quarantined rows both need them, and the scan reads the whole file."""
        if path not in self._blank_lines:
            self._blank_lines[path] = blank_line_numbers(path)
        return self._blank_lines[path]

    def _count_blank_lines_as_rows(self) -> None:
        """Number the quarantined rows of CSV files with blank lines as an editor shows them: row N on the file's
        line N + 1 (blank lines count as rows; readers skip them, and every numbering above counts rows read).
        The rejected keys' rows are numbered alike: a later run that keeps the file finds its rows by them."""
        files = self.conn.execute(
            "SELECT DISTINCT file FROM raw.quarantine WHERE source = ? AND row_number IS NOT NULL", [self.source.name]
        ).fetchall()
        csv_paths = {loaded.extract.file: loaded.extract.path for loaded in self.loaded.values() if loaded.csv}
        for (file,) in files:
            path = csv_paths.get(file)
            blank_lines = self.blank_lines(path) if path is not None else []
            if not len(blank_lines):
                continue
            rows = self.conn.execute(
                "SELECT DISTINCT row_number FROM raw.quarantine WHERE source = ? AND file = ? AND row_number IS NOT NULL",
                [self.source.name, file]).fetchnumpy()["row_number"].astype("int64")
            self.conn.register("_renumbered", pd.DataFrame(
                {"row_read": rows, "row_number": rows_counting_blank_lines(rows, blank_lines)}))
            try:
                self.conn.execute(
                    "UPDATE raw.quarantine AS q SET row_number = r.row_number FROM _renumbered AS r "
                    "WHERE q.source = ? AND q.file = ? AND q.row_number = r.row_read", [self.source.name, file])
                self.conn.execute(
                    f"UPDATE {self.rejected} AS k SET row_number = r.row_number FROM _renumbered AS r "
                    "WHERE k.file = ? AND k.row_number = r.row_read", [file])
            finally:
                self.conn.unregister("_renumbered")

    def _say_what_stands_for_rejected_files(self) -> None:
        """A file rejected whole names the extract the source's rows now come from (or says there is none): the
        planner reading the quarantine learns whether the source's data is missing or merely not updated."""
        loaded = self.kept_loaded + [loaded.extract for loaded in self.loaded.values()]
        self.conn.execute(
            # a reason quoting a reader's message may end in a full stop: the sentence goes on; a file kept from the
            # last run has the last run's note, which this run's files may have made stale
            "UPDATE raw.quarantine SET reason = rtrim(regexp_replace(reason, ?, ''), '.') || ? "
            "WHERE source = ? AND row_number IS NULL",
            [WHAT_STANDS_NOTE, _what_stands(loaded), self.source.name])

    def finish(self) -> None:
        """Quarantine the failed rows, then upsert: per key the valid row of the latest file wins; note where a
        rejected newer key fell back."""
        source, conn = self.source, self.conn
        self._flag_duplicate_keys()
        failed_per_file = conn.execute(
            f"SELECT _file_order, count(*) FROM {self.loading} WHERE _failed GROUP BY 1 ORDER BY 1"
        ).fetchall()
        for file_order, failed in failed_per_file:
            self._quarantine_failed(file_order)
            self._count_quarantined(self.loaded[file_order].extract.file, failed)
        conn.execute(f"DELETE FROM {self.loading} WHERE _failed")
        # Valid keys are unique within a file now: a valid key repeated is one seen in several files.
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE _superseded AS "
            f"SELECT {self.key}, max(_file_order) AS _kept_order FROM _repeated WHERE NOT _failed "
            "GROUP BY ALL HAVING count(*) > 1"
        )
        if conn.execute("SELECT count(*) FROM _superseded").fetchall()[0][0]:
            conn.execute(
                f"DELETE FROM {self.loading} AS v USING _superseded AS s "
                f"WHERE {self._same_key('v', 's')} AND v._file_order <> s._kept_order"
            )
        conn.execute("DROP TABLE _superseded")
        conn.execute("DROP TABLE _repeated")
        conn.execute(f"ALTER TABLE {self.loading} DROP COLUMN _failed")
        conn.execute(f"ALTER TABLE {self.loading} DROP COLUMN _file_order")
        conn.execute(f"ALTER TABLE {self.loading} DROP COLUMN _key_hash")
        if self.kept:
            self._merge_into_kept_rows()
            # the quarantine is what this run found wrong: rows kept from the last run are found again
            conn.execute("UPDATE raw.quarantine SET detected_at = ? WHERE source = ?", [self.detected_at, source.name])
        else:
            conn.execute(f"DROP TABLE IF EXISTS raw.{quote(source.name)}")
            conn.execute(f"ALTER TABLE {self.loading} RENAME TO {quote(source.name)}")
        # a rejected row of a file kept from the last run has the last run's note: this run's files may have
        # superseded the version it names
        conn.execute("UPDATE raw.quarantine SET reason = regexp_replace(reason, ?, '') "
                     "WHERE source = ? AND row_number IS NOT NULL", [VALID_VERSION_NOTE, source.name])
        conn.execute(
            f"""
            UPDATE raw.quarantine AS q
            SET reason = q.reason || '; the valid version of this key from ' || s.kept_file || ' stands'
            FROM (SELECT k.file, k.row_number, t._file AS kept_file
                  FROM {self.rejected} AS k JOIN raw.{quote(source.name)} AS t ON {self._same_key('k', 't')}) AS s
            WHERE q.source = ? AND q.file = s.file AND q.row_number = s.row_number
            """,
            [source.name],
        )
        self._count_blank_lines_as_rows()
        self._say_what_stands_for_rejected_files()
        self.report.rows_valid = conn.execute(f"SELECT count(*) FROM raw.{quote(source.name)}").fetchall()[0][0]
        conn.execute(f"DROP TABLE {self.malformed}")
        conn.execute("DROP TABLE IF EXISTS _duplicate_keys")

    def _merge_into_kept_rows(self) -> None:
        """Upsert this run's valid rows (all from files after every kept one) into the rows kept from the last run."""
        if self.loaded:
            table = f"raw.{quote(self.source.name)}"
            files = ", ".join(literal(f) for f in self.files)
            self.conn.execute(f"ALTER TABLE {table} ALTER _file TYPE ENUM({files})")  # this run's files are new names
            self.conn.execute(f"DELETE FROM {table} AS k USING {self.loading} AS n WHERE {self._same_key('k', 'n')}")
            columns = ", ".join(quote(c) for c in [*self.source.columns, "_file", "_extract_date"])
            self.conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {self.loading}")
        self.conn.execute(f"DROP TABLE {self.loading}")


# The notes ``finish`` appends to a quarantine reason, as patterns that strip them.
VALID_VERSION_NOTE = "; the valid version of this key from .* stands$"
WHAT_STANDS_NOTE = (r"; (no extract of this source was loaded, so it has no rows this run|"
                    r"the source's rows come from its other extracts \(the latest loaded: .*\))$")


def _what_stands(loaded: list[Extract]) -> str:
    """What the source's rows rest on beside a file rejected whole: its extracts that were loaded, if any."""
    if not loaded:
        return "; no extract of this source was loaded, so it has no rows this run"
    latest = max(loaded, key=lambda extract: (extract.extract_date, extract.file.encode()))
    return f"; the source's rows come from its other extracts (the latest loaded: {latest.file})"


def rows_counting_blank_lines(rows: np.ndarray, blank_lines: np.ndarray) -> np.ndarray:
    """The file's row numbers (the first line after the header is row 1, blank lines count) of the ``rows``-th
    rows read (blank lines are none to a CSV reader), given the line numbers of the blank lines (header: 1).

    The k-th row read comes after every blank line with fewer than k rows read before it; the i-th blank
    line (1-based), at row ``line - 1``, has ``line - 1 - i`` rows read before it.
    """
    read_before = blank_lines - 1 - np.arange(1, len(blank_lines) + 1)
    return rows + np.searchsorted(read_before, rows, side="left")


def _ingest_source(
    conn: duckdb.DuckDBPyConnection, source: SourceContract, landing_dir: Path, as_of: date,
    detected_at: datetime, master_tables: dict[str, str] | None, validated_with: str, reread: bool,
) -> SourceReport:
    """Ingest one source: the extracts dated after as_of have not happened yet from this run's point of view
    and are skipped; of the others, only those after the ones the last run ingested as they are now are read
    (``_SourceIngest.begin``); an undated one is quarantined."""
    extracts = list_extracts(landing_dir, source.name)
    ingest = _SourceIngest(conn, source, detected_at, master_tables, [e.file for e in extracts])
    ingest.report.folders_ignored = ignored_folders(landing_dir, source.name)
    considered = [(file_order, extract) for file_order, extract in enumerate(extracts)
                  if extract.extract_date is None or extract.extract_date <= as_of]
    ingest.report.files_skipped = len(extracts) - len(considered)
    kept = ingest.begin(considered, validated_with, reread)
    for file_order, extract in considered[kept:]:
        if extract.extract_date is None:
            ingest.quarantine_file(extract, "file name does not start with an extract date YYYY-MM-DD")
        else:
            ingest.add(extract, file_order)
    ingest.finish()
    record_manifest(conn, source.name, ingest.ingested(), validated_with)
    return ingest.report


def ingest_landing_zone(
    landing_dir: Path,
    as_of: date | None = None,
    progress: Progress | None = None,
    conn: duckdb.DuckDBPyConnection | None = None,
    detected_at: datetime | None = None,
    reread: bool = False,
) -> IngestResult:
    """Ingest every source into schema ``raw`` of ``conn`` (an in-memory database if none). The extracts the last
    run on ``conn`` ingested as they are now are not read again (``state``) unless ``reread``."""
    resolved = resolve_as_of(landing_dir, as_of)
    conn = conn or duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET preserve_insertion_order = false")  # rows carry no order (see _SourceIngest)
    conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
    conn.execute(  # a source's rows stay while its extracts do (``_SourceIngest.begin``)
        "CREATE TABLE IF NOT EXISTS raw.quarantine (source VARCHAR, file VARCHAR, row_number BIGINT, "
        '"column" VARCHAR, reason VARCHAR, raw_record VARCHAR, detected_at TIMESTAMP)'
    )
    ensure_manifest(conn)
    code = code_fingerprint()
    validated_with = code
    detected_at = detected_at or datetime.now().replace(microsecond=0)
    reports: dict[str, SourceReport] = {}
    master_tables: dict[str, str] | None = None
    for source in SOURCES:
        if master_tables is None and {"skus", "locations"} <= reports.keys():
            conn.execute("CREATE OR REPLACE TEMP TABLE _master_sku AS SELECT DISTINCT sku_id AS id FROM raw.skus")
            conn.execute(
                "CREATE OR REPLACE TEMP TABLE _master_location AS SELECT DISTINCT location_id AS id FROM raw.locations"
            )
            conn.execute("CREATE OR REPLACE TEMP TABLE _master_plant AS "
                         "SELECT DISTINCT location_id AS id FROM raw.locations WHERE location_type = 'plant'")
            for kind, source_name in (("sku", "skus"), ("location", "locations")):
                # ids of quarantined master-data rows (as received) that no valid row has
                conn.execute(
                    f"CREATE OR REPLACE TEMP TABLE _master_{kind}_rejected AS "
                    f"SELECT DISTINCT trim(json_extract_string(raw_record, '$.{kind}_id')) AS id FROM raw.quarantine "
                    f"WHERE source = '{source_name}' AND row_number IS NOT NULL AND json_valid(raw_record) "
                    f"EXCEPT SELECT id FROM _master_{kind}")
            master_tables = {"sku": "_master_sku", "location": "_master_location", "plant": "_master_plant",
                             "sku_rejected": "_master_sku_rejected", "location_rejected": "_master_location_rejected"}
            validated_with = f"{code}-{master_fingerprint(conn, sorted(master_tables.values()))}"
        started = time.perf_counter()
        report = _ingest_source(conn, source, landing_dir, resolved, detected_at, master_tables, validated_with,
                                reread)
        reports[source.name] = report
        if progress:
            superseded = report.rows_read - report.rows_valid - report.rows_quarantined
            rejected_whole = conn.execute("SELECT count(DISTINCT file) FROM raw.quarantine WHERE source = ? "
                                          "AND row_number IS NULL", [source.name]).fetchall()[0][0]
            progress(
                f"{source.name:<20} {report.files_read} file(s), {report.rows_read:>11,} rows read, "
                f"{report.rows_valid:>11,} valid, {report.rows_quarantined:>7,} quarantined"
                + (f", {superseded:,} superseded by later extracts" if superseded else "")
                + (f"; {rejected_whole} file(s) rejected whole (data_quality_issues says why)" if rejected_whole else "")
                + (f"; folder(s) ignored, extracts are files: {', '.join(report.folders_ignored)}"
                   if report.folders_ignored else "")
                + (f"; {report.files_kept} file(s) unchanged since the last run, not read again"
                   if report.files_kept else "")
                + (f"; read in full: {report.reread_because}" if report.reread_because else "")
                + f" ({time.perf_counter() - started:.1f} s)"
            )
    return IngestResult(as_of=resolved, reports=reports, conn=conn)


# Per source, its newest extract (the latest extract date among the files read or rejected on or before
# as_of) and the latest usable one: a file is usable unless it was rejected whole or every one of its rows
# was quarantined (a file with a header only is usable: nothing new happened). The publish gates and the
# freshness measures read these, not the totals over every extract, which older extracts dilute.
NEWEST_EXTRACT_SQL = """
WITH per_file AS (
    SELECT source, file, bool_or(row_number IS NULL) AS rejected_whole, count(DISTINCT row_number) AS rows_quarantined
    FROM raw.quarantine GROUP BY source, file
),
files AS (
    SELECT source, file, try_cast(left(file, 10) AS DATE) AS extract_date, coalesce(r.rows_read, 0) AS rows_read,
           coalesce(q.rejected_whole, false) AS rejected_whole,
           CASE WHEN q.rejected_whole THEN coalesce(r.rows_read, 0) ELSE coalesce(q.rows_quarantined, 0) END
               AS rows_quarantined
    FROM _rows_read_by_file AS r FULL JOIN per_file AS q USING (source, file)
),
dated AS (
    SELECT files.*, max(extract_date) OVER (PARTITION BY source) AS newest
    FROM files WHERE extract_date <= ?
)
SELECT source,
       any_value(newest) AS newest_extract_date,
       sum(rows_read) FILTER (WHERE extract_date = newest) AS newest_rows_read,
       sum(rows_quarantined) FILTER (WHERE extract_date = newest) AS newest_rows_quarantined,
       max(extract_date) FILTER (WHERE NOT rejected_whole AND (rows_read = 0 OR rows_quarantined < rows_read))
           AS latest_usable_extract_date
FROM dated GROUP BY source
"""


def write_run_metadata(conn: duckdb.DuckDBPyConnection, result: IngestResult, context: RunContext) -> None:
    """Write ``raw.run_context`` (the run parameters every stage reads) and ``raw.ingest_log``; make sure the log of
    published days exists, so a run blocked before any set was published leaves no history a later run reads."""
    ensure_published_runs(conn)
    replace_table(
        conn,
        "raw",
        "run_context",
        pd.DataFrame([asdict(context)]),
        {"as_of": "DATE", "horizon_weeks": "INTEGER", "time_fence_weeks": "INTEGER", "run_id": "VARCHAR",
         "started_at": "TIMESTAMP"},
    )
    log = pd.DataFrame([asdict(report) for report in result.reports.values()]).drop(
        columns=["rows_read_by_file", "folders_ignored", "reread_because"])
    read_by_file = pd.DataFrame(
        [(report.source, file, rows) for report in result.reports.values() for file, rows in report.rows_read_by_file.items()],
        columns=["source", "file", "rows_read"],
    )
    conn.register("_rows_read_by_file", read_by_file)
    try:
        newest = conn.execute(NEWEST_EXTRACT_SQL, [result.as_of]).df()
    finally:
        conn.unregister("_rows_read_by_file")
    replace_table(
        conn,
        "raw",
        "ingest_log",
        log.merge(newest, on="source", how="left"),
        {"source": "VARCHAR", "files_read": "INTEGER", "files_skipped": "INTEGER", "files_kept": "INTEGER",
         "latest_extract_date": "DATE",
         "rows_read": "BIGINT", "rows_valid": "BIGINT", "rows_quarantined": "BIGINT", "newest_extract_date": "DATE",
         "newest_rows_read": "BIGINT", "newest_rows_quarantined": "BIGINT", "latest_usable_extract_date": "DATE"},
    )
