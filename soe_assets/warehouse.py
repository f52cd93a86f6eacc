"""The DuckDB warehouse shared by the Python stages and dbt.

DuckDB allows one writing process per file and dbt keeps its connection open
for the whole build, so every stage opens the file only for the duration of
its own step (the in-process executor runs one step at a time).
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from data_contracts.sql_rules import quote
from soe_assets.duckdb_settings import DUCKDB_INTERRUPTED, LOCK_WAIT_SECONDS, memory_limit


class WarehouseHeld(duckdb.IOException):
    """Another process held the warehouse file for all of the wait: its message says which and what to do, in
    place of DuckDB's lock error."""


def is_lock_conflict(error: duckdb.Error) -> bool:
    """DuckDB refused to open the file because another process holds it."""
    return isinstance(error, duckdb.IOException) and "Could not set lock" in str(error)


def open_warehouse(path: str | Path, *, read_only: bool = False, config: dict | None = None,
                   lock_wait: float = LOCK_WAIT_SECONDS,
                   on_wait: Callable[[duckdb.Error], None] | None = None) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, waiting up to ``lock_wait`` seconds while another process holds the file's lock;
    ``on_wait`` is told once, when the wait begins (by default the user is, on stderr: the terminal of
    `soe run`, a step's log in the UI; a run that stands still says why). Raises ``WarehouseHeld`` when the
    wait ends with the file still held."""
    deadline = time.monotonic() + lock_wait
    waiting = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.IOException as error:
            if not is_lock_conflict(error):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseHeld(
                    f"the warehouse {path} is held by another process{lock_holder(error)}, which did not let go within "
                    f"{lock_wait:g} s: close that process or its connection to the file (a notebook, a BI tool); "
                    "readers should read the published Parquet marts instead") from None
            if not waiting:
                (on_wait or (lambda held: _say_waiting(path, lock_wait, held)))(error)
            waiting = True
            time.sleep(0.2)


def lock_holder(error: duckdb.Error) -> str:
    """' (PID n)' for the process holding the file, where DuckDB's lock error names it."""
    pid = re.search(r"\(PID (\d+)\)", str(error))
    return f" (PID {pid.group(1)})" if pid else ""


def _say_waiting(path: str | Path, seconds: float, error: duckdb.Error) -> None:
    print(f"{path} is held by another process{lock_holder(error)}: waiting up to {seconds:g} s for it to let go ...",
          file=sys.stderr, flush=True)


# The warehouse connections of this process that ``connect`` has open: a stop signal interrupts their queries.
# Re-entrant: the garbage collector may finish a ``connect`` (its ``finally``) in the thread holding it.
_open_connections: set[duckdb.DuckDBPyConnection] = set()
_open_connections_guard = threading.RLock()


@contextmanager
def connect(path: str | Path, *, read_only: bool = False, threads: int = 2,
            lock_wait: float = LOCK_WAIT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = open_warehouse(path, read_only=read_only, config={"threads": threads, "memory_limit": memory_limit()},
                          lock_wait=lock_wait)
    with _open_connections_guard:
        _open_connections.add(conn)
    try:
        yield conn
    except Exception as error:
        if not interrupted_query(error):
            raise
        raise KeyboardInterrupt from None
    finally:
        with _open_connections_guard:
            _open_connections.discard(conn)
        conn.close()


def interrupt_queries() -> None:
    """Interrupt the query each open warehouse connection runs (a stop signal came; called from another thread).
    An idle connection is left as it is (DuckDB forgets an interrupt when its next query starts); a clean-up
    query the stopped stage starts before this call (dropping a temporary table, a rollback: what closing the
    connection does anyway) may be interrupted too."""
    with _open_connections_guard:
        connections = list(_open_connections)
    for conn in connections:
        with suppress(duckdb.Error):  # closed meanwhile
            conn.interrupt()


def close_open_connections() -> None:
    """Close the warehouse connections a stopped stage left open. The interrupt a stop signal raises in Python
    may come as a stage's connection is being left, before ``connect`` closes it; the connection would hold the
    file until the garbage collector met it, while the run's failure alert reads the warehouse."""
    with _open_connections_guard:
        connections = list(_open_connections)
        _open_connections.clear()
    for conn in connections:
        with suppress(duckdb.Error):
            conn.close()


def interrupted_query(error: BaseException) -> bool:
    """DuckDB met Ctrl-C (or a stop signal) during a query: it says so with an error of its own, not Python's
    KeyboardInterrupt, which a stage's connection turns it back into. Dagster then stops the run at once;
    a step failing with DuckDB's error let the next steps that do not depend on it run first."""
    return isinstance(error, duckdb.InterruptException) or (
        isinstance(error, RuntimeError) and str(error) == DUCKDB_INTERRUPTED)


@dataclass(frozen=True)
class RunContext:
    """The run parameters every stage reads from ``raw.run_context``."""

    as_of: date
    horizon_weeks: int
    time_fence_weeks: int
    run_id: str
    started_at: datetime


def replace_table(
    conn: duckdb.DuckDBPyConnection, schema: str, name: str, frame: pd.DataFrame, types: dict[str, str] | None = None
) -> None:
    """Create or replace ``schema.name`` from a frame, casting columns to the given SQL types."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
    types = types or {}
    select = ", ".join(
        f"CAST({quote(c)} AS {types[c]}) AS {quote(c)}" if c in types else quote(c) for c in frame.columns
    )
    conn.register("_frame", frame)
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {quote(schema)}.{quote(name)} AS SELECT {select} FROM _frame")
    finally:
        conn.unregister("_frame")


def table_exists(conn: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    # fetchall, not fetchone: a result left unfinished makes the connection refuse to register an Arrow stream
    return conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, name]
    ).fetchall()[0][0] > 0


# Which ingest (``raw.run_context``'s run_id) each table a stage builds was built from. The marts' dbt post-hook
# (dbt_project/macros/record_built.sql) writes the same records for the dbt marts.
BUILT_ON_INGEST = "ops.built_on_ingest"


def record_built(conn: duckdb.DuckDBPyConnection, *tables: str) -> None:
    """Note that ``tables`` (``schema.name``) were just built from the warehouse's current ingest."""
    ensure_table(conn, BUILT_ON_INGEST, {"table_name": "VARCHAR", "run_id": "VARCHAR"})
    conn.execute(f"DELETE FROM {BUILT_ON_INGEST} WHERE list_contains(?, table_name)", [list(tables)])
    conn.execute(f"INSERT INTO {BUILT_ON_INGEST} SELECT unnest(?), run_id FROM raw.run_context", [list(tables)])


def built_before_ingest(conn: duckdb.DuckDBPyConnection, tables: list[str]) -> list[str]:
    """Those of ``tables`` a stage built from an earlier ingest than the warehouse's current one: left from an
    earlier run (one that failed or stopped after it ingested, or stages materialised alone). A table no stage
    records (a view a user added, one from a warehouse older than these records) is none of them."""
    if not table_exists(conn, *BUILT_ON_INGEST.split(".")):
        return []
    stale = {name for (name,) in conn.execute(
        f"SELECT table_name FROM {BUILT_ON_INGEST} WHERE run_id IS DISTINCT FROM (SELECT run_id FROM raw.run_context)"
    ).fetchall()}
    return [table for table in tables if table in stale]


def built_from_latest_ingest(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether a stage recorded ``table`` as built from the warehouse's current ingest."""
    if not table_exists(conn, *BUILT_ON_INGEST.split(".")):
        return False
    return conn.execute(f"SELECT count(*) FROM {BUILT_ON_INGEST} WHERE table_name = ? "
                        "AND run_id = (SELECT run_id FROM raw.run_context)", [table]).fetchone()[0] > 0


# The as_of days whose set was published: history rows count only once their run's set reached the readers.
PUBLISHED_RUNS = "ops.published_runs"
HISTORY_TABLES = ("marts.exception_history", "marts.recommendation_history")


def ensure_published_runs(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the log of published days (every run's ingest does); a warehouse from before the log counts the
    history it holds as published."""
    if table_exists(conn, "ops", "published_runs"):
        return
    conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
    conn.execute(f"CREATE TABLE {PUBLISHED_RUNS} (as_of DATE, run_id VARCHAR, published_at TIMESTAMP)")
    earlier = [f"SELECT as_of FROM {table}" for table in HISTORY_TABLES if table_exists(conn, *table.split("."))]
    if earlier:
        conn.execute(f"INSERT INTO {PUBLISHED_RUNS} SELECT DISTINCT as_of, NULL, NULL FROM ({' UNION '.join(earlier)})")


# The published days of a history table whose rows a later run of the day that did not publish (blocked at the
# publish gates, failed, killed) replaced: their published rows are kept in ``ops.published_<history>``.
KEPT_DAYS_NAME = "published_history_kept"
KEPT_DAYS = f"ops.{KEPT_DAYS_NAME}"


def _kept_name(table: str) -> str:
    """The name, in schema ``ops``, of the table keeping ``table``'s rows of published days that an unpublished
    re-run replaced."""
    return "published_" + table.split(".")[1]


def _kept(table: str) -> str:
    return f"ops.{quote(_kept_name(table))}"


def record_published(conn: duckdb.DuckDBPyConnection, as_of: date, run_id: str) -> None:
    """Log ``as_of``'s set as published (a re-run of the day replaces its entry): the day's rows in the history
    tables are now those readers saw, and any copy of an earlier set's rows of the day is dropped."""
    ensure_published_runs(conn)
    conn.execute(f"DELETE FROM {PUBLISHED_RUNS} WHERE as_of = ?", [as_of])
    conn.execute(f"INSERT INTO {PUBLISHED_RUNS} VALUES (?, ?, now())", [as_of, run_id])
    if table_exists(conn, "ops", KEPT_DAYS_NAME):
        for (table,) in conn.execute(f"SELECT DISTINCT history_table FROM {KEPT_DAYS} WHERE as_of = ?", [as_of]).fetchall():
            conn.execute(f"DELETE FROM {_kept(table)} WHERE as_of = ?", [as_of])
        conn.execute(f"DELETE FROM {KEPT_DAYS} WHERE as_of = ?", [as_of])


def _keep_published_rows(conn: duckdb.DuckDBPyConnection, table: str, as_of: date) -> None:
    """Before a run replaces ``as_of``'s rows of ``table``: where that day's set was published, keep its rows
    (once, until a set of the day is published again), so a re-run that does not publish leaves later runs
    reading what the planners saw."""
    published = conn.execute(f"SELECT count(*) FROM {PUBLISHED_RUNS} WHERE as_of = ?", [as_of]).fetchone()[0]
    if not published:
        return
    conn.execute(f"CREATE TABLE IF NOT EXISTS {KEPT_DAYS} (history_table VARCHAR, as_of DATE)")
    if conn.execute(f"SELECT count(*) FROM {KEPT_DAYS} WHERE history_table = ? AND as_of = ?",
                    [table, as_of]).fetchone()[0]:
        return  # an earlier unpublished re-run kept them already: the table holds its rows, not the set's
    conn.execute(f"CREATE TABLE IF NOT EXISTS {_kept(table)} AS SELECT * FROM {table} LIMIT 0")
    conn.execute(f"INSERT INTO {_kept(table)} BY NAME SELECT * FROM {table} WHERE as_of = ?", [as_of])
    conn.execute(f"INSERT INTO {KEPT_DAYS} VALUES (?, ?)", [table, as_of])


def published_history(conn: duckdb.DuckDBPyConnection, table: str, as_of: date) -> str:
    """SQL (a subquery) over a history table: what a run for ``as_of`` reads and publishes of it. Its own rows,
    and those of earlier days as their set was published: a run blocked at the publish gates published nothing,
    so what it detected or recommended never reached a planner (where it re-ran a published day, that day's
    published rows stand, kept by ``replace_run_rows``), and a later day's rows (a backfill runs after them)
    are not yet history for it."""
    day = f"DATE '{as_of.isoformat()}'"
    if not table_exists(conn, "ops", "published_runs"):  # a warehouse no run ingested into
        return f"(SELECT * FROM {table} WHERE as_of <= {day})"
    published = f"as_of < {day} AND as_of IN (SELECT as_of FROM {PUBLISHED_RUNS})"
    # a run stopped between its history tables may have kept one table's rows and not yet the other's
    if not table_exists(conn, "ops", _kept_name(table)):
        return f"(SELECT * FROM {table} WHERE as_of = {day} OR ({published}))"
    kept_days = f"(SELECT as_of FROM {KEPT_DAYS} WHERE history_table = '{table}')"  # one of HISTORY_TABLES
    return (f"(SELECT * FROM {table} WHERE as_of = {day} OR ({published} AND as_of NOT IN {kept_days}) "
            f"UNION ALL BY NAME SELECT * FROM {_kept(table)} WHERE {published} AND as_of IN {kept_days})")


def ensure_table(conn: duckdb.DuckDBPyConnection, table: str, types: dict[str, str]) -> None:
    """Create ``schema.name`` with these columns unless it exists."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table.split('.')[0])}")
    columns = ", ".join(f"{quote(c)} {t}" for c, t in types.items())
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")


def replace_run_rows(conn: duckdb.DuckDBPyConnection, table: str, rows: pd.DataFrame, types: dict[str, str],
                     as_of: date) -> None:
    """Replace ``as_of``'s rows of a history table (columns ``types``) with ``rows``: a re-run never duplicates.

    Where the day's set was published, its rows are first kept aside (once: until a set of the day is published
    again, ``record_published``), so a re-run of the day that does not publish leaves later runs reading what
    the planners saw."""
    ensure_table(conn, table, types)
    select = ", ".join(f"CAST({quote(c)} AS {t}) AS {quote(c)}" for c, t in types.items())
    conn.register("_run_rows", rows[list(types)])
    try:
        conn.execute("BEGIN TRANSACTION")
        if table_exists(conn, "ops", "published_runs"):
            _keep_published_rows(conn, table, as_of)
        conn.execute(f"DELETE FROM {table} WHERE as_of = ?", [as_of])
        conn.execute(f"INSERT INTO {table} SELECT {select} FROM _run_rows")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("_run_rows")


def as_of_of_run(path: str | Path, run_id: str, ingests: bool = True) -> str:
    """The as_of a run worked on (ISO date): the one it ingested for, or for a run that does not ingest (assets
    materialized on their own) the warehouse's current one; '' when its ingest did not get that far or the
    warehouse cannot be read now (for an alert about the run: never an error of its own)."""
    if not Path(path).is_file():
        return ""
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            row = conn.execute("SELECT as_of FROM raw.run_context WHERE run_id = ? OR NOT ?", [run_id, ingests]
                               ).fetchone()
    except duckdb.Error:
        return ""
    return row[0].isoformat() if row else ""


def run_published(path: str | Path, run_id: str) -> str | None:
    """Whether the run's set of marts was published (a run killed right after publishing is still failed):
    'current' (readers get it: no later as_of was published), 'backfill' (a later as_of's set stays current) or
    'no'; None when the warehouse cannot be read now."""
    if not Path(path).is_file():
        return "no"
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            if not table_exists(conn, *PUBLISHED_RUNS.split(".")):
                return "no"
            row = conn.execute(f"SELECT as_of >= (SELECT max(as_of) FROM {PUBLISHED_RUNS}) FROM {PUBLISHED_RUNS} "
                               "WHERE run_id = ?", [run_id]).fetchone()
    except duckdb.Error:
        return None
    return "no" if row is None else "current" if row[0] else "backfill"


def read_run_context(conn: duckdb.DuckDBPyConnection) -> RunContext:
    row = conn.execute(
        "SELECT as_of, horizon_weeks, time_fence_weeks, run_id, started_at FROM raw.run_context"
    ).fetchone()
    if row is None:
        raise RuntimeError("raw.run_context is empty: run the ingest stage first")
    return RunContext(*row)
