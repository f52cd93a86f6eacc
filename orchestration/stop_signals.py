"""Which stop signal ended a command: Ctrl-C (SIGINT) or a request to stop (SIGTERM: ``kill``, systemd,
Kubernetes, a cron wrapper's timeout), and stopping the DuckDB queries running when it came.

Both stop a run the same way; the exit code tells them apart, as a shell reports a process a signal ended:
128 + the signal's number, 130 for SIGINT and 143 for SIGTERM. While Dagster executes a run it answers
SIGTERM with its own SIGINT handler, so no handler of soe's could tell which signal came; Python's wakeup
file descriptor receives the number of every signal a Python handler takes, whichever handler that is.

A thread waits on that descriptor: Python runs its handlers in the main thread only, between two steps
of Python code, and a DuckDB query on two threads may not let the main thread see the signal until the
query ends (14 s for one grouping of 150M rows here). The thread hears the signal at once and interrupts
the queries (``on_stop``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator

# What a command stopped by each signal says it was.
STOPPED = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated (SIGTERM)"}
# How long ``received`` waits for the watching thread to note the signal that raised the interrupt.
NOTE_WAIT_SECONDS = 1.0

_received: list[signal.Signals] = []  # the stop signals that came within ``noted``, in order
_noted = threading.Event()  # set once one came
_watching = threading.Event()  # set while ``noted`` is active


@contextlib.contextmanager
def noted(on_stop: Callable[[], None] = lambda: None) -> Iterator[None]:
    """For the block: SIGTERM stops the command as Ctrl-C does (a ``KeyboardInterrupt`` where Dagster does
    not handle it), the stop signals that come are noted for ``received``, and ``on_stop`` is called from
    another thread as each comes. Only the main thread can set signal handlers: elsewhere the block runs as
    it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # the signal handler must never block on it
    _received.clear()
    _noted.clear()
    watcher = threading.Thread(target=_watch, args=(read_end, on_stop), name="soe-stop-signals", daemon=True)
    watcher.start()
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    previous_handler = signal.signal(signal.SIGTERM, signal.default_int_handler)
    _watching.set()
    try:
        yield
    finally:
        _watching.clear()
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous_handler is None else previous_handler)
        signal.set_wakeup_fd(previous_fd)
        os.close(write_end)  # the watcher reads the end of the pipe and stops
        watcher.join(timeout=5)
        if not watcher.is_alive():  # else the process is ending with it: its descriptor must not be reused
            os.close(read_end)
        _received.clear()
        _noted.clear()


def rearm_sigterm() -> None:
    """After a Dagster run inside ``noted``: SIGTERM stops the command again. Dagster ends a run by giving SIGTERM
    SIGINT's handler, which a script that starts soe in the background sets to ignore: ``kill`` was ignored from
    the end of the run (its alerts, its summary) until soe exited."""
    if _watching.is_set() and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def _watch(read_end: int, on_stop: Callable[[], None]) -> None:
    """The signals the wakeup descriptor receives, until the pipe is closed: each stop signal noted, then
    ``on_stop`` (whose failure must not end the watch: the next signal is noted all the same)."""
    while numbers := os.read(read_end, 256):
        stops = [signal.Signals(number) for number in numbers if number in STOPPED]
        if stops:
            _received.extend(stops)
            _noted.set()
            with contextlib.suppress(Exception):
                on_stop()


def received() -> signal.Signals:
    """The first stop signal that reached the process within ``noted``; SIGINT when none did (a
    ``KeyboardInterrupt`` from elsewhere, a run outside ``noted``)."""
    _noted.wait(NOTE_WAIT_SECONDS)  # the main thread may meet the interrupt before the watcher notes it
    return _received[0] if _received else signal.SIGINT


def exit_code(stop: signal.Signals) -> int:
    """The exit code of a command ``stop`` ended: 128 + the signal's number, as shells report it."""
    return 128 + stop
