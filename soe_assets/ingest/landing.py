"""Find and read landing-zone extracts exactly as received.

A CSV is read with every value as text so that nothing is lost or guessed
before the contract decides; a Parquet file keeps its stored types, and the
contract reads any value whose type is not the contract's through its text.

DuckDB reads both formats itself, in parallel. A CSV its strict reader
refuses is read again skipping the malformed rows (too many or too few
fields, a broken quote), which DuckDB lists with their line and text so that
each goes to the quarantine; any other file DuckDB refuses is streamed
through Arrow instead, whose verdict stands (see ``_SourceIngest._load``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from data_contracts.sql_rules import literal, quote

EXTRACT_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})")
# A name may end any way after its date (the contract: "anything may follow"): where its suffix does not say
# .csv or .parquet, the content does. Parquet starts with its magic bytes; packed files are named as such
# (read as CSV text they would fail with a misleading reason); anything else is read as CSV text.
FORMAT_SUFFIXES = {".csv": "csv", ".parquet": "parquet"}
PARQUET_MAGIC = b"PAR1"
PACKED_MAGICS = {b"\x1f\x8b": "gzip-compressed", b"PK\x03\x04": "a zip archive (as an Excel workbook is)"}
# Set (only) on files read through the lenient path: why a row cannot be taken as read ('' when it can).
READ_PROBLEM = "_read_problem"
# Set (only) on files read through the lenient path: the line as received of a row that cannot be taken as read.
RAW_LINE = "_raw_line"
# Where DuckDB lists the malformed rows of a CSV read with ``skip_malformed`` (a temporary table).
MALFORMED_ROWS = "_malformed_csv_rows"
# The name given a column whose header cell is blank (SQL has no empty identifier).
UNNAMED_COLUMN_PREFIX = "(unnamed column "
UNNAMED_COLUMN = UNNAMED_COLUMN_PREFIX + "{position})"
# The number the read gives each data row.
ROW_NUMBER = "_row_number"


class UnreadableFile(Exception):
    """The file cannot be read at all; it is quarantined whole with this reason."""


def displayable_name(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (which Python keeps as surrogate escapes, and no text
    column, log line or terminal takes) shown as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Extract:
    source: str
    path: Path
    extract_date: date | None  # None: the name does not start with a valid date

    @property
    def file(self) -> str:
        return displayable_name(self.path.name)


def _extract_date(name: str) -> date | None:
    match = EXTRACT_NAME.match(name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def extract_format(path: Path) -> str:
    """'csv' or 'parquet': as the name's suffix says, else as the first bytes do ('csv' when they cannot be
    read: the reader then says why); a packed file (gzip, zip) raises ``UnreadableFile``."""
    known = FORMAT_SUFFIXES.get(path.suffix.lower())
    if known:
        return known
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        return "csv"
    for magic, packed in PACKED_MAGICS.items():
        if head.startswith(magic):
            raise UnreadableFile(f"the file is {packed}, not CSV or Parquet: unpack it into the source folder")
    return "parquet" if head == PARQUET_MAGIC else "csv"


def list_extracts(landing_dir: Path, source: str) -> list[Extract]:
    """Every visible file of a source folder, ordered by (extract date, file name bytes)."""
    folder = landing_dir / source
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    extracts = [Extract(source, p, _extract_date(p.name)) for p in files]
    return sorted(extracts, key=lambda e: (e.extract_date or date.min, os.fsencode(e.path.name)))


def ignored_folders(landing_dir: Path, source: str) -> list[str]:
    """The visible folders inside a source folder: never read (an extract is a file), so the run names them."""
    folder = landing_dir / source
    if not folder.is_dir():
        return []
    return sorted(f"{displayable_name(p.name)}/" for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


BATCH_BYTES = 16 << 20  # CSV block size; Parquet is read one row group at a time
_TEXT_OPTIONS = dict(strings_can_be_null=False, quoted_strings_can_be_null=False)


def _is_utf8_error(error: Exception) -> bool:
    return "utf8" in str(error).lower()


# The quarantine's reason for a CSV row with the wrong number of fields, and the hint for one with too many.
FIELD_COUNT_PROBLEM = "malformed CSV row: {found} fields where the header has {expected}"
UNQUOTED_COMMA_HINT = " (a comma inside a value that is not quoted?)"


# What the lenient read puts in place of bytes that are not UTF-8.
REPLACEMENT_CHARACTER = "\ufffd"
# The quarantine's reason for a CSV row whose quoting is broken (DuckDB's reader and the lenient one give this one).
UNQUOTED_VALUE_PROBLEM = "malformed CSV row: a quoted value has text after its closing quote or is not closed"
# The quarantine's reason for a row that holds no value: a line of blanks, or of blanks and commas (as a spreadsheet
# exports a row it takes for used), or a row whose every field is blank. A line with no character at all is no row.
EMPTY_ROW_PROBLEM = "empty row: no column holds a value"
# The longest line DuckDB's reader takes (its max_line_size); the lenient read takes values as long.
LONGEST_LINE_BYTES = 2_000_000


def _row_problem(row: list[str], width: int) -> str:
    """Why a row of the lenient read cannot be taken as read; '' when it can. One empty field more than the
    header is a trailing comma, dropped as DuckDB's reader drops it."""
    if len(row) != width and not (len(row) == width + 1 and row[-1] == ""):
        return (FIELD_COUNT_PROBLEM.format(found=len(row), expected=width)
                + (UNQUOTED_COMMA_HINT if len(row) > width else ""))
    return ""


