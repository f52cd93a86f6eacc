"""A terse Dagster logger for the terminal: one line per stage event and progress message."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import TYPE_CHECKING

import dagster as dg

from soe_assets.duckdb_settings import DUCKDB_INTERRUPTED
from soe_assets.terminal import say

STAGE_EVENTS = {"STEP_START": "started", "STEP_SUCCESS": "done", "STEP_FAILURE": "FAILED"}
SKIPPED_STEP = "Dependencies for step "  # Dagster's message for each step a failed one leaves undone
# dagster-dbt's notes on its own workings (the default selection it used, the parse state it copied): nothing a
# user acts on, and the run's dbt step says what it built.
LIBRARY_NOTES = ("A dbt subsetted execution is not being performed", "Copying `")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

if TYPE_CHECKING:  # the form a step failure event carries its error in
    from dagster._utils.error import SerializableErrorInfo


# How many steps this process has seen start: a run that fails in Dagster's own storage (a full disk) did start
# once one has.
steps_started = 0


class _ProgressHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        if meta is None:
            return
        event = meta.get("dagster_event")
        step = meta.get("step_key") or ""
        if event is None:
            message = ANSI.sub("", meta["orig_message"]).strip()
            # after a failed step, every step after it says it is not executed: the run's end says so once
            if message.startswith((SKIPPED_STEP, *LIBRARY_NOTES)):
                return
            if step and message and record.levelno >= logging.INFO:
                say(f"    {message}", file=sys.__stdout__, flush=True)
            return
        kind = event.event_type_value
        if kind not in STAGE_EVENTS:
            return
        now = time.monotonic()
        if kind == "STEP_START":
            global steps_started
            steps_started += 1
            self._started[step] = now
            say(f"[{step}] started", file=sys.__stdout__, flush=True)
        else:
            elapsed = now - self._started.get(step, now)
            say(f"[{step}] {STAGE_EVENTS[kind]} in {elapsed:.1f} s", file=sys.__stdout__, flush=True)
            if kind == "STEP_FAILURE" and event.step_failure_data and event.step_failure_data.error:
                reasons = failure_reasons(event.step_failure_data.error)
                for prefix, reason in zip(["", *["caused by: "] * len(reasons)], reasons):
                    say(f"    {prefix}{reason}", file=sys.__stderr__, flush=True)


# The errors a step ends with on Ctrl-C or a stop signal: Dagster's own, or DuckDB's when the signal came
# during a query ("Query interrupted": an InterruptException when the query was interrupted through its
# connection, a plain RuntimeError when DuckDB met the SIGINT itself), or Python's.
INTERRUPTION_ERRORS = frozenset({"DagsterExecutionInterruptedError", "InterruptException", "KeyboardInterrupt"})
DUCKDB_SIGINT = ("RuntimeError", DUCKDB_INTERRUPTED)
INTERRUPTED = "interrupted (Ctrl-C or a stop signal)"
# What Dagster wraps a step's own error in.
STEP_ERROR_WRAPPER = "DagsterExecutionStepExecutionError"


def _is_interruption(error: SerializableErrorInfo) -> bool:
    return error.cls_name in INTERRUPTION_ERRORS or (
        error.cls_name == DUCKDB_SIGINT[0] and readable_error(error) == DUCKDB_SIGINT[1])


def readable_error(error: SerializableErrorInfo) -> str:
    """An error's message as a user reads it: without the qualified class name Python puts first
    ('dagster._core.errors.DagsterAssetCheckFailedError: ...'), its further lines indented under it."""
    message = re.sub(rf"^(?:[\w.]+\.)?{re.escape(error.cls_name or '')}: ", "", error.message.strip(), count=1)
    # dbt colours its verdicts ('\x1b[31mERROR\x1b[0m'): an alert or a log file would show the codes as they are
    return ANSI.sub("", message).replace("\n", "\n    ")


def failure_reasons(error: SerializableErrorInfo | None) -> list[str]:
    """A step's error and its causes as a user reads them (the user's own error is the innermost); a run
    interrupted anywhere in the chain is that alone."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause
    if any(_is_interruption(link) for link in chain):
        return [INTERRUPTED]
    if chain and chain[0].cls_name == STEP_ERROR_WRAPPER and len(chain) > 1:
        chain = chain[1:]  # 'Error occurred while executing op "<step>":' says the step its reader has been told
    return [readable_error(link) for link in chain]


@dg.logger(description="Terse progress lines for the soe command line.")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.getLogger("soe.progress")
    logger.setLevel(logging.DEBUG)  # step events are logged at DEBUG
    logger.handlers = [_ProgressHandler()]
    logger.propagate = False
    return logger
