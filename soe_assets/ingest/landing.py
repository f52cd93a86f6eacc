"""Find and read landing-zone extracts as text, exactly as received.

Every value is read as text so that nothing is lost or guessed before the
contract decides; the contract (``data_contracts.validation``) does the typing.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

EXTRACT_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})")
SUPPORTED_SUFFIXES = (".csv", ".parquet")
# Set (only) on files read through the lenient path: rows holding invalid UTF-8.
INVALID_UTF8 = "_invalid_utf8"


class UnreadableFile(Exception):
    """The file cannot be read at all; it is quarantined whole with this reason."""


@dataclass(frozen=True)
class Extract:
    source: str
    path: Path
    extract_date: date | None  # None: the name does not start with a valid date

    @property
    def file(self) -> str:
        return self.path.name


def _extract_date(name: str) -> date | None:
    match = EXTRACT_NAME.match(name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def list_extracts(landing_dir: Path, source: str) -> list[Extract]:
    """Every visible file of a source folder, ordered by (extract date, file name bytes)."""
    folder = landing_dir / source
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    extracts = [Extract(source, p, _extract_date(p.name)) for p in files]
    return sorted(extracts, key=lambda e: (e.extract_date or date.min, e.file.encode()))


def _csv_text(path: Path) -> pa.Table:
    read = pacsv.ReadOptions(block_size=64 << 20)
    try:
        header = pacsv.open_csv(path, read_options=read).schema.names
        types = {name: pa.string() for name in header}
        options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False)
        return pacsv.read_csv(path, read_options=read, convert_options=options)
    except pa.ArrowInvalid as error:
        if "UTF8" in str(error) or "utf8" in str(error).lower():
            return _csv_text_lenient(path)
        raise UnreadableFile(f"not a readable CSV file: {error}") from error


def _csv_text_lenient(path: Path) -> pa.Table:
    """Slow path for files with invalid UTF-8: bad bytes become U+FFFD and the row is rejected later."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise UnreadableFile("the file is empty")
    header, body = rows[0], rows[1:]
    columns = {name: [row[i] if i < len(row) else "" for row in body] for i, name in enumerate(header)}
    columns[INVALID_UTF8] = ["\ufffd" in "".join(row) for row in body]
    return pa.table(columns)


def _parquet_table(path: Path) -> pa.Table:
    """The Parquet extract with its stored types: the contract reads every value through its text form."""
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise UnreadableFile(f"not a readable Parquet file: {error}") from error


def read_extract_text(extract: Extract) -> pa.Table:
    """The extract as received (CSV: every column as text) plus ``_row_number`` (1-based data row)."""
    suffix = extract.path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFile(f"unsupported file type '{suffix or '(none)'}': extracts are .csv or .parquet")
    if extract.path.stat().st_size == 0:
        raise UnreadableFile("the file is empty (no header row)")
    table = _csv_text(extract.path) if suffix == ".csv" else _parquet_table(extract.path)
    table = table.rename_columns([str(c).strip() for c in table.column_names])
    if len(set(table.column_names)) != len(table.column_names):
        raise UnreadableFile("the header names a column twice")
    return table.append_column("_row_number", pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)))
