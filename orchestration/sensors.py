"""Sensors: start a run when new extracts land; alert when a run fails.

``landing_zone_sensor`` keeps, as its cursor, the files it has already seen
per source (``{source: ["name|mtime_ns|size|ctime_ns", ...]}``), the number of
the last batch and when it first saw each file it waits for. A tick that finds new or changed files, or files removed, requests
one run of the full job for the whole batch (the run key names the batch, so
the same change never starts a second run, and a zone back in an earlier state
runs again); unchanged files never re-trigger.
While any file is still being written (modified less than
``SOE_SENSOR_SETTLE_SECONDS`` ago, default 60, and not seen unchanged by the
sensor for as long), no run starts: a run reads the whole landing zone, so a
half-copied drop would be read with the batch.
"""


import hashlib
import json
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from data_contracts.sources import SOURCES
from orchestration.progress import ANSI, failure_reasons
from orchestration.resources import SoeSettings
from soe_assets import run_lock
from soe_assets.alerts import Alert, default_alert_log, deliver
from soe_assets.ingest.health import named_briefly
from soe_assets.ingest.pipeline import LandingZoneError, readable_source_folders
from soe_assets.warehouse import as_of_of_run, run_published

FULL_RUN_JOB = "soe_full_run"
CLI_TAG = "soe/launched_by"
PID_TAG, HOST_TAG = "soe/pid", "soe/host"  # the process and machine a `soe run` executes in
SETTLE_ENV = "SOE_SENSOR_SETTLE_SECONDS"
DEFAULT_SETTLE_SECONDS = 60.0

LandingState = dict[str, list[str]]


def scan_landing_zone(landing: Path) -> LandingState:
    """Every extract file per source folder as ``name|mtime_ns|size|ctime_ns`` (sorted): the inode change time
    tells a corrected re-send copied over the file with its old modification time and size (cp -p, tar x)
    from the file it replaces, as ingest does."""
    state: LandingState = {}
    for source in SOURCES:
        folder = landing / source.name
        if not folder.is_dir():
            continue
        entries = []
        for path in folder.iterdir():
            if path.name.startswith(".") or not path.is_file():
                continue
            stat = path.stat()
            entries.append(f"{path.name}|{stat.st_mtime_ns}|{stat.st_size}|{stat.st_ctime_ns}")
        if entries:
            state[source.name] = sorted(entries)
    return state


def settle_seconds() -> float:
    """How long an extract must be left untouched before a run reads it (``SOE_SENSOR_SETTLE_SECONDS``)."""
    text = os.environ.get(SETTLE_ENV, "").strip()
    if not text:
        return DEFAULT_SETTLE_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"{SETTLE_ENV}={text}: expected a number of seconds, 0 or more")
    return seconds


def _name(entry: str) -> str:
    return entry.rsplit("|", 3)[0]


def first_seen_while_recent(state: LandingState, settle_seconds: float, first_seen: dict[str, float],
                            now: float) -> dict[str, float]:
    """``source/entry`` -> when a tick first saw it, for every file modified less than ``settle_seconds`` before
    ``now`` (``first_seen``: the previous ticks' record; an entry changes with every write)."""
    recent = [f"{source}/{entry}" for source, entries in state.items() for entry in entries
              if now * 1e9 - int(entry.rsplit("|", 3)[1]) < settle_seconds * 1e9]
    return {key: first_seen.get(key, now) for key in recent}


def files_being_written(first_seen: dict[str, float], settle_seconds: float, now: float) -> list[str]:
    """The files (``source/name``) modified recently that the sensor has not yet seen unchanged for
    ``settle_seconds``: a file whose modification time lies ahead of this machine's clock (copied with the
    times of a clock ahead) settles so, instead of waiting for its time to pass."""
    return sorted(_name(key) for key, seen in first_seen.items() if now - seen < settle_seconds)


def _has_change_time(entry: str) -> bool:
    """Whether an entry ends with the change time: ``name|mtime_ns|size|ctime_ns``, not ``name|mtime_ns|size`` (a
    cursor written before change times were kept)."""
    parts = entry.rsplit("|", 3)
    return len(parts) == 4 and all(part.lstrip("-").isdigit() for part in parts[1:])


def _without_change_time(state: LandingState) -> LandingState:
    return {source: [entry.rsplit("|", 1)[0] for entry in entries] for source, entries in state.items()}


def _cursor_text(batch: int, files: LandingState, settling: dict[str, float] | None = None) -> str:
    return json.dumps({"batch": batch, "files": files, **({"settling": settling} if settling else {})},
                      sort_keys=True)


def _read_cursor(cursor: str | None) -> tuple[int, LandingState, dict[str, float]]:
    """The last batch's number, the files it saw, and when the ticks since first saw each file they wait for."""
    previous = json.loads(cursor) if cursor else {}
    if "files" not in previous:  # a cursor written before batches were numbered holds the files alone
        return 0, previous, {}
    return previous["batch"], previous["files"], previous.get("settling", {})


