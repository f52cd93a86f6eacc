"""Which stop signal ended a command: Ctrl-C (SIGINT) or a request to stop (SIGTERM: ``kill``, systemd,
Kubernetes, a cron wrapper's timeout).

Both stop a run the same way; the exit code tells them apart, as a shell reports a process a signal ended:
128 + the signal's number, 130 for SIGINT and 143 for SIGTERM. While Dagster executes a run it answers
SIGTERM with its own SIGINT handler, so no handler of soe's could tell which signal came; Python's wakeup
file descriptor receives the number of every signal a Python handler takes, whichever handler that is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

# What a command stopped by each signal says it was.
STOPPED = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated (SIGTERM)"}

_received: list[int] = []  # signal numbers read from the wakeup pipe, in the order they came
_wakeup_pipe: int | None = None  # its read end while ``noted`` is active


@contextlib.contextmanager
def noted() -> Iterator[None]:
    """For the block: SIGTERM stops the command as Ctrl-C does (a ``KeyboardInterrupt`` where Dagster does
    not handle it), and the signals that come are noted for ``received``. Only the main thread can set
    signal handlers: elsewhere the block runs as it is."""
    global _wakeup_pipe
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    for end in (read_end, write_end):
        os.set_blocking(end, False)
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    previous_handler = signal.signal(signal.SIGTERM, signal.default_int_handler)
    _received.clear()
    _wakeup_pipe = read_end
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous_handler is None else previous_handler)
        signal.set_wakeup_fd(previous_fd)
        _wakeup_pipe = None
        os.close(read_end)
        os.close(write_end)


def received() -> signal.Signals:
    """The first stop signal that reached the process within ``noted``; SIGINT when none did (a
    ``KeyboardInterrupt`` from elsewhere, a run outside ``noted``)."""
    if _wakeup_pipe is not None:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(_wakeup_pipe, 256):
                _received.extend(chunk)
    return next((signal.Signals(number) for number in _received if number in STOPPED), signal.SIGINT)


def exit_code(stop: signal.Signals) -> int:
    """The exit code of a command ``stop`` ended: 128 + the signal's number, as shells report it."""
    return 128 + stop
