"""The ``soe`` command line: generate a sample network, run the pipeline, look at results."""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from orchestration import stop_signals
from soe_assets import run_lock
from soe_assets.alerts import ALERT_LOG_ENV, ALERT_LOG_NAME, default_alert_log
from soe_assets.duckdb_settings import (DEFAULT_MEMORY_LIMIT, LOCK_WAIT_SECONDS, MEMORY_LIMIT_ENV, InvalidMemoryLimit,
                                       memory_limit)
from soe_assets.run_window import MAX_HORIZON_WEEKS, parse_iso_day, window_problem
from soe_assets.terminal import say

if TYPE_CHECKING:  # imported when a run needs them: they take seconds, and `soe --help` should not
    import dagster as dg

    from orchestration.resources import QualitySettings

DEFAULT_DEMO_DIR = Path("soe-demo")

# The first line of the dagster.yaml soe writes; without it the file is left as it is.
INSTANCE_CONFIG_MARK = "# Written by soe for this folder; delete this line to keep your own changes."
# What earlier versions wrote, replaced like a file with the mark.
PREVIOUS_INSTANCE_CONFIGS = ("telemetry:\n  enabled: false\n",)


def instance_config(dagster_home: Path) -> str:
    """The Dagster instance of a soe folder: Dagster's SQLite event log and captured output in their usual places
    (``history/runs``, ``storage``), without a new connection per event and with the output's helper processes
    deaf to Ctrl-C (``orchestration/instance_storage.py``)."""
    event_logs = json.dumps(str(dagster_home / "history" / "runs"))  # a JSON string is a YAML string
    compute_logs = json.dumps(str(dagster_home / "storage"))
    return (
        f"{INSTANCE_CONFIG_MARK}\n"
        "telemetry:\n  enabled: false\n"
        "event_log_storage:\n  module: orchestration.instance_storage\n  class: PooledSqliteEventLogStorage\n"
        f"  config:\n    base_dir: {event_logs}\n"
        "compute_logs:\n  module: orchestration.instance_storage\n  class: QuietLocalComputeLogManager\n"
        f"  config:\n    base_dir: {compute_logs}\n"
    )


class UserError(Exception):
    """A mistake the user can fix; printed without a traceback."""

    exit_code = 2  # the command could not start


class RunStopped(UserError):
    """A run that had started and could not go on for a reason outside it (its run history cannot be written)."""

    exit_code = 1


class RunInterrupted(Exception):
    """A run stopped by Ctrl-C or a stop signal, whose end was already said: exit code 128 + the signal's
    number (130, 143 for SIGTERM), nothing more."""


@dataclass(frozen=True)
class Workspace:
    """Where one soe installation keeps its data."""

    landing: Path
    warehouse: Path
    publish: Path

    @property
    def dagster_home(self) -> Path:
        return self.warehouse.parent / "dagster_home"

    def export(self) -> None:
        """Make the paths visible to dbt's profile and to the ``EnvVar`` resources of the UI."""
        os.environ["SOE_LANDING_DIR"] = str(self.landing.resolve())
        os.environ["SOE_WAREHOUSE"] = str(self.warehouse.resolve())
        os.environ["SOE_PUBLISH_DIR"] = str(self.publish.resolve())
        home = self.dagster_home.resolve()
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        current, wanted = (config.read_text() if config.exists() else None), instance_config(home)
        ours = current is None or current in PREVIOUS_INSTANCE_CONFIGS or current.startswith(INSTANCE_CONFIG_MARK)
        if ours and current != wanted:  # a new folder, or one moved: the file names the folder
            staged = config.with_name(f".dagster.yaml.{os.getpid()}")
            staged.write_text(wanted)
            os.replace(staged, config)  # a UI starting meanwhile reads the old file or the new, never half
        os.environ["DAGSTER_HOME"] = str(home)
        os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def demo_workspace(folder: Path) -> Workspace:
    """The folder's layout: ``landing/``, ``warehouse/soe.duckdb`` and ``publish/`` (``soe demo``'s), or, where only
    that exists, ``warehouse/publish/``: where ``soe run --warehouse <folder>/warehouse/soe.duckdb`` publishes."""
    warehouse = folder / "warehouse" / "soe.duckdb"
    publish = folder / "publish"
    if not publish.exists() and (warehouse.parent / "publish").is_dir():
        publish = warehouse.parent / "publish"
    return Workspace(landing=folder / "landing", warehouse=warehouse, publish=publish)


def _iso_date(text: str) -> date:
    """A day written YYYY-MM-DD only (Python also reads 20261120 and 2026-W47-5, which the help does not offer)."""
    try:
        return parse_iso_day(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"'{text}' must be at least {minimum}")
    return value


def _port(text: str) -> int:
    value = _whole_number(text, 1)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port (1 to 65535)")
    return value


def _refuse_a_busy_port(host: str, port: int) -> None:
    """Another UI (or any server) on the port would answer the browser with its own warehouse, while this one
    kept running unseen: refuse before starting."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UserError(f"cannot serve on {host}:{port}: {error.strerror} (another 'soe ui'?); stop it "
                                "or pass --port") from None
            raise UserError(f"cannot serve on {host}:{port}: {error.strerror or error} (--host must name this "
                            "machine, e.g. 127.0.0.1 or 0.0.0.0)") from None


def _non_negative(text: str) -> int:
    return _whole_number(text, 0)


def _at_least_one(text: str) -> int:
    return _whole_number(text, 1)


# DuckDB's database files carry these bytes after an 8-byte checksum.
DUCKDB_MAGIC = b"DUCK"


QUOTES_DBT_CANNOT_NAME = "'\""
# Names DuckDB keeps for its own databases: a file named so is attached under another name, which dbt misses.
DUCKDB_RESERVED_NAMES = {"main", "temp", "system"}


def _refuse_unusable_settings() -> None:
    """Settings from the environment that would fail the run, or its daemon's sensors, once it is under way."""
    _refuse_unusable_webhook()
    _refuse_unusable_calendar()
    _refuse_unusable_quality_settings()