@dataclass(frozen=True)
class Batch:
    new_files: dict[str, list[str]]  # source -> file names new or changed since the cursor
    removed_files: dict[str, list[str]]  # source -> file names gone since the cursor
    cursor: str
    run_key: str


def next_batch(cursor: str | None, state: LandingState, settling: dict[str, float] | None = None) -> Batch | None:
    """The batch since ``cursor``, or None when no file is new, changed or removed.

    A removal counts: the run after it reads the landing zone without the file
    (a broken extract taken away, a superseding one withdrawn). The cursor
    numbers the batches (``{"batch": n, "files": state}``) and the run key
    carries that number, so a landing zone that returns to an earlier state (a
    file set aside, then put back) runs again: Dagster never starts a second
    run for a run key it has seen.
    """
    number, seen, _ = _read_cursor(cursor)
    # files the last batch saw before change times were kept are the same files if all else is
    with_change_times = all(_has_change_time(entry) for entries in seen.values() for entry in entries)
    compared = state if with_change_times else _without_change_time(state)
    new_files, removed_files = {}, {}
    for source in sorted(set(compared) | set(seen)):
        entries, before = set(compared.get(source, [])), set(seen.get(source, []))
        if fresh := sorted(entries - before):
            new_files[source] = [_name(entry) for entry in fresh]
        names = {_name(entry) for entry in entries}
        if gone := sorted({_name(entry) for entry in before} - names):
            removed_files[source] = gone
    if not new_files and not removed_files:
        return None
    text = _cursor_text(number + 1, state)
    # files waited for that have settled are kept, so that they are not waited for again
    return Batch(new_files=new_files, removed_files=removed_files, cursor=_cursor_text(number + 1, state, settling),
                 run_key=f"landing-{number + 1}-" + hashlib.sha256(text.encode()).hexdigest()[:12])


@dg.sensor(
    job_name=FULL_RUN_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Starts one full run per batch of new, changed or removed landing-zone extracts (cursor: files already seen).",
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, settings: SoeSettings):
    busy = warehouse_busy(context.instance, os.environ.get("SOE_WAREHOUSE", "soe.duckdb"))
    if busy:  # a run requested now would be refused, and its batch, already in the cursor, never run
        return dg.SkipReason(busy)
    try:
        readable_source_folders(settings.landing_path)
    except LandingZoneError as problem:  # nothing to look at until someone fixes the path or the permissions
        return dg.SkipReason(str(problem))
    settle, now = settle_seconds(), time.time()
    state = scan_landing_zone(settings.landing_path)
    number, seen, first_seen = _read_cursor(context.cursor)
    first_seen = first_seen_while_recent(state, settle, first_seen, now)
    settling = files_being_written(first_seen, settle, now)
    if settling:  # the run would read them half-written along with the batch
        context.update_cursor(_cursor_text(number, seen, first_seen))
        return dg.SkipReason(f"waiting for {len(settling)} extract(s) still being written (settle time "
                             f"{settle:g} s): {named_briefly(settling)}")
    batch = next_batch(context.cursor, state, first_seen)
    if batch is None:
        return dg.SkipReason("no new, changed or removed extract in the landing zone")
    context.update_cursor(batch.cursor)
    summary = ", ".join([f"{source}: {len(files)}" for source, files in sorted(batch.new_files.items())]
                        + [f"{source}: {len(files)} removed" for source, files in sorted(batch.removed_files.items())])
    return dg.RunRequest(run_key=batch.run_key, tags={"soe/new_files": summary[:200]})


IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED]
# A run still "in progress" after this long was killed without a word (its status never moved on).
STALE_RUN = timedelta(hours=6)


def warehouse_busy(instance: dg.DagsterInstance, warehouse: str | Path) -> str | None:
    """Why a run requested now would be refused (the warehouse takes one run at a time): a run of this instance
    in progress, or another process holding the warehouse's run lock; None when a run can start."""
    fail_orphaned_cli_runs(instance, warehouse)  # a killed `soe run` stays "started": it holds up nothing
    since = datetime.now(timezone.utc) - STALE_RUN
    running = instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS, created_after=since), limit=1)
    if running:
        return f"waiting for run {running[0].run_id[:8]} to finish: the warehouse takes one run at a time"
    holder = run_lock.held_elsewhere(warehouse)
    return f"waiting for the warehouse to be free ({holder})" if holder else None