def _csv_text_lenient(path: Path) -> pa.Table:
    """Slow path for files with invalid UTF-8: bad bytes become U+FFFD (a contract value holding one is
    rejected later, an extra column's is ignored with it), and a row with the wrong number of fields is
    flagged."""
    text = path.read_bytes().decode("utf-8-sig", errors="replace")  # a leading byte-order mark is no header text
    rows = _strict_csv_rows(text)
    if not rows:
        raise UnreadableFile("the file is empty")
    (header, _), body = rows[0], rows[1:]
    if header is None:
        raise UnreadableFile("the header row is malformed: " + UNQUOTED_VALUE_PROBLEM.removeprefix("malformed CSV row: "))
    # by position, not by name: a name the header repeats stays twice, as the other readers see it; a column named
    # like one this read adds is an extra column, ignored as the other readers ignore it
    kept = [i for i, name in enumerate(header) if name.strip() not in (READ_PROBLEM, RAW_LINE)]
    columns = [pa.array([row[i] if row is not None and i < len(row) else "" for row, _ in body], pa.string())
               for i in kept]
    problems = [UNQUOTED_VALUE_PROBLEM if row is None else _row_problem(row, len(header)) for row, _ in body]
    received = [line if problem else "" for (_, line), problem in zip(body, problems)]
    return pa.Table.from_arrays([*columns, pa.array(problems, pa.string()), pa.array(received, pa.string())],
                                names=[*(header[i] for i in kept), READ_PROBLEM, RAW_LINE])


def _strict_csv_rows(text: str) -> list[tuple[list[str] | None, str]]:
    """The rows of a CSV text as DuckDB's strict reader takes them, each with its line(s) as received; None for a
    row whose quoting is broken (text after a closing quote: ``"5"0`` is no 50). Blank lines are no rows. Spaces
    before a quoted value are dropped, as DuckDB drops them; spaces after its closing quote make the row malformed
    here."""
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    csv.field_size_limit(max(csv.field_size_limit(), LONGEST_LINE_BYTES))  # a value may be as long as a line
    reader = csv.reader(lines(), strict=True, skipinitialspace=True)
    rows: list[tuple[list[str] | None, str]] = []
    while True:
        try:
            row: list[str] | None = next(reader)
        except StopIteration:
            return rows
        except csv.Error:  # the reader goes on at the next line
            row = None
        if row != []:
            rows.append((row, "".join(consumed).rstrip("\r\n")))
        consumed.clear()


def blank_line_numbers(path: Path, block_size: int = 1 << 24) -> np.ndarray:
    """The line numbers (the header is line 1) of a CSV's blank lines after its header, counted as DuckDB's
    reader counts the lines it reports malformed: a line break inside a quoted value does not end a line, a
    blank line does. Readers skip blank lines: a malformed line is the row read numbered its line less one,
    less the blank lines before it. Blank lines before the header are no rows: they are left out, and the
    lines after them numbered from the header. Read in blocks: a large extract is never held whole."""
    blank = _blank_lines_of_file(path, block_size)
    leading = int(np.sum(blank == np.arange(1, len(blank) + 1)))  # lines 1..k all blank: before the header
    return blank[leading:] - leading


