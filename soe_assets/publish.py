"""Publish every mart as Parquet for BI readers, atomically as a set.

Layout of ``<publish_dir>``::

    .versions/<version>/<table>.parquet + _manifest.json   (one complete set per run)
    current -> .versions/<version>                         (switched with one rename)
    <table>.parquet -> current/<table>.parquet              (stable names for readers)
    _manifest.json  -> current/_manifest.json
    .publish-lock                                          (held while a run publishes into the folder)

``<version>`` is ``<sequence>_<local time>_<run id>`` (``version_name``): the sequence number orders the sets.

A set is written completely under a new version folder before ``current`` is
switched by an atomic ``rename`` of a symlink, so a reader sees the previous
complete set or the new one, never a half-written file. A reader that opens
several tables and wants them from one run resolves ``current`` once
(``os.path.realpath``) and reads from there.

``current`` is the set of the latest as_of: a run for an earlier as_of (a
backfill) writes its set beside it and leaves ``current`` where it is.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from soe_assets import run_lock
from soe_assets.terminal import say
from soe_assets.warehouse import (
    HISTORY_TABLES, is_lock_conflict, lock_holder, published_history, quote, record_published,
)

SCHEMA_VERSION = "1"
VERSIONS = ".versions"
CURRENT = "current"
MANIFEST = "_manifest.json"
KEEP_VERSIONS = 3
# Held while a run publishes into the folder: runs of two warehouses publishing into one folder take turns.
PUBLISH_LOCK = ".publish-lock"
# A version folder's sequence number leads its name, zero-padded so that a listing shows the sets in order.
SEQUENCE_DIGITS = 8
SEQUENCE = re.compile(r"(\d+)_")
# Marts dbt builds from joins and windows: the warehouse holds their rows in no meaningful order, so
# their Parquet need not keep it (10M network, the trusted view's 12.5M rows: 7.5 s against 8.3-9.1 s).
# The marts the Python stages write keep theirs (exceptions by priority, KPIs by name and week).
UNORDERED_MARTS = frozenset({"sku_location_week", "reconciliation_findings", "data_quality_issues"})


@dataclass(frozen=True)
class PublishedSet:
    version_dir: Path
    row_counts: dict[str, int]
    current_as_of: date | None  # the as_of of the set ``current`` points at after publishing

    @property
    def is_current(self) -> bool:
        return (self.version_dir.parent.parent / CURRENT).resolve() == self.version_dir.resolve()


def published_as_of(publish_dir: Path) -> date | None:
    """The as_of of the set ``current`` points at; None when nothing is published there yet."""
    try:
        manifest = json.loads((publish_dir / CURRENT / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    return date.fromisoformat(manifest["as_of"])


def mart_tables(conn: duckdb.DuckDBPyConnection) -> list[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts' ORDER BY table_name"
    ).fetchall()
    return [name for (name,) in rows]


def _switch_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` atomically (rename of a fresh symlink over the old one)."""
    staging = link.with_name(f".{link.name}.switching")
    staging.unlink(missing_ok=True)
    staging.symlink_to(target)
    os.replace(staging, link)


def publish_marts(
    conn: duckdb.DuckDBPyConnection, publish_dir: Path, *, run_id: str, as_of: str, extra_files: dict[str, Path] | None = None
) -> PublishedSet:
    """Write every ``marts.*`` table to a new version folder, then switch ``current`` to it unless ``current``
    holds a later as_of."""
    publish_dir.mkdir(parents=True, exist_ok=True)
    with _publishing_alone(publish_dir, _holder_line(conn, run_id)):
        return _publish(conn, publish_dir, run_id=run_id, as_of=as_of, extra_files=extra_files)


def _holder_line(conn: duckdb.DuckDBPyConnection, run_id: str) -> str:
    """What the publish lock file says of this publish, for a run that has to wait for it."""
    warehouse = conn.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    of = f" of {warehouse[0]}" if warehouse and warehouse[0] else ""
    return f"pid {os.getpid()}: run {run_id[:8]}{of}"


@contextmanager
def _publishing_alone(publish_dir: Path, holder: str) -> Iterator[None]:
    """Hold the publish folder's lock for a publish. The run lock is the warehouse's: runs of two warehouses
    publishing into one folder would otherwise take the same sequence number, switch ``current`` over each
    other, and one's pruning would remove the set the other is writing. The operating system releases the lock
    when the process ends, even when it is killed.

    The holder writes ``holder`` into the lock file, so that a run waiting for it can say which run it waits
    for; a lock file another account made may be read-only here (flock needs no write access), and this
    publish then names nobody."""
    path = publish_dir / PUBLISH_LOCK
    try:
        fd, writable = os.open(path, os.O_RDWR | os.O_CREAT, 0o666), True
    except PermissionError:
        fd, writable = os.open(path, os.O_RDONLY), False
    held = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another run{_publishing_now(fd)} is publishing into {publish_dir}: waiting for it to finish ...",
                file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        held = True
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{holder}, publishing since {datetime.now():%Y-%m-%d %H:%M:%S}\n"
                          f"{_process_start(os.getpid())}\n".encode(), 0)
        yield
    finally:
        if held and writable:
            os.ftruncate(fd, 0)  # a later holder that cannot write must not be taken for this one
        os.close(fd)  # releases the lock