def _refuse_unusable_quality_settings() -> None:
    """The data-quality settings the definitions read as they load: a bad one would break the code location."""
    from orchestration.resources import QualitySettings

    try:
        QualitySettings.from_env()
    except ValueError as error:
        raise UserError(str(error)) from None


def _refuse_unusable_ui_settings() -> None:
    """What the UI's runs and daemon read from the environment: the memory budget of runs launched there and the
    landing-zone sensor's settle time (``soe run`` checks its budget with its own --memory-limit)."""
    from orchestration.sensors import settle_seconds

    try:
        memory_limit()
        settle_seconds()
    except ValueError as error:
        raise UserError(str(error)) from None


def _refuse_unusable_calendar() -> None:
    """A ``SOE_SOP_CALENDAR`` that cannot be read would fail every run's S&OP feedback, and publishing with it."""
    from soe_assets.feedback.calendar import CALENDAR_ENV, read_calendar_file

    path = os.environ.get(CALENDAR_ENV, "").strip()
    if not path:
        return
    try:
        read_calendar_file(Path(path))
    except OSError as error:
        raise UserError(f"{CALENDAR_ENV}={path} cannot be read: {error.strerror or error}") from None
    except ValueError as error:  # no cycle_date column, or a value that is no ISO date
        raise UserError(f"{CALENDAR_ENV}={path}: {error}") from None


def _refuse_unusable_webhook() -> None:
    """A webhook URL that cannot be POSTed to is a mistake to fix before the run, not an alert lost in it."""
    from soe_assets.alerts import WEBHOOK_ENV, webhook_url_problem

    url = os.environ.get(WEBHOOK_ENV, "").strip()
    problem = webhook_url_problem(url) if url else None
    if problem:
        raise UserError(f"{WEBHOOK_ENV} is not a usable webhook URL: {problem} (its value is not shown here: "
                        "it usually holds a secret token)")


def _refuse_non_database(path: Path) -> None:
    """Refuse a ``--warehouse`` a run cannot build: something other than a DuckDB database, or a file name DuckDB
    or dbt cannot address, before anything is written beside it (the publish folder, the run lock)."""
    _refuse_unreadable_database(path)
    if path.stem.lower() in DUCKDB_RESERVED_NAMES:
        # DuckDB renames such a database when it attaches it; dbt-duckdb addresses it by the file's name
        raise UserError(f"cannot use {path} as the warehouse: DuckDB reserves the name '{path.stem}' for a "
                        f"database of its own; name the file otherwise, e.g. {path.with_name('soe.duckdb')}")
    quotes = sorted(set(path.stem) & set(QUOTES_DBT_CANNOT_NAME))
    if quotes:
        # dbt-duckdb names the database after the file and writes that name into its SQL unescaped
        raise UserError(f"cannot use {path} as the warehouse: dbt cannot address a database whose file name "
                        f"holds {' or '.join(quotes)}; name the file without it, e.g. "
                        f"{path.with_name('soe.duckdb')}")


def _refuse_unreadable_database(path: Path) -> None:
    """Refuse a ``--warehouse`` that is a folder, or a file other than a DuckDB database (all a reader needs)."""
    if path.is_dir():
        raise UserError(f"cannot use {path} as the warehouse: it is a folder; name the database file in it, "
                        f"e.g. {path / 'soe.duckdb'}")
    if not path.exists():
        return
    try:
        with path.open("rb") as file:
            header = file.read(12)
    except OSError as error:
        raise UserError(f"cannot use {path} as the warehouse: {error.strerror or error}") from None
    if header[8:12] != DUCKDB_MAGIC:  # an empty file too: DuckDB refuses to open it
        raise UserError(f"cannot use {path} as the warehouse: the file exists, but it is not a DuckDB database"
                        + (" (it is empty)" if not header else ""))


def _check_warehouse_file(path: Path, lock_wait: float) -> None:
    """An existing warehouse must be a DuckDB database that no other process holds (waited for ``lock_wait``
    seconds)."""
    if not path.exists():
        return
    import duckdb

    from soe_assets.warehouse import WarehouseHeld, open_warehouse

    try:
        open_warehouse(path, lock_wait=lock_wait).close()
    except WarehouseHeld as held:  # it says which file, which process and what to do
        raise UserError(str(held)) from None
    except duckdb.Error as error:
        raise UserError(f"cannot use {path} as the warehouse: {error}") from None


def _file_in_the_way(folder: Path) -> Path | None:
    """A file standing where ``folder`` or one of its parents should be."""
    return next((path for path in (folder, *folder.parents) if path.exists() and not path.is_dir()), None)


def _os_problem(folder: Path, error: OSError) -> str:
    """What stops a folder being made or written, in the user's terms: a file where the path needs a folder
    ('File exists' says it poorly), else the system's words."""
    in_the_way = _file_in_the_way(folder)
    return f"{in_the_way} is a file, not a folder" if in_the_way else (error.strerror or str(error))


def _no_file_in_the_way(folder: Path, what: str) -> None:
    """A user error, before anything is created, if a file stands where ``folder`` should be."""
    in_the_way = _file_in_the_way(folder)
    if in_the_way:
        raise UserError(f"cannot create the {what} folder {folder}: {in_the_way} is a file, not a folder")


