"""The Dagster instance's storage for soe: the SQLite event log and the steps' captured output.

Event log: Dagster's SQLite storage, keeping a database engine per file instead of one per event.

Dagster's ``SqliteEventLogStorage`` creates a new SQLAlchemy engine, and so a
new SQLite connection, for every event it writes: no statement is compiled
twice, and every write pays for opening the file and closing it (the close
checkpoints the WAL). A run writes ~400 events (each asset's planned and
materialised events, each check's planned event and result), which cost ~4 s
of every run whatever its size. This storage keeps the engines of the files it
used last and is otherwise Dagster's own: same files, same schema, same
layout, so the UI and the daemon read the history as before.

Captured output: Dagster's local compute logs, whose helper processes do not
take the terminal's Ctrl-C (``QuietLocalComputeLogManager``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
import signal
from typing import Any

import sqlalchemy as db
from dagster._core.storage.compute_log_manager import CapturedLogContext
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine

# A run writes to its own file and the index; a few more cover the UI reading recent runs.
ENGINES_KEPT = 8


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with the engines of the last ``ENGINES_KEPT`` files kept open."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = db.create_engine(
                self.conn_string_for_shard(shard), connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
            )
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            self._engines[shard] = engine
            while len(self._engines) > ENGINES_KEPT:
                self._engines.popitem(last=False)[1].dispose()
        self._engines.move_to_end(shard)
        return engine

    def _dispose_engines(self) -> None:
        while self._engines:
            self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        with self._db_lock:
            self._dispose_engines()  # the files are about to be deleted
        super().wipe()

    def dispose(self) -> None:
        with self._db_lock:
            self._dispose_engines()
        super().dispose()


class QuietLocalComputeLogManager(LocalComputeLogManager):
    """``LocalComputeLogManager`` whose helper processes ignore the terminal's Ctrl-C.

    Dagster mirrors a run's captured output to the terminal through a ``tail``
    per stream and a Python process watching for the run's death. Ctrl-C
    reaches the terminal's whole process group: each watcher died of it with a
    ``KeyboardInterrupt`` traceback beside soe's own message. They are started
    with SIGINT blocked (a child inherits the signal mask), and Dagster ends
    them as the capture ends, interrupted or not.
    """

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> QuietLocalComputeLogManager:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Iterator[CapturedLogContext]:
        with ExitStack() as capture:
            previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                context = capture.enter_context(super().capture_logs(log_key))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            yield context