UTF8_BOM = b"\xef\xbb\xbf"


def _blank_lines_of_file(path: Path, block_size: int) -> np.ndarray:
    """The line numbers (the file's first line is 1) of a CSV's blank lines."""
    if not _line_breaks_close_together(path, block_size):
        return np.empty(0, dtype=np.int64)
    blank: list[np.ndarray] = []
    quotes_open = 0  # parity of the double quotes read so far
    lines_before = 0  # unquoted line breaks before the block
    last_break = -1  # file offset of the last unquoted line break read (-1: none yet)
    last_byte = 0
    offset = 0
    with path.open("rb") as file:
        while block := file.read(block_size):
            if offset == 0 and block.startswith(UTF8_BOM):  # it opens the first line without being part of it
                last_break = len(UTF8_BOM) - 1
            data = np.frombuffer(block, np.uint8)
            parity = (np.cumsum(data == ord('"'), dtype=np.int64) + quotes_open) % 2
            breaks = np.flatnonzero((data == ord("\n")) & (parity == 0))
            if breaks.size:
                ends = breaks + offset
                length = ends - np.concatenate(([last_break], ends[:-1])) - 1  # bytes between two breaks
                before = np.where(breaks > 0, data[np.maximum(breaks - 1, 0)], last_byte)
                empty = (length == 0) | ((length == 1) & (before == ord("\r")))
                blank.append(lines_before + 1 + np.flatnonzero(empty))
                lines_before += breaks.size
                last_break = int(ends[-1])
            quotes_open = int(parity[-1])
            last_byte = int(data[-1])
            offset += len(block)
    return np.concatenate(blank) if blank else np.empty(0, dtype=np.int64)


def _looks_utf16(path: Path) -> bool:
    """A UTF-16 byte-order mark, or the NUL bytes UTF-16 gives every ASCII character, at the file's start."""
    with path.open("rb") as file:
        start = file.read(64)
    return start.startswith((b"\xff\xfe", b"\xfe\xff")) or start[:32].count(0) >= 8


def _line_breaks_close_together(path: Path, block_size: int) -> bool:
    """Whether two line breaks lie at most two bytes apart (a blank line, LF or CRLF, can be nowhere else): a
    quick pass (~0.7 s a GB) that spares most files the exact one, which tracks quotes (~9 s a GB)."""
    previous = -1  # file offset of the last line break read (-1: a break there would end an empty line 0)
    offset = 0
    with path.open("rb") as file:
        while block := file.read(block_size):
            breaks = np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n")) + offset
            if breaks.size:
                if (np.diff(breaks, prepend=previous) <= 2).any():
                    return True
                previous = int(breaks[-1])
            offset += len(block)
    return False


class InvalidUtf8(UnreadableFile):
    """The CSV holds bytes that are not UTF-8: read it again through the lenient path."""