def _publishing_now(fd: int) -> str:
    """`` (<the holder's line>)`` while the process that wrote the publish lock file lives, else nothing: a run
    killed while publishing leaves its line behind, and a holder that cannot write the file writes none. The
    process is the writer if its number and its start time are the writer's (a number is reused)."""
    line, _, started = os.pread(fd, 1024, 0).decode("utf-8", "replace").partition("\n")
    pid = re.match(r"pid (\d+):", line)
    alive = pid and run_lock.process_alive(int(pid.group(1))) and _process_start(int(pid.group(1))) == started.strip()
    return f" ({line.strip()})" if alive else ""


def _process_start(pid: int) -> str:
    """When the process started, in clock ticks since boot (``/proc``; empty where there is none)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]  # field 22; the name before ")" may hold blanks


def _publish(conn: duckdb.DuckDBPyConnection, publish_dir: Path, *, run_id: str, as_of: str,
             extra_files: dict[str, Path] | None) -> PublishedSet:
    """``publish_marts`` once this process alone publishes into ``publish_dir``."""
    previous_as_of = published_as_of(publish_dir)
    version = version_name(_next_sequence(publish_dir / VERSIONS), datetime.now(), run_id)
    building = publish_dir / VERSIONS / f".{version}.building"
    building.mkdir(parents=True)
    try:
        final, manifest = _write_version(conn, building, publish_dir / VERSIONS / version, run_id=run_id, as_of=as_of,
                                         extra_files=extra_files)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)  # a failed set (a full disk) must not keep its space
        raise
    record_published(conn, date.fromisoformat(as_of), run_id)  # the set is complete: its day's history counts

    # the set readers had until now stays until the next publish, as do the newest few: a reader that resolved
    # `current` just before the switch can still read every table of it (after backfills it may be none of those)
    previous_current = (publish_dir / CURRENT).resolve()
    if previous_as_of is None or date.fromisoformat(as_of) >= previous_as_of:
        _switch_symlink(publish_dir / CURRENT, f"{VERSIONS}/{version}")
        for name in manifest["files"] + [MANIFEST]:
            link = publish_dir / name
            if not link.is_symlink() or os.readlink(link) != f"{CURRENT}/{name}":
                _switch_symlink(link, f"{CURRENT}/{name}")
    _prune_versions(publish_dir / VERSIONS, keep={final, previous_current, (publish_dir / CURRENT).resolve()})
    return PublishedSet(version_dir=final, row_counts=manifest["row_counts"], current_as_of=published_as_of(publish_dir))


def _declared_nullability(conn: duckdb.DuckDBPyConnection, table: str) -> str:
    """The select list of ``marts.<table>`` that writes each column as the warehouse declares it.

    DuckDB's Parquet writer marks a column that holds no NULL in the rows written as REQUIRED: a column that
    may be empty would change from REQUIRED to OPTIONAL between two days' files, and a reader that stacks them
    (``pyarrow.concat_tables``, a load with a fixed schema) would fail. A column that may be NULL goes through a
    CASE with a NULL branch, so it is always OPTIONAL; a NOT NULL column stays REQUIRED."""
    columns = conn.execute(
        "SELECT column_name, is_nullable = 'YES' FROM information_schema.columns "
        "WHERE table_schema = 'marts' AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()
    return ", ".join(f"CASE WHEN {quote(name)} IS NOT NULL THEN {quote(name)} END AS {quote(name)}" if nullable
                     else quote(name) for name, nullable in columns)


def _write_version(conn: duckdb.DuckDBPyConnection, building: Path, final: Path, *, run_id: str, as_of: str,
                   extra_files: dict[str, Path] | None) -> tuple[Path, dict]:
    """Every mart and extra file into ``building``, its manifest last, then renamed ``final`` in one step."""
    row_counts: dict[str, int] = {}
    for table in mart_tables(conn):
        target = building / f"{table}.parquet"
        conn.execute(f"SET preserve_insertion_order = {str(table not in UNORDERED_MARTS).lower()}")
        # a history as this run reads it: no day of a run the publish gates blocked, no later day (a backfill)
        relation = (published_history(conn, f"marts.{table}", date.fromisoformat(as_of))
                    if f"marts.{table}" in HISTORY_TABLES else f"marts.{quote(table)}")
        conn.execute(f"COPY (SELECT {_declared_nullability(conn, table)} FROM {relation}) "
                     f"TO '{_sql_string(str(target))}' (FORMAT parquet)")
        row_counts[table] = conn.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
    for name, source in (extra_files or {}).items():
        shutil.copyfile(source, building / name)
    manifest = {
        "as_of": as_of,
        "run_id": run_id,
        "published_at": datetime.now().astimezone().isoformat(timespec="seconds"),  # with the clock's offset
        "schema_version": SCHEMA_VERSION,
        "row_counts": row_counts,
        "files": sorted([f"{t}.parquet" for t in row_counts] + list(extra_files or {})),
    }
    (building / MANIFEST).write_text(json.dumps(manifest, indent=2))
    os.replace(building, final)
    return final, manifest


def version_name(sequence: int, published: datetime, run_id: str) -> str:
    """A set's folder name: its sequence number, which orders the sets, then the local time of its publish and
    its run, for people. The time cannot order them: the clock repeats an hour when daylight saving time ends
    and goes back when it is set back."""
    return f"{sequence:0{SEQUENCE_DIGITS}d}_{published:%Y%m%dT%H%M%S%f}_{run_id[:8]}"


def version_sequence(name: str) -> int:
    """The sequence number of a version folder; 0 for one named before the numbers (only its time and run):
    older than every numbered set."""
    numbered = SEQUENCE.match(name)
    return int(numbered.group(1)) if numbered else 0


def _complete_versions(versions: Path) -> list[Path]:
    """The complete sets under ``versions``, oldest first: by sequence number, sets named before the numbers by
    their time among themselves."""
    complete = (p for p in versions.iterdir() if p.is_dir() and not p.name.startswith("."))
    return sorted(complete, key=lambda folder: (version_sequence(folder.name), folder.name))


def _next_sequence(versions: Path) -> int:
    """One more than the largest sequence number published; runs publish one at a time (the publish folder's
    lock), so no two sets get the same."""
    complete = _complete_versions(versions) if versions.is_dir() else []
    return version_sequence(complete[-1].name) + 1 if complete else 1


def _prune_versions(versions: Path, keep: set[Path]) -> None:
    """Keep the newest few complete sets (readers may still hold an older one open) and those in ``keep``."""
    complete = _complete_versions(versions)
    for old in complete[:-KEEP_VERSIONS]:
        if old.resolve() not in keep:
            shutil.rmtree(old, ignore_errors=True)
    for leftover in versions.glob(".*.building"):
        shutil.rmtree(leftover, ignore_errors=True)


def _sql_string(text: str) -> str:
    return text.replace("'", "''")


class MartNotPublished(Exception):
    """No run has produced the mart at the given place yet."""


def load_mart(table: str, *, publish_dir: Path | None = None, warehouse: Path | None = None,
              distinct: str | None = None) -> pd.DataFrame:
    """The latest version of a mart: the published Parquet file, or the warehouse opened read-only;
    ``distinct``: only that column's distinct values (read by DuckDB, not the whole mart)."""
    select = f"SELECT DISTINCT {quote(distinct)}" if distinct else "SELECT *"
    if warehouse is not None:
        if not warehouse.exists():
            raise MartNotPublished(f"no warehouse at {warehouse}: run 'soe run' first")
        running = run_lock.held_elsewhere(warehouse)
        if running:  # opening the live file now could make the run's next step fail to open it
            raise MartNotPublished(f"a run is writing the warehouse {warehouse} now ({running}): read the "
                                   "published marts (--publish) instead, or wait for it to end")
        try:
            conn = duckdb.connect(str(warehouse), read_only=True)
        except duckdb.Error as error:  # not a DuckDB file, or another process writes it
            if is_lock_conflict(error):  # which process, and what to do, rather than DuckDB's lock error
                raise MartNotPublished(f"the warehouse {warehouse} is held by another process{lock_holder(error)} "
                                       "that writes it: read the published marts (--publish) instead, or wait for "
                                       "it to close the file") from None
            raise MartNotPublished(f"cannot open the warehouse {warehouse} ({error})") from None
        with conn:
            if table not in mart_tables(conn):
                raise MartNotPublished(f"{warehouse} has no marts.{table} yet: run 'soe run' first")
            return conn.execute(f"{select} FROM marts.{quote(table)}").df()
    path = Path(publish_dir or ".") / f"{table}.parquet"
    if not path.exists():
        raise MartNotPublished(f"no published {table} at {path}: run 'soe run' (or 'soe demo') first")
    try:
        if distinct:
            with duckdb.connect() as conn:
                return conn.execute(f"{select} FROM read_parquet(?)", [str(path)]).df()
        return pd.read_parquet(path)
    except (OSError, ValueError, duckdb.Error) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise MartNotPublished(f"{path} is not a readable Parquet file: {error}") from None