def process_tags() -> dict[str, str]:
    """Where a `soe run` executes its run (in its own process): a later run can tell whether it is still alive."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def fail_orphaned_cli_runs(instance: dg.DagsterInstance, warehouse: str | Path) -> list[str]:
    """Runs of `soe run` on this machine still recorded as started whose process is gone (killed: nothing was
    left to record their end): recorded as failed and alerted, so the UI and the S&OP sensor stop waiting for
    them. Returns their ids."""
    started = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED,
                                                                dg.DagsterRunStatus.STARTING],
                                                      tags={CLI_TAG: "cli", HOST_TAG: socket.gethostname()}))
    orphaned = [run for run in started
                if run.tags.get(PID_TAG, "").isdigit() and not run_lock.process_alive(int(run.tags[PID_TAG]))]
    if not orphaned:  # every sensor tick asks: it writes nothing then, not even the alert log's folder
        return []
    message = "the process of 'soe run' ended before the run finished (killed?)"
    for run in orphaned:
        instance.report_run_failed(run, message=message)
    deliver([run_failure_alert(run.run_id, run.job_name, message, warehouse) for run in orphaned],
            default_alert_log(warehouse))
    return [run.run_id for run in orphaned]


# The asset ingest writes the run's as_of to: a run without it works on the warehouse's current as_of.
RUN_CONTEXT_KEY = dg.AssetKey(["raw", "run_context"])
# The job Dagster runs when assets are materialized from the UI rather than by a job of ours.
UI_ASSET_JOB = "__ASSET_JOB"


def run_subject(job_name: str, assets: Iterable[dg.AssetKey] | None) -> str:
    """What failed, as a team reads it: the job, or for a materialization started in the UI, its assets."""
    keys = sorted(key.to_user_string() for key in assets or ())
    if job_name != UI_ASSET_JOB or not keys:
        return job_name
    more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
    return f"materialization of {', '.join(keys[:3])}{more}"


def step_failures(events: Iterable[dg.DagsterEvent]) -> str:
    """Each failed step of a run and why (with the error's causes: the user's own is the innermost), on one line
    for an alert."""
    failures = []
    for event in events:
        if event.is_step_failure:
            error, what = event.step_failure_data.error if event.step_failure_data else None, "failed"
        elif event.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE:  # e.g. the warehouse's run lock taken
            error, what = event.event_specific_data.error, "could not start"
        elif event.is_run_failure and not failures and getattr(event.event_specific_data, "error", None):
            # no step failed: the run itself was stopped between steps (Ctrl-C after the last step)
            error, what = event.event_specific_data.error, "failed"
        else:
            continue
        reasons = [" ".join(reason.split()) for reason in failure_reasons(error)]
        # a resource that failed before any step started has no step to name
        where = f"step {event.step_key} {what}" if event.step_key else f"the run {what}"
        failures.append(where + (": " + "; caused by: ".join(reasons) if reasons else ""))
    return " | ".join(failures) if failures else "the run failed"


# Room for the cause a dbt failure names after its boilerplate (a Binder Error and the line it points at).
ALERT_MESSAGE_CHARS = 2000

PUBLISH_OUTCOMES = {
    "no": "The previously published marts are untouched.",
    "current": "Its set of marts had been published before it ended: readers get it.",
    "backfill": "Its set of marts had been published before it ended, as a backfill: readers still get the later "
                "as_of's set.",
    None: "The published marts are those of the latest run that published (see _manifest.json).",
}


def publish_outcome(warehouse: str | Path, run_id: str) -> str:
    """What a failed run left for readers, in one sentence: a run killed right after its publish step did
    switch the published set."""
    return PUBLISH_OUTCOMES[run_published(warehouse, run_id)]


def run_failure_alert(run_id: str, job_name: str, message: str, warehouse: str | Path,
                      assets: Iterable[dg.AssetKey] | None = None, outcome: str | None = None) -> Alert:
    """``outcome``: ``publish_outcome`` of the run where the caller has it already."""
    return Alert(
        kind="run_failed", severity="ERROR", subject=run_subject(job_name, assets), name=job_name, run_id=run_id,
        message=f"{message.strip()[:ALERT_MESSAGE_CHARS].rstrip('.')}. {outcome or publish_outcome(warehouse, run_id)}",
        as_of=as_of_of_run(warehouse, run_id, ingests=assets is None or RUN_CONTEXT_KEY in set(assets)),
    )


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends every failed run to the alert sink (alert log, webhook when configured).",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext):
    if context.dagster_run.tags.get(CLI_TAG) == "cli":
        return  # `soe run` delivers its own run-failure alert
    # why each step failed, as `soe run` says it; Dagster's own message names the steps only
    # (a run refused by the warehouse's run lock fails before any step: its resources could not start)
    failures = context.get_step_failure_events() or [
        entry.dagster_event for entry in context.instance.all_logs(
            context.dagster_run.run_id, of_type=dg.DagsterEventType.RESOURCE_INIT_FAILURE) if entry.dagster_event]
    message = step_failures(failures) if failures else ANSI.sub("", context.failure_event.message or "the run failed")
    warehouse = os.environ.get("SOE_WAREHOUSE", "soe.duckdb")
    run = context.dagster_run
    alert = run_failure_alert(run.run_id, run.job_name, message, warehouse, assets=run.asset_selection)
    deliver([alert], default_alert_log(warehouse), warn=context.log.warning)


SENSORS = [landing_zone_sensor, run_failure_alert_sensor]
