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
import time
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


# How long ``acquire`` tries again while the lock is taken: a process looking (``held_elsewhere``) holds it for
# microseconds, a run for minutes.
PROBE_RETRIES = 10
PROBE_RETRY_SECONDS = 0.05


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
        other, left_running = _try_lock(fd)
        for _ in range(PROBE_RETRIES - 1):  # no wait after the last try
            if other is None:
                break
            time.sleep(PROBE_RETRY_SECONDS)
            other, left_running = _try_lock(fd)
        if other is not None:
            os.close(fd)
            raise WarehouseBusy(f"another soe run is using the warehouse {Path(warehouse)}"
                                + (f" ({other})" if other else "") + "; wait for it to finish")
        if left_running:
            os.close(fd)
            raise WarehouseBusy(f"a dbt build (pid {', '.join(map(str, left_running))}) left by a run that was killed is "
                                f"still writing the warehouse {Path(warehouse)}; wait for it to end, or stop it "
                                f"(kill {' '.join(map(str, left_running))})")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder}, pid {os.getpid()} on {socket.gethostname()}, since "
                      f"{datetime.now().isoformat(timespec='seconds')}".encode(), 0)
        _held[path] = [fd, 1]


CHILD = "child pid "


def record_child(warehouse: str | Path, pid: int) -> None:
    """Note a process the run started that writes the warehouse itself (dbt): the lock ends with the run's
    process, but a killed run's child can live on, and the next run must not start beside it."""
    with _guard:
        held = _held.get(lock_path(warehouse))
        if held is not None:
            end = os.fstat(held[0]).st_size
            os.pwrite(held[0], f"\n{CHILD}{pid} on {socket.gethostname()}".encode(), end)


def _children_alive(previous_holder: str) -> list[int]:
    """The children a previous holder recorded (``record_child``) that still run on this machine."""
    host = socket.gethostname()
    alive = []
    for line in previous_holder.splitlines():
        if line.startswith(CHILD) and line.endswith(f" on {host}"):
            pid = int(line[len(CHILD):].split()[0])
            if process_alive(pid) and is_dbt_process(pid):
                alive.append(pid)
    return alive


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process now holds the number
    return True


def held_elsewhere(warehouse: str | Path) -> str | None:
    """Who keeps a run from starting on the warehouse now (another process holding its lock, or a killed
    run's dbt build still writing it), or None: for a sensor deciding whether to request a run."""
    path = lock_path(warehouse)
    with _guard:
        if path in _held or not path.exists():
            return None
        try:
            fd = os.open(path, os.O_RDONLY)  # flock needs no write access: a reader may look in a read-only folder
        except OSError:
            return None  # cannot look: DuckDB's own lock still refuses a file another process writes
        try:
            other, left_running = _try_lock(fd, exclusive=False)  # lookers share it; a run holds it alone
        finally:
            os.close(fd)  # releases the lock if it was taken
    if other is not None:
        return other or "another process"
    return f"a dbt build (pid {', '.join(map(str, left_running))}) left by a killed run" if left_running else None


def _try_lock(fd: int, exclusive: bool = True) -> tuple[str | None, list[int]]:
    """Take the lock on ``fd`` (shared: only to look). Another process holding it: (what it wrote, on one line;
    []). Taken: (None, the dbt builds a killed previous holder left running, see ``record_child``)."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return "; ".join(line for line in _content(fd).splitlines() if line.strip()), []
    return None, _children_alive(_content(fd))


def _content(fd: int) -> str:
    return os.pread(fd, 4096, 0).decode("utf-8", "replace")


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


def is_dbt_process(pid: int) -> bool:
    """Whether the process is still a dbt one (its pid may have been reused since); where ``/proc`` cannot
    tell, assume it is."""
    try:
        return b"dbt" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return not Path("/proc/self").exists()
