"""What the last run ingested, so a daily run reads only the extracts that arrived since.

A source's rows in ``raw`` are a function of its extracts (in order), the
ingest code and, for every source checked against master data, the master
data's ids. The last run records per source every extract it considered
(name, size, modification time, inode change time, a digest of its first and
last bytes, position in the source's order) with what it counted for it, and
what the rows were validated with. The next run keeps those rows and their quarantine
when its own extracts start with exactly the same files validated with the
same code and master data, and reads only the files after them; anything
else (a file changed, removed or slotted in before another, another as_of,
new master data, new code) reads the source in full.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import astuple, dataclass, fields
from functools import cache
from pathlib import Path

import duckdb
import pandera
import pyarrow

import data_contracts
from soe_assets.ingest.landing import Extract
from soe_assets.warehouse import quote

STATE_SCHEMA = "ingest_state"
MANIFEST = f"{STATE_SCHEMA}.extracts"

# The code whose change can change what ingest keeps or rejects: the contracts and the ingest stage.
_CODE_FOLDERS = (Path(__file__).resolve().parent, Path(data_contracts.__file__).resolve().parent)


@cache
def code_fingerprint() -> str:
    """A digest of the validating code and of the versions of the libraries that parse and check the extracts
    (read once per process: the code that runs)."""
    digest = hashlib.sha256(f"{duckdb.__version__} {pyarrow.__version__} {pandera.__version__}".encode())
    for folder in _CODE_FOLDERS:
        for path in sorted(folder.glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def master_fingerprint(conn: duckdb.DuckDBPyConnection, tables: list[str]) -> str:
    """A digest of the ids in the master-data tables the other sources are checked against."""
    parts = ", ".join(f"(SELECT coalesce(md5(string_agg(id, chr(10) ORDER BY id)), '') FROM {table})"
                      for table in tables)
    return hashlib.sha256("|".join(conn.execute(f"SELECT {parts}").fetchall()[0]).encode()).hexdigest()[:16]


# Bytes read from each end of an extract for its digest: a file rewritten within one tick of the file
# system's clock keeps its modification time, and may keep its size.
SAMPLED_BYTES = 1 << 16


@dataclass(frozen=True)
class FileState:
    """An extract as a run found it; the same state in the next run means the same rows."""

    file: str
    size: int
    modified_ns: int
    # A file rewritten in place with its old modification time put back (cp -p or tar x of a corrected re-send)
    # and its size kept differs only in the middle, which the digest does not read: its inode change time,
    # which writing sets and no tool can set back, tells it apart.
    changed_ns: int
    sample_digest: str
    file_order: int

    @classmethod
    def of(cls, extract: Extract, file_order: int) -> FileState:
        try:
            with extract.path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                digest = hashlib.blake2b(handle.read(SAMPLED_BYTES), digest_size=16)
                if stat.st_size > SAMPLED_BYTES:
                    handle.seek(max(SAMPLED_BYTES, stat.st_size - SAMPLED_BYTES))
                    digest.update(handle.read())
        except OSError:  # unreadable: the run quarantines it whole, and a state no readable file has says so
            return cls(extract.file, -1, -1, -1, "unreadable", file_order)
        return cls(extract.file, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, digest.hexdigest(), file_order)


@dataclass(frozen=True)
class IngestedFile:
    """What a run counted for one extract it considered."""

    state: FileState
    rows_read: int | None  # None: not read as rows (rejected whole before reading, or undated)
    rows_quarantined: int
    loaded: bool  # its valid rows took part in the upsert


# The manifest's columns of a ``FileState``, in its fields' order.
MANIFEST_STATE = ", ".join(field.name for field in fields(FileState))


def ensure_manifest(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {MANIFEST} (source VARCHAR, file VARCHAR, size BIGINT, modified_ns BIGINT, "
        "sample_digest VARCHAR, file_order INTEGER, rows_read BIGINT, rows_quarantined BIGINT, loaded BOOLEAN, "
        "validated_with VARCHAR)"
    )
    # a record made before change times were kept has none (NULL): it matches no file, which is read in full
    conn.execute(f"ALTER TABLE {MANIFEST} ADD COLUMN IF NOT EXISTS changed_ns BIGINT")


def take_manifest(conn: duckdb.DuckDBPyConnection, source: str) -> tuple[list[IngestedFile], set[str]]:
    """The source's record of the last run, in file order, and what its rows were validated with; the record
    is removed, so a run stopped before ``record_manifest`` leaves none and the next run reads in full."""
    rows = conn.execute(
        f"SELECT {MANIFEST_STATE}, rows_read, rows_quarantined, loaded, "
        f"validated_with FROM {MANIFEST} WHERE source = ? ORDER BY file_order", [source]).fetchall()
    conn.execute(f"DELETE FROM {MANIFEST} WHERE source = ?", [source])
    width = len(fields(FileState))
    files = [IngestedFile(FileState(*row[:width]), *row[width:width + 3]) for row in rows]
    return files, {row[-1] for row in rows}


def record_manifest(conn: duckdb.DuckDBPyConnection, source: str, files: list[IngestedFile],
                    validated_with: str) -> None:
    """Record the source's extracts whole or not at all: the next run trusts every record it finds, and
    ``executemany`` commits row by row."""
    if not files:
        return
    conn.begin()
    try:
        conn.executemany(
            f"INSERT INTO {MANIFEST} (source, {MANIFEST_STATE}, rows_read, rows_quarantined, loaded, validated_with) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[source, *astuple(f.state), f.rows_read, f.rows_quarantined, f.loaded, validated_with] for f in files],
        )
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def unchanged_files(previous: list[IngestedFile], validated: set[str], considered: list[FileState],
                    validated_with: str) -> tuple[int, str]:
    """How many of the ``considered`` extracts (in order) the last run ingested as they are now, so their rows
    stand; with why none are kept when the last run ingested some."""
    if not previous:
        return 0, ""
    if validated != {validated_with}:
        return 0, "master data or the validating code changed since the last run"
    kept = [f.state for f in previous]
    if len(considered) < len(kept) and considered == kept[:len(considered)]:
        return 0, "this run considers fewer extracts than the last one (an earlier as_of, or extracts removed)"
    if considered[:len(kept)] != kept:
        return 0, "an extract the last run ingested was changed or removed, or a new one sorts before it"
    return len(kept), ""


def rejected_keys_name(source: str) -> str:
    """The name, in ``STATE_SCHEMA``, of the table of the source's rejected keys (with file and row), which the
    quarantine's notes are written from."""
    return f"rejected_{source}"


def rejected_keys_table(source: str) -> str:
    return f"{STATE_SCHEMA}.{quote(rejected_keys_name(source))}"