def _refuse_unusable_alert_log(warehouse: Path) -> None:
    """The alert log takes an append per alert, from the first failed check on: one that cannot (a folder, a
    read-only file) would otherwise be found only then, when the alert has nowhere to go."""
    log = default_alert_log(warehouse)
    if log.is_dir():
        raise UserError(f"the alert log {log} is a folder: alerts are appended to a file "
                        f"(${ALERT_LOG_ENV} names it; default {ALERT_LOG_NAME} beside the warehouse)")
    if log.exists() and not os.access(log, os.W_OK):
        raise UserError(f"cannot append to the alert log {log}: permission denied")


def _writable_folder(folder: Path, what: str) -> None:
    """Create ``folder`` if needed; a user error (no traceback) if it cannot be created or written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the {what} folder {folder}: {_os_problem(folder, error)}") from None
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise UserError(f"cannot write in the {what} folder {folder}: {error.strerror or error}") from None


# --- generate -------------------------------------------------------------------------------


def _write_sample_network(out: Path, **options):
    """``generate_landing_zone`` into ``out``, its refusals and file-system failures as user errors."""
    from soe_assets.sample_network import LandingZoneExists, generate_landing_zone

    try:
        return generate_landing_zone(out, progress=print, **options)
    except LandingZoneExists as error:
        raise UserError(f"{error}: add --replace to delete its extracts and write the new network, "
                        "or choose another --out") from None
    except OSError as error:  # the folder is a file, or cannot be written
        raise UserError(f"cannot write the landing zone to {out}: {_os_problem(out, error)}") from None


# The days a sample can be written for: its extracts reach about half a year either side of as_of, and
# extracts carry dates from 1900-01-01 to 2199-12-31 only (README, "Dates").
SAMPLE_AS_OF_RANGE = (date(1901, 1, 1), date(2198, 12, 31))


# The largest sample `soe generate` writes: it simulates every SKU-location in memory, ~1.4 GB for 2M
# SKU-locations at plants and DCs, ~1.5 GB for 100k at stores (daily POS): ~8 GB at each limit.
MAX_SAMPLE_SKU_LOCATIONS = 2_000_000
MAX_SAMPLE_SKU_STORES = 500_000


def cmd_generate(args: argparse.Namespace) -> int:
    from soe_assets.sample_network import NetworkSize

    sku_locations, sku_stores = args.skus * (args.dcs + args.plants), args.skus * args.stores
    if sku_locations > MAX_SAMPLE_SKU_LOCATIONS or sku_stores > MAX_SAMPLE_SKU_STORES:
        raise UserError(f"--skus x (--dcs + --plants) is {sku_locations:,} and --skus x --stores {sku_stores:,}; a "
                        f"sample holds at most {MAX_SAMPLE_SKU_LOCATIONS:,} and {MAX_SAMPLE_SKU_STORES:,} (the "
                        "generator simulates every SKU-location in memory, a store's daily sales ~20 times a DC's "
                        "weeks; the 10M benchmark network, --skus 200000 --dcs 4, has 1,200,000 and none)")
    earliest, latest = SAMPLE_AS_OF_RANGE
    if args.as_of is not None and not earliest <= args.as_of <= latest:
        raise UserError(f"--as-of {args.as_of}: a sample's dates reach half a year around it, and extracts carry "
                        f"dates from 1900-01-01 to 2199-12-31 only; pick a day from {earliest} to {latest}")
    started = time.monotonic()
    summary = _write_sample_network(
        args.out,
        seed=args.seed,
        size=NetworkSize(skus=args.skus, dcs=args.dcs, plants=args.plants, stores=args.stores),
        as_of=args.as_of,
        replace=args.replace,
    )
    rows = sum(summary.rows_per_source.values())
    say(f"landing zone for as_of {summary.as_of} written to {args.out}: {rows:,} rows in "
          f"{len(summary.files_written)} files, {len(summary.planted_problems)} planted problems "
          f"({time.monotonic() - started:.1f} s)")
    return 0


# --- run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    as_of: date | None = None
    horizon_weeks: int = 13
    time_fence_weeks: int = 4
    max_open_exceptions: int = 0
    freshness_days: str = ""  # "source=days,..." over $SOE_FRESHNESS_DAYS and the contract defaults
    memory_limit: str = ""  # DuckDB's memory budget (empty: $SOE_DUCKDB_MEMORY_LIMIT or the default)
    reread: bool = False  # read every extract, even those the last run ingested as they are now
    lock_wait_seconds: float = LOCK_WAIT_SECONDS  # the wait for a reader holding the warehouse, at start and each step


def run_pipeline(workspace: Workspace, options: RunOptions, echo: Callable[[str], None] = say) -> bool:
    """Materialise every asset once, in order, in this process. Returns True on success."""
    from soe_assets.ingest.pipeline import LandingZoneError, resolve_as_of

    try:
        resolve_as_of(workspace.landing, options.as_of)
    except LandingZoneError as error:
        raise UserError(str(error)) from None
    problem = window_problem(options.horizon_weeks, options.time_fence_weeks)
    if problem:
        raise UserError(problem)
    quality = _run_settings(options)
    _refuse_unusable_settings()
    _refuse_non_database(workspace.warehouse)
    folders = {"warehouse": workspace.warehouse.parent, "publish": workspace.publish,
               "alert log": default_alert_log(workspace.warehouse).parent}
    for what, folder in folders.items():  # all refused before any is created
        _no_file_in_the_way(folder, what)
    _refuse_unusable_alert_log(workspace.warehouse)
    for what, folder in folders.items():
        _writable_folder(folder, what)
    try:
        run_lock.acquire(workspace.warehouse, f"soe run on {workspace.landing}")
    except run_lock.WarehouseBusy as busy:
        raise UserError(str(busy)) from None
    try:
        return _run_holding_the_lock(workspace, options, quality, echo)
    finally:
        run_lock.release(workspace.warehouse)


def _run_settings(options: RunOptions) -> QualitySettings:
    """The quality settings of the run (the environment's, with its freshness limits) and its memory budget,
    checked before anything is created: a mistake in them is the user's."""
    from orchestration.resources import QualitySettings
    from soe_assets.ingest.health import parse_freshness_days

    try:
        quality = QualitySettings.from_env()  # the definitions read it as they load
        freshness = {**quality.freshness_days, **parse_freshness_days(options.freshness_days)}
    except ValueError as error:
        raise UserError(str(error)) from None
    if options.memory_limit:
        os.environ[MEMORY_LIMIT_ENV] = options.memory_limit
    try:
        memory_limit()
    except InvalidMemoryLimit as error:
        # name the setting the user gave: the option, or the environment variable
        raise UserError(str(error).replace(f"{MEMORY_LIMIT_ENV}=", "--memory-limit ", 1) if options.memory_limit
                        else str(error)) from None
    return QualitySettings(**{**quality.model_dump(), "freshness_days": freshness})  # every setting, no list to forget


def _run_holding_the_lock(workspace: Workspace, options: RunOptions, quality: QualitySettings,
                          echo: Callable[[str], None]) -> bool:
    """``run_pipeline`` once this process holds the warehouse's run lock: no other run starts until it ends."""
    _check_warehouse_file(workspace.warehouse, options.lock_wait_seconds)
    workspace.export()
    budget = memory_limit()  # `auto` sizes it to this run's landing zone
    os.environ["SOE_TERSE_OUTPUT"] = "1"
    started = time.monotonic()
    echo(f"loading pipeline definitions ... (DuckDB memory budget {budget})")
    with _start_up_kept_out_of_collections() as start_up_done:
        job = _load_full_run_job(workspace, options, quality)
        start_up_done()
        result = _execute_in_this_process_recorded(job, workspace, echo)
    elapsed = time.monotonic() - started
    if not result.success:
        _print_failed_checks(result, default_alert_log(workspace.warehouse.resolve()), echo)
        outcome = _alert_run_failure(result, workspace)
        if _interrupted(result):  # Ctrl-C, SIGTERM: Dagster ends the step it was in and records the run as failed
            echo(f"run {stop_signals.STOPPED[stop_signals.received()]} after {elapsed:.1f} s "
                 f"(run id {result.run_id}). {outcome}")
            raise RunInterrupted
        echo(f"run FAILED after {elapsed:.1f} s (run id {result.run_id}); see the messages above. {outcome}")
        return False
    try:
        _print_failed_checks(result, default_alert_log(workspace.warehouse.resolve()), echo)
        _print_summary(workspace, elapsed, echo)
    except KeyboardInterrupt:  # stopped once the run had ended: it stands, as recorded, and may have published
        from orchestration.sensors import publish_outcome

        echo(f"run completed in {elapsed:.1f} s (run id {result.run_id}); {stop_signals.STOPPED[stop_signals.received()]}"
             f" before its summary. {publish_outcome(workspace.warehouse, result.run_id)}")
        raise RunInterrupted from None
    return True


def _execute_in_this_process_recorded(job, workspace: Workspace, echo: Callable[[str], None]):
    """``_execute_in_this_process``, a run history that cannot be written (a full disk) said in one line: it
    fails in Dagster's storage, with a traceback of some eighty lines."""
    import sqlite3

    from sqlalchemy.exc import SQLAlchemyError

    from orchestration import progress

    steps_before = progress.steps_started
    try:
        return _execute_in_this_process(job, workspace, echo)
    except (sqlite3.Error, SQLAlchemyError) as error:
        cause = getattr(error, "orig", None) or error
        problem = f"cannot record the run in its run history under {workspace.dagster_home}: {cause}"
        if progress.steps_started > steps_before:  # the run had started: it failed (exit 1), not "could not start"
            raise RunStopped(f"{problem}; the run stopped in the step printed last") from None
        raise UserError(problem) from None


@contextlib.contextmanager
def _start_up_kept_out_of_collections() -> Iterator[Callable[[], None]]:
    """Keep what start-up creates out of the run's garbage collections.

    The imports and the definitions create objects that live as long as the
    process. With the collector paused until ``start_up_done`` freezes them,
    the run's full collections skip them instead of walking all of them each
    time (0.8 s less per run, measured on the tiny sample network). On the way
    out everything is collectable again.
    """

    def start_up_done() -> None:
        gc.freeze()
        gc.enable()

    gc.disable()
    try:
        yield start_up_done
    finally:
        gc.enable()
        gc.unfreeze()


def _load_full_run_job(workspace: Workspace, options: RunOptions, quality: QualitySettings) -> dg.JobDefinition:
    """The full-run job of the definitions for this workspace, these options and the quality settings (``quality``:
    the environment's, with the run's freshness limits)."""
    from orchestration.definitions import FULL_RUN_JOB, build_definitions
    from orchestration.resources import SoeSettings, WarehouseResource

    defs = build_definitions(
        SoeSettings(
            landing_dir=str(workspace.landing.resolve()),
            publish_dir=str(workspace.publish.resolve()),
            as_of=options.as_of.isoformat() if options.as_of else "",
            horizon_weeks=options.horizon_weeks,
            time_fence_weeks=options.time_fence_weeks,
            max_open_exceptions=options.max_open_exceptions,
            reread_landing_zone=options.reread,
        ),
        WarehouseResource(path=str(workspace.warehouse.resolve()), lock_wait_seconds=options.lock_wait_seconds),
        quality,
    )
    return defs.resolve_job_def(FULL_RUN_JOB)


def _execute_in_this_process(job: dg.JobDefinition, workspace: Workspace,
                             echo: Callable[[str], None]) -> dg.ExecuteInProcessResult:
    import dagster as dg

    from orchestration.sensors import CLI_TAG, fail_orphaned_cli_runs, process_tags

    with dg.DagsterInstance.get() as instance:
        for run_id in fail_orphaned_cli_runs(instance, workspace.warehouse):
            echo(f"note: run {run_id[:8]} of 'soe run' ended without finishing (its process is gone: killed?); "
                 "recorded as failed and alerted")
        try:
            return job.execute_in_process(
                run_config={"loggers": {"soe_progress": {}}}, instance=instance, raise_on_error=False,
                tags={CLI_TAG: "cli", **process_tags()},
            )
        finally:
            stop_signals.rearm_sigterm()


def _print_failed_checks(result, alert_log: Path, echo: Callable[[str], None]) -> None:
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    if not failed:
        return
    echo("")
    echo(f"{len(failed)} check(s) failed (also in {alert_log}):")
    for evaluation in failed:
        message = evaluation.metadata.get("message")
        text = message.value if message is not None else evaluation.description or ""
        echo(f"  {evaluation.severity.value:<5} {evaluation.asset_key.to_user_string()}:{evaluation.check_name}: {text}")


def _interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """The run failed because it was interrupted (Ctrl-C), not because of a step's own error."""
    from orchestration.progress import INTERRUPTED, failure_reasons

    def error_of(event: dg.DagsterEvent):
        if event.is_step_failure and event.step_failure_data is not None:
            return event.step_failure_data.error
        # stopped between steps (e.g. just after the last one): the run's own failure carries the interruption
        return getattr(event.event_specific_data, "error", None) if event.is_run_failure else None

    return any(failure_reasons(error) == [INTERRUPTED]
               for error in map(error_of, result.all_events) if error is not None)


def _alert_run_failure(result, workspace: Workspace) -> str:
    """Alert the failed run; returns what it left for readers (``publish_outcome``), said in the alert too."""
    from orchestration.sensors import publish_outcome, run_failure_alert, step_failures
    from soe_assets.alerts import deliver

    message = step_failures(result.all_events)
    outcome = publish_outcome(workspace.warehouse, result.run_id)
    deliver([run_failure_alert(result.run_id, result.job_def.name, message, workspace.warehouse, outcome=outcome)],
            default_alert_log(workspace.warehouse))
    return outcome


def _print_summary(workspace: Workspace, elapsed: float, echo: Callable[[str], None]) -> None:
    from soe_assets.publish import VERSIONS, published_as_of
    from soe_assets.warehouse import PUBLISHED_RUNS, connect

    with connect(workspace.warehouse, read_only=True) as conn:
        rows_in, quarantined, files, kept = conn.execute(
            "SELECT sum(rows_read), sum(rows_quarantined), sum(files_read), sum(files_kept) FROM raw.ingest_log"
        ).fetchone()
        as_of = conn.execute("SELECT as_of FROM raw.run_context").fetchone()[0]
        whole_files, rows_alone = conn.execute(
            "SELECT count(*) FILTER (WHERE row_number IS NULL), "
            "count(DISTINCT (source, file, row_number)) FILTER (WHERE row_number IS NOT NULL) FROM raw.quarantine"
        ).fetchone()
        later_days = [day for (day,) in conn.execute(
            f"SELECT as_of FROM {PUBLISHED_RUNS} WHERE as_of > ? ORDER BY as_of", [as_of]).fetchall()]
    published = sorted(p.name for p in workspace.publish.glob("*.parquet"))
    current_as_of = published_as_of(workspace.publish)
    echo("")
    echo(f"run complete for as_of {as_of} in {elapsed:.1f} s")
    echo(f"  rows in:          {rows_in or 0:,} from {files or 0} files"
         + (f" ({kept} unchanged since the last run, not read again)" if kept else ""))
    # data_quality_issues lists a rejected file once, not its rows: they are counted apart. Only the rows read
    # are known: a file refused unread (no date in its name, no extract type, empty) holds an unknown number.
    in_rejected_files = (quarantined or 0) - rows_alone
    held = f", {in_rejected_files:,} row{'' if in_rejected_files == 1 else 's'} read from them" if in_rejected_files else ""
    files_word = "file" if whole_files == 1 else "files"
    echo(f"  rows quarantined: {rows_alone:,} (+ {whole_files} whole {files_word} rejected{held}) -> data_quality_issues")
    if current_as_of is not None and current_as_of > as_of:
        echo(f"  tables published: as a backfill under {workspace.publish / VERSIONS}; {workspace.publish} "
             f"still shows the later as_of {current_as_of}")
        if later_days:
            # each later day's lifecycle compared with the day before it as it was then published
            echo(f"  note: the later published day(s) {', '.join(map(str, later_days))} were computed without this "
                 "day; if it was missing or blocked before, re-run them in date order (soe run --as-of DAY) so "
                 "their exception history and resolution KPIs follow from it")
    else:
        echo(f"  tables published: {len(published)} in {workspace.publish}: {', '.join(published)}")


def cmd_run(args: argparse.Namespace) -> int:
    workspace = Workspace(landing=args.landing, warehouse=args.warehouse, publish=args.publish or args.warehouse.parent / "publish")
    ok = run_pipeline(
        workspace,
        RunOptions(
            as_of=args.as_of,
            horizon_weeks=args.horizon_weeks,
            time_fence_weeks=(args.time_fence_weeks if args.time_fence_weeks is not None
                              else min(RunOptions.time_fence_weeks, args.horizon_weeks)),
            max_open_exceptions=args.max_open_exceptions,
            freshness_days=",".join(args.freshness or []),
            memory_limit=args.memory_limit,
            reread=args.reread,
        ),
    )
    return 0 if ok else 1


# --- exceptions -----------------------------------------------------------------------------


def _known(value: str | None, known: Iterable[str], option: str) -> None:
    """A filter value that can never match is a user error, not an empty listing."""
    if value is not None and value not in known:
        raise UserError(f"unknown {option} '{value}': one of {', '.join(sorted(known))}")


def cmd_exceptions(args: argparse.Namespace) -> int:
    from soe_assets.detect.lifecycle import HISTORY_COLUMNS, MART_COLUMNS
    from soe_assets.detect.report import format_exceptions
    from soe_assets.detect.rules import RULES

    _known(args.type, RULES, "--type")
    frame = _load_mart_for(args, "exceptions", columns=MART_COLUMNS)
    history = _load_mart_for(args, "exception_history", columns=HISTORY_COLUMNS)
    as_of = frame["as_of"].max() if len(frame) else None
    held_back = history[history["as_of"].eq(as_of) & history["status"].eq("open") & ~history["in_alert_budget"]]
    if args.location is not None and not frame["location_id"].eq(args.location).any():
        _known_location(args, history)
    say(format_exceptions(frame, top=args.top, exception_type=args.type, location=args.location,
                            held_back=held_back))
    return 0


def _known_location(args: argparse.Namespace, history) -> None:
    """A --location that is no location of the network (the trusted view's, or any exception's) is a user
    error: an empty listing would read as 'nothing needs attention there'."""
    known = set(_load_mart_for(args, "sku_location_week", distinct="location_id")["location_id"].dropna())
    known |= set(history["location_id"].dropna())
    if args.location not in known:
        shown = sorted(known)
        raise UserError(f"unknown --location '{args.location}': the network's locations are "
                        + ", ".join(shown[:20]) + (f" and {len(shown) - 20} more" if len(shown) > 20 else ""))


# --- recommendations ------------------------------------------------------------------------


def cmd_recommendations(args: argparse.Namespace) -> int:
    from soe_assets.respond.recommend import MART_COLUMNS
    from soe_assets.respond.report import ACTION_TYPES, format_recommendations

    _known(args.action, ACTION_TYPES, "--action")
    frame = _load_mart_for(args, "recommendations", columns=MART_COLUMNS)
    say(format_recommendations(frame, top=args.top, action_type=args.action))
    return 0


# --- demo / ui ------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from soe_assets.sample_network import extracts_not_generated

    workspace = demo_workspace(args.dir)
    for folder in (args.dir, workspace.landing):
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{folder} is a file, not a folder")
    # before the sample is written: the run would refuse them afterwards
    _refuse_unusable_settings()
    _refuse_non_database(workspace.warehouse)
    # The demo replaces the sample it wrote before; extracts someone put there are theirs, never deleted.
    foreign = extracts_not_generated(workspace.landing) if workspace.landing.is_dir() else []
    if foreign:
        raise UserError(f"{workspace.landing} holds {len(foreign)} extract(s) the demo did not write, e.g. "
                        f"{foreign[0].relative_to(workspace.landing)}: the demo replaces its landing zone, so "
                        f"move them away or choose another --dir")
    say(f"generating the sample network into {workspace.landing} ...")
    _write_sample_network(workspace.landing, seed=args.seed, replace=True)
    if not run_pipeline(workspace, RunOptions()):
        return 1
    say("")
    say(f"warehouse (DuckDB):  {workspace.warehouse}")
    say(f"published marts:     {workspace.publish}/<table>.parquet")
    say(f"planner views:       soe exceptions --dir {args.dir}   |   soe recommendations --dir {args.dir}")
    say(f"Dagster UI:          soe ui --dir {args.dir}   (then open http://127.0.0.1:3000)")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    if args.dir is None and (args.landing is None) != (args.warehouse is None):
        # the other would be the demo folder's: a UI on a landing zone beside an empty warehouse shows no run
        raise UserError("--landing and --warehouse go together (the paths of your 'soe run'); "
                        "or pass --dir for the folder of 'soe demo'")
    folder = args.dir or DEFAULT_DEMO_DIR
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--dir {folder} is a file, not a folder")
    demo = demo_workspace(folder)
    warehouse = args.warehouse or demo.warehouse
    workspace = Workspace(
        landing=args.landing or demo.landing,
        warehouse=warehouse,
        publish=args.publish or (warehouse.parent / "publish" if args.warehouse else demo.publish),
    )
    if args.landing is not None and not args.landing.is_dir():
        raise UserError(f"--landing {args.landing} is not a folder")
    _refuse_unusable_settings()
    _refuse_unusable_ui_settings()
    _refuse_non_database(workspace.warehouse)
    if not workspace.landing.is_dir() and not workspace.warehouse.exists():
        raise UserError(f"no landing zone at {workspace.landing} and no warehouse at {workspace.warehouse}: "
                        f"run 'soe demo --dir {folder}' first, or pass --landing / --warehouse")
    _refuse_a_busy_port(args.host, args.port)
    _refuse_unusable_alert_log(workspace.warehouse)
    _writable_folder(workspace.warehouse.parent, "warehouse")  # the Dagster instance lives beside the warehouse
    _writable_folder(default_alert_log(workspace.warehouse).parent, "alert log")
    workspace.export()
    command = ["dagster", "dev", "-m", "orchestration.definitions", "--host", args.host, "--port", str(args.port)]
    say(f"starting the Dagster UI on http://{args.host}:{args.port} (Ctrl-C to stop) ...", flush=True)
    bin_dir = Path(sys.executable).parent
    # started in the background by a script, the shell makes it ignore SIGINT, and `dagster dev` stops on SIGTERM
    # through its SIGINT handler: without the default handler back, `kill` would leave the UI's processes running
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execv(str(bin_dir / "dagster"), command)


def cmd_report(args: argparse.Namespace) -> int:
    from soe_assets.feedback.report import REPORT_FILE

    _check_mart_folder(args)
    publish = args.publish or demo_workspace(args.dir).publish
    path = publish / REPORT_FILE
    if not path.is_file():
        raise UserError(f"no S&OP report in {publish} yet: it is written by the sop_feedback asset "
                        f"(soe run / soe demo, the soe_daily schedule, or the S&OP-calendar sensor)")
    say(path.absolute())  # not resolved: the link to the published set stays, the set it names changes
    return 0


# --- parser ---------------------------------------------------------------------------------


def _add_mart_source(parser: argparse.ArgumentParser) -> None:
    """Where a planner view reads its mart: a demo folder, a publish folder or the warehouse (one of them: two
    would leave the reader guessing which one the listing came from)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dir", type=Path, default=DEFAULT_DEMO_DIR, help="soe folder (default: ./soe-demo)")
    source.add_argument("--publish", type=Path, default=None, help="folder of the published marts (instead of --dir)")
    source.add_argument("--warehouse", type=Path, default=None, help="read this DuckDB warehouse (read-only) instead")


def _load_mart_for(args: argparse.Namespace, table: str, distinct: str | None = None,
                   columns: Sequence[str] = ()):
    """The mart a planner view shows; a user error if it is missing or lacks the ``columns`` the view reads."""
    from soe_assets.publish import MartNotPublished, load_mart

    if args.warehouse is None:
        _check_mart_folder(args)
    else:
        _refuse_unreadable_database(Path(args.warehouse))  # a Parquet or CSV file given by mistake, said as such
    try:
        if args.warehouse is not None:
            frame = load_mart(table, warehouse=args.warehouse, distinct=distinct)
        else:
            frame = load_mart(table, publish_dir=_published_set(args), distinct=distinct)
    except MartNotPublished as error:
        raise UserError(str(error)) from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        where = args.warehouse or _published_set(args) / f"{table}.parquet"
        raise UserError(f"{where} is not soe's {table} mart: it has no column {', '.join(missing)}")
    return frame


def _check_mart_folder(args: argparse.Namespace) -> None:
    """The --publish or --dir a reader names must be a folder that exists: a typo would read as 'nothing
    published yet'."""
    given, option = (args.publish, "--publish") if args.publish is not None else (args.dir, "--dir")
    if given.exists() and not given.is_dir():
        raise UserError(f"{option} {given} is a file, not a folder")
    if args.publish is not None and not args.publish.exists():
        raise UserError(f"--publish {args.publish} does not exist (the publish folder of your 'soe run')")
    if args.publish is None and not args.dir.exists():
        other = "--publish / --warehouse" if hasattr(args, "warehouse") else "--publish"
        raise UserError(f"--dir {args.dir} does not exist (the folder 'soe demo --dir' wrote, or pass {other} for "
                        "the paths of your 'soe run')")


def _published_set(args: argparse.Namespace) -> Path:
    """The published set a command reads, resolved once (kept on ``args``): a command reading several marts
    through the folder's links while a run publishes would mix two sets."""
    if getattr(args, "published_set", None) is None:
        folder = args.publish or demo_workspace(args.dir).publish
        current = folder / "current"
        args.published_set = current.resolve() if current.is_dir() else folder
    return args.published_set


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("soe")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soe", description="soe: Sales & Operations Execution pipeline (landing zone -> marts)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="write a realistic sample network into a landing zone",
                         description="Write a realistic sample network into a landing-zone folder: every source of "
                                     "the landing-zone contract, with planted problems listed in "
                                     "_planted_problems.json.")
    gen.add_argument("--out", type=Path, required=True, help="landing-zone folder to write")
    gen.add_argument("--seed", type=_non_negative, default=7, help="random seed (same seed, same files; default 7)")
    gen.add_argument("--skus", type=_at_least_one, default=40, help="number of SKUs (default 40)")
    gen.add_argument("--dcs", type=_at_least_one, default=3, help="number of distribution centres (default 3)")
    gen.add_argument("--plants", type=_at_least_one, default=2, help="number of plants (default 2)")
    gen.add_argument("--stores", type=_non_negative, default=0, help="number of stores selling through POS (default 0)")
    gen.add_argument("--as-of", type=_iso_date, default=None, help="the date of the latest extract (YYYY-MM-DD; default: the sample's fixed date, so a seed "
                     "always writes the same files)")
    gen.add_argument("--replace", action="store_true",
                     help="--out already holds a landing zone: delete its extracts first (refused otherwise)")
    gen.set_defaults(func=cmd_generate)

    run = sub.add_parser("run", help="run every stage once on a landing zone",
                         description="Run every stage once on a landing zone: ingest and validate the extracts "
                                     "(bad rows to the quarantine), reconcile them into the trusted view (dbt), detect "
                                     "and rank exceptions, recommend responses, compute the KPIs and the S&OP "
                                     "feedback, and publish the marts as Parquet.")
    run.add_argument("--landing", type=Path, required=True, help="landing-zone folder (one folder per source)")
    run.add_argument("--warehouse", type=Path, required=True, help="DuckDB warehouse file (created if missing)")
    run.add_argument("--publish", type=Path, default=None, help="folder for the published Parquet marts "
                     "(default: 'publish' beside the warehouse)")
    run.add_argument("--as-of", type=_iso_date, default=None, help="the day the run describes (default: latest extract date)")
    run.add_argument("--horizon-weeks", type=_at_least_one, default=13,
                     help=f"weeks of the S&OE window, week 0 = the week of as_of (default 13, at most {MAX_HORIZON_WEEKS})")
    run.add_argument("--time-fence-weeks", type=_non_negative, default=None,
                     help="weeks 0..N-1 inside the time fence, where S&OE acts; at most --horizon-weeks "
                     "(default 4, or the horizon when it is shorter)")
    run.add_argument("--max-open-exceptions", type=_non_negative, default=0,
                     help="alert budget: keep only the top N open exceptions (default 0: no budget)")
    run.add_argument("--freshness", action="append", metavar="SOURCE=DAYS",
                     help="freshness limit of a source in days, e.g. sales_orders=1 (repeatable; defaults: "
                     "2 for execution sources, 35 for master data and sop_plan)")
    run.add_argument("--memory-limit", metavar="SIZE", default="",
                     help=f"DuckDB memory budget per connection, e.g. 4GB, or 'auto': 1.5 times the landing "
                     f"zone's data size within 1-6GiB and a quarter of the machine's memory; beyond it DuckDB spills to disk (default: ${MEMORY_LIMIT_ENV} or "
                     f"{DEFAULT_MEMORY_LIMIT})")
    run.add_argument("--reread", action="store_true",
                     help="read every extract again; by default the extracts the last run on this warehouse "
                     "ingested, unchanged since, are not read again and their rows and quarantine stand")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="generate the sample network and run the pipeline on it",
                          description="Generate the sample network into --dir and run the whole pipeline on it; "
                                      "prints where the warehouse, the published marts and the UI command are.")
    demo.add_argument("--dir", type=Path, default=DEFAULT_DEMO_DIR, help="demo folder (default: ./soe-demo)")
    demo.add_argument("--seed", type=_non_negative, default=7, help="random seed of the sample network (default 7)")
    demo.set_defaults(func=cmd_demo)

    exc = sub.add_parser("exceptions", help="the ranked exceptions of the latest run (planner's view)",
                         description="Print the latest run's open exceptions, most important first, with their "
                                     "impact, first week, escalation and explanation, from the published marts "
                                     "(--dir, --publish) or the warehouse (--warehouse; not while a run holds it).")
    _add_mart_source(exc)
    exc.add_argument("--top", type=_non_negative, default=20, help="show the N most important (default 20; 0: all)")
    exc.add_argument("--type", default=None, help="only this exception type, e.g. projected_stockout")
    exc.add_argument("--location", default=None, help="only this location")
    exc.set_defaults(func=cmd_exceptions)

    recs = sub.add_parser(
        "recommendations", help="the coordinated responses of the latest run (planner's view)",
        description="Print the latest run's recommendations, each with its rank, action, SKU, route, quantity, "
                    "revenue protected, cost, the exceptions it resolves and the planner's sentence. Ranked by money at stake: an "
                    "action's revenue protected, an escalation's revenue still at risk, a re-promise's line value.")
    _add_mart_source(recs)
    recs.add_argument("--top", type=_non_negative, default=20, help="show the N first (default 20; 0: all)")
    recs.add_argument("--action", default=None, help="only this action type, e.g. reallocate_stock")
    recs.set_defaults(func=cmd_recommendations)

    ui = sub.add_parser("ui", help="start the Dagster UI on the project's definitions",
                        description="Start the Dagster UI (asset lineage, runs, schedules, sensors, asset checks) "
                                    "on the data of the demo folder or of your own landing zone and warehouse.")
    ui.add_argument("--dir", type=Path, default=None, help="soe folder whose data the UI uses (default: ./soe-demo)")
    ui.add_argument("--landing", type=Path, default=None,
                    help="landing zone of your 'soe run' (with --warehouse; instead of the one in --dir)")
    ui.add_argument("--warehouse", type=Path, default=None,
                    help="DuckDB warehouse of your 'soe run' (with --landing; instead of the one in --dir)")
    ui.add_argument("--publish", type=Path, default=None,
                    help="publish folder (default: the --dir folder's, or 'publish' beside --warehouse)")
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    ui.add_argument("--port", type=_port, default=3000, help="port to serve on (default: 3000)")
    ui.set_defaults(func=cmd_ui)

    report = sub.add_parser("report", help="print the path of the S&OP feedback report (HTML)",
                            description="Print the path of the HTML S&OP feedback report of the latest published "
                                        "set (open it in a browser).")
    report_source = report.add_mutually_exclusive_group()
    report_source.add_argument("--dir", type=Path, default=DEFAULT_DEMO_DIR, help="soe folder (default: ./soe-demo)")
    report_source.add_argument("--publish", type=Path, default=None, help="publish folder (default: <dir>/publish)")
    report.set_defaults(func=cmd_report)
    return parser