def _csv_header(path: Path) -> tuple[list[str], int]:
    """The names in a CSV's header row, read alone (the rows are the reader's business: DuckDB's, or
    Arrow's where DuckDB refuses the file, not the header's), and the blank lines before it."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as text:
            lines = csv.reader(text, skipinitialspace=True)  # ' "order_id"' names order_id, as in a row
            blank_before = 0
            for header in lines:
                if header:
                    return header, blank_before
                blank_before += 1
    except UnicodeDecodeError as error:
        raise InvalidUtf8(f"not a readable CSV file: {error}") from error
    except csv.Error as error:
        raise UnreadableFile(f"not a readable CSV file: {error}") from error
    raise UnreadableFile("not a readable CSV file: it has no header row")


class ExtractReader:
    """One extract as received, plus ``_row_number`` (1-based data row).

    DuckDB reads the file itself where it can (``native_sql``); ``batches``
    streams it through Arrow instead, which keeps memory flat however large the
    file (a CSV is never held whole); the price is that the batches can be
    scanned once, so a second look means a new reader. DuckDB reports an error
    raised mid-stream only as a failed scan: the error itself is kept in
    ``error``. ``lenient=True`` reads a CSV with invalid UTF-8 through the slow
    path that flags those rows (``READ_PROBLEM``).
    """

    def __init__(self, extract: Extract, *, lenient: bool = False) -> None:
        self.extract = extract
        self.lenient = lenient
        self.error: UnreadableFile | None = None
        self.blank_lines_before_header = 0  # a CSV's: DuckDB's reader must skip them, and they are no rows
        if extract.file != extract.path.name:
            raise UnreadableFile("the file name is not valid UTF-8 (its other bytes are shown as \\xNN): "
                                 "rename the file")
        self.format = extract_format(extract.path)
        try:
            with extract.path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
        except OSError as error:  # no read permission, or gone since the folder was listed
            raise UnreadableFile(f"the file cannot be opened: {error.strerror or error}") from error
        if size == 0:
            raise UnreadableFile("the file is empty (no header row)")
        if self.format == "csv" and _looks_utf16(extract.path):
            raise UnreadableFile("the file is UTF-16 text (as Excel saves 'Unicode text'); extracts are UTF-8: "
                                 "save it as 'CSV UTF-8'")
        if lenient:
            table = _csv_text_lenient(extract.path)
            self._schema, self._open = table.schema, lambda: iter(table.to_batches())
        elif self.format == "csv":
            self._schema, self._open = self._open_csv()
        else:
            self._schema, self._open = self._open_parquet()
        # A column without a name (a trailing comma on the header, as spreadsheets export) is an extra column
        # like any other: it gets one, since SQL has no empty identifier.
        names = [str(c).strip() or UNNAMED_COLUMN.format(position=position + 1)
                 for position, c in enumerate(self._schema.names)]
        # A name the header gives twice is read by neither column: which one holds the values is anyone's guess.
        # For an extra column that costs nothing; a contract column named twice rejects the file (the ingest's
        # call: the reader does not know the contract).
        self.repeated_names = sorted({name for name in names if names.count(name) > 1})
        # An extra column named like a column the read adds itself is ignored, as extra columns are.
        own = {ROW_NUMBER} if lenient else {ROW_NUMBER, READ_PROBLEM, RAW_LINE}
        self._kept = [position for position, name in enumerate(names)
                      if name not in own and name not in self.repeated_names]
        self.header_names = names  # every column of the file, by position
        self.column_names = [names[position] for position in self._kept]
        self.schema = pa.schema([self._schema.field(position).with_name(names[position]) for position in self._kept])

    def _open_csv(self):
        path, read = self.extract.path, pacsv.ReadOptions(block_size=BATCH_BYTES)
        header, self.blank_lines_before_header = _csv_header(path)  # Arrow skips those lines itself
        options = pacsv.ConvertOptions(column_types={name: pa.string() for name in header}, **_TEXT_OPTIONS)
        schema = pa.schema([(name, pa.string()) for name in header])
        return schema, lambda: pacsv.open_csv(path, read_options=read, convert_options=options)

    def _open_parquet(self):
        try:
            parquet = pq.ParquetFile(self.extract.path)
            schema = parquet.schema_arrow
        except (pa.ArrowInvalid, OSError) as error:
            raise UnreadableFile(f"not a readable Parquet file: {error}") from error
        return schema, lambda: parquet.iter_batches()

    @property
    def is_csv(self) -> bool:
        return self.format == "csv"

    def native_sql(self, numbered: bool, skip_malformed: bool = False) -> str | None:
        """A DuckDB query reading the extract natively, in parallel, with ``_row_number`` when ``numbered``;
        None when only ``batches`` can read it: a lenient read, a path DuckDB would take for a glob pattern,
        numbering a Parquet file that has a column named file_row_number, or ``skip_malformed`` on a Parquet
        file.

        ``skip_malformed`` reads a CSV without the rows DuckDB's strict reader refuses and lists them in the
        temporary table ``MALFORMED_ROWS`` (the caller drops it) with their line (the header is line 1, a
        quoted line break does not start a line) and text. ``_row_number`` then numbers the rows read, not
        the file's: ``_SourceIngest`` maps it past the malformed rows.

        A CSV is read with the options the landing-zone contract states (comma, double quote, header row,
        every value as text) and nothing sniffed. An empty field is NULL to DuckDB; the numbered read,
        which brings rejected rows to the quarantine, makes it '' as in Arrow's reading, so a quarantined
        record shows what was received, and the load leaves it NULL, which every rule of the contract
        takes as it takes '' (blank). Numbering a CSV takes a window that runs on one thread, so only the
        quarantine's read of a file with rejected rows asks for it.
        """
        path = str(self.extract.path)
        if self.lenient or any(char in path for char in "*?[{") or (skip_malformed and not self.is_csv):
            return None
        if self.is_csv:
            positions = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(self._schema.names)))  # every column read
            received = "coalesce(c{i}, '')" if numbered else "c{i}"
            columns = ", ".join(f"{received.format(i=i)} AS {quote(name)}"
                                for i, name in zip(self._kept, self.column_names))
            number = f", row_number() OVER () AS {ROW_NUMBER}" if numbered else ""
            # Rejects are stored on every skipping read: without store_rejects, DuckDB 2.0 ends the read
            # silently at a row with text after a closing quote (the rows after it were lost).
            skipping = (f", ignore_errors = true, store_rejects = true, rejects_table = '{MALFORMED_ROWS}', "
                        f"rejects_scan = '{MALFORMED_ROWS}_scans'") if skip_malformed else ""
            skip = f"skip = {self.blank_lines_before_header}, " if self.blank_lines_before_header else ""
            return (f"SELECT {columns}{number} FROM read_csv({literal(path)}, {skip}header = true, auto_detect = false, "
                    f"columns = {{{positions}}}, delim = ',', quote = '\"', escape = '\"', comment = '', "
                    f"strict_mode = true, null_padding = false{skipping})")
        if numbered and "file_row_number" in self._schema.names:
            return None
        originals = [self._schema.names[position] for position in self._kept]
        columns = ", ".join(f"{quote(original)} AS {quote(name)}"
                            for original, name in zip(originals, self.column_names))
        number = f", file_row_number + 1 AS {ROW_NUMBER}" if numbered else ""
        return (f"SELECT {columns}{number} "
                f"FROM read_parquet({literal(path)}, file_row_number = {str(numbered).lower()})")

    def batches(self) -> pa.RecordBatchReader:
        """A fresh stream over the whole extract (every column as stored) with ``_row_number``."""
        names = [*self.column_names, ROW_NUMBER]

        def numbered():
            first = 1
            try:
                for batch in self._open():
                    numbers = pa.array(np.arange(first, first + batch.num_rows, dtype=np.int64))
                    yield pa.RecordBatch.from_arrays([*(batch.column(p) for p in self._kept), numbers], names=names)
                    first += batch.num_rows
            except (pa.ArrowInvalid, OSError) as error:
                kind = "CSV" if self.is_csv else "Parquet"
                failure = InvalidUtf8 if _is_utf8_error(error) else UnreadableFile
                self.error = failure(f"not a readable {kind} file: {error}")
                raise self.error from error

        return pa.RecordBatchReader.from_batches(self.schema.append(pa.field(ROW_NUMBER, pa.int64())), numbered())


# Arrow types that already are a contract kind (a typed Parquet file skips the text round trip). A date may be
# stored as a timestamp, as pandas writes its dates; it must then fall at midnight (see ``sql_rules``).
_STORED_KIND_TYPES = {
    "date": lambda t: pa.types.is_date32(t) or pa.types.is_timestamp(t), "ts": pa.types.is_timestamp,
    "int": pa.types.is_signed_integer, "num": pa.types.is_float64,
}


def stored_typed_columns(schema: pa.Schema, kinds: dict[str, str]) -> set[str]:
    """The contract columns ``schema`` stores with their contract type."""
    return {
        column for column, kind in kinds.items()
        if kind in _STORED_KIND_TYPES and column in schema.names
        and _STORED_KIND_TYPES[kind](schema.field(column).type)
    }


def stored_timestamps(schema: pa.Schema) -> dict[str, str | None]:
    """The columns ``schema`` stores as timestamps, with their time zone (None: none)."""
    return {field.name: field.type.tz for field in schema if pa.types.is_timestamp(field.type)}


def read_extract_text(extract: Extract) -> pa.Table:
    """The extract as received (CSV: every column as text) plus ``_row_number``, whole."""
    try:
        return ExtractReader(extract).batches().read_all()
    except InvalidUtf8:
        return ExtractReader(extract, lenient=True).batches().read_all()
