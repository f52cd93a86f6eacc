"""One pipeline run at a time per warehouse.

DuckDB locks the warehouse file only while a connection is open, and every
stage opens it for its own step only: between steps a second run could start
and interleave its steps with the first one's (each would then read the
other's run context). A run therefore holds ``<warehouse>.run-lock`` from
start to end, an advisory ``flock`` the operating system releases when the
process ends, even when it is killed.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path


class WarehouseBusy(Exception):
    """Another process is running the pipeline on this warehouse (its message says which)."""


# Per lock file, the descriptor holding it and how many holders in this process share it: a `soe run` takes
# the lock before it starts the job, and the job's warehouse resource takes it again in the same process.
_held: dict[Path, list[int]] = {}
_guard = threading.Lock()


def lock_path(warehouse: str | Path) -> Path:
    warehouse = Path(warehouse).resolve()
    return warehouse.with_name(warehouse.name + ".run-lock")


def acquire(warehouse: str | Path, holder: str) -> None:
    """Take the warehouse's run lock for ``holder`` (what is running, for the message another run prints);
    raises ``WarehouseBusy`` when another process holds it."""
    path = lock_path(warehouse)
    with _guard:
        if path in _held:
            _held[path][1] += 1
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            raise WarehouseBusy(f"another soe run is using the warehouse {Path(warehouse)}"
                                + (f" ({other})" if other else "") + "; wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder}, pid {os.getpid()} on {socket.gethostname()}, since "
                      f"{datetime.now().isoformat(timespec='seconds')}".encode(), 0)
        _held[path] = [fd, 1]


def release(warehouse: str | Path) -> None:
    """Give back one hold of the lock; the last one in this process unlocks it."""
    path = lock_path(warehouse)
    with _guard:
        held = _held.get(path)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _held[path]
            os.ftruncate(held[0], 0)
            os.close(held[0])  # closing the descriptor releases the flock


@contextmanager
def holding(warehouse: str | Path, holder: str) -> Iterator[None]:
    acquire(warehouse, holder)
    try:
        yield
    finally:
        release(warehouse)