def _interrupt_warehouse_queries() -> None:
    """A stop signal came: interrupt the queries of the warehouse connections open (none while the stages'
    module is not loaded, or is still loading: importing it here would only delay the stop)."""
    interrupt_queries = getattr(sys.modules.get("soe_assets.warehouse"), "interrupt_queries", None)
    if interrupt_queries is not None:
        interrupt_queries()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    given = sys.argv[1:] if argv is None else argv
    if given and given[0].startswith("-") and given[0] not in ("-h", "--help", "--version"):
        # argparse would first miss the command and never name the option the user mistyped
        parser.error(f"unrecognized option {given[0]}: options go after the command (soe COMMAND --help)")
    args = parser.parse_args(given)
    with stop_signals.noted(on_stop=_interrupt_warehouse_queries):
        try:
            return args.func(args)
        except UserError as error:
            say(f"soe: error: {error}", file=sys.stderr)
            return error.exit_code
        except RunInterrupted:
            return stop_signals.exit_code(stop_signals.received())
        except KeyboardInterrupt:
            stop = stop_signals.received()
            say(f"soe: {stop_signals.STOPPED[stop]}", file=sys.stderr)
            return stop_signals.exit_code(stop)
        except BrokenPipeError:  # the reader of the output went away (`soe exceptions | head`): nothing to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0


def command() -> NoReturn:
    """The ``soe`` executable: ``main``, then exit without Python's interpreter teardown.

    The teardown runs full garbage collections over every object Dagster, dbt,
    GX and pydantic loaded: ~1.4 s after every command, on any network. By the
    time ``main`` returns, soe has closed its warehouse connections, the Dagster
    instance and its files, so the teardown has nothing of soe's to finish.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):  # None when the command was started with the stream closed
        if stream is not None:
            stream.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    command()
