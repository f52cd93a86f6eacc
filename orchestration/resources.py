"""Run-wide settings resource: where the data is and the S&OE window."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from soe_assets import run_lock
from soe_assets.duckdb_settings import LOCK_WAIT_SECONDS
from soe_assets.run_window import ISO_DAY, window_problem
from soe_assets.warehouse import close_open_connections, connect


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (``SOE_WAREHOUSE``), opened only for one step at a time; the run holds its run
    lock from the first step to the last (``soe_assets/run_lock.py``), so a second run on it fails at its start
    instead of interleaving its steps with this one's."""

    path: str
    threads: int = 2
    lock_wait_seconds: float = LOCK_WAIT_SECONDS  # how long a step waits for a reader holding the file

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = f"Dagster run {context.run.run_id[:8]}" if context.run else "a Dagster step"
        try:
            run_lock.acquire(self.path, run)
        except run_lock.WarehouseBusy as busy:
            raise dg.Failure(str(busy), allow_retries=False) from None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        close_open_connections()  # a stop signal may have left a stage's connection open: closed before unlocking
        run_lock.release(self.path)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.path, read_only=read_only, threads=self.threads, lock_wait=self.lock_wait_seconds) as conn:
            yield conn

    @property
    def files_path(self) -> Path:
        """Where stages leave files that are published with the marts (the S&OP report), beside the warehouse."""
        return Path(self.path).parent / "files"


class SoeSettings(dg.ConfigurableResource):
    """Landing zone, publish folder and run parameters (``shared/spec/landing-zone.md``).

    ``as_of`` empty means: the latest extract date found in the landing zone.
    """

    landing_dir: str
    publish_dir: str
    as_of: str = ""
    horizon_weeks: int = 13
    time_fence_weeks: int = 4
    max_open_exceptions: int = 0  # 0: no alert budget
    reread_landing_zone: bool = False  # read every extract, even those the last run ingested as they are now

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Refuse a run launched from the UI with config soe run would refuse, before any step, in its words."""
        problem = self._settings_problem()
        if problem:
            raise dg.Failure(problem, allow_retries=False)

    def _settings_problem(self) -> str | None:
        window = window_problem(self.horizon_weeks, self.time_fence_weeks, "horizon_weeks", "time_fence_weeks")
        if window:
            return window
        if self.max_open_exceptions < 0:
            return f"max_open_exceptions must be 0 (no alert budget) or more (got {self.max_open_exceptions})"
        if self.as_of and not ISO_DAY.fullmatch(self.as_of.strip()):
            return f"as_of must be a day YYYY-MM-DD, or empty for the latest extract date (got '{self.as_of}')"
        try:
            self.requested_as_of
        except ValueError:
            return f"as_of '{self.as_of}' is no day of the calendar"
        return None

    @property
    def landing_path(self) -> Path:
        return Path(self.landing_dir)

    @property
    def publish_path(self) -> Path:
        return Path(self.publish_dir)

    @property
    def requested_as_of(self) -> date | None:
        return date.fromisoformat(self.as_of.strip()) if self.as_of.strip() else None


def _share(name: str, text: str) -> float:
    """A share between 0 and 1 from the setting ``name``; a clear error otherwise."""
    problem = ValueError(f"{name}='{text}' is not a share between 0 and 1 (e.g. 0.25)")
    try:
        share = float(text)
    except ValueError:
        raise problem from None
    if not 0.0 <= share <= 1.0:
        raise problem
    return share


def _row_count(name: str, text: str) -> int:
    """A whole number of rows, 0 or more, from the setting ``name``; a clear error otherwise."""
    try:
        rows = int(text)
    except ValueError:
        rows = -1
    if rows < 0:
        raise ValueError(f"{name}='{text}' is not a whole number of rows, 0 or more (e.g. 100)")
    return rows


class QualitySettings(dg.ConfigurableResource):
    """Data-quality limits of the asset checks (``docs/operations.md``).

    ``freshness_days`` overrides the contract defaults per source (2 days for
    execution sources, 35 for master data and the plan). The webhook URL is
    deliberately not a field: it is read from ``SOE_ALERT_WEBHOOK_URL`` when an
    alert is sent, so it never shows in the UI, the run config or the logs.
    """

    freshness_days: dict[str, int] = {}
    warn_quarantine_share: float = 0.02
    block_quarantine_share: float = 0.25
    block_min_rows: int = 100

    @classmethod
    def from_env(cls) -> "QualitySettings":
        """``SOE_FRESHNESS_DAYS`` ("sales_orders=1,sop_plan=31"), ``SOE_WARN_QUARANTINE_SHARE``, ``SOE_BLOCK_QUARANTINE_SHARE``,
        ``SOE_BLOCK_MIN_ROWS``."""
        import os

        from soe_assets.ingest.health import parse_freshness_days

        try:
            values: dict = {"freshness_days": parse_freshness_days(os.environ.get("SOE_FRESHNESS_DAYS", ""))}
        except ValueError as error:
            raise ValueError(f"SOE_FRESHNESS_DAYS: {error}") from None
        for field, env in (("warn_quarantine_share", "SOE_WARN_QUARANTINE_SHARE"),
                           ("block_quarantine_share", "SOE_BLOCK_QUARANTINE_SHARE")):
            text = os.environ.get(env, "").strip()
            if text:
                values[field] = _share(env, text)
        text = os.environ.get("SOE_BLOCK_MIN_ROWS", "").strip()
        if text:
            values["block_min_rows"] = _row_count("SOE_BLOCK_MIN_ROWS", text)
        settings = cls(**values)
        if settings.warn_quarantine_share > settings.block_quarantine_share:
            raise ValueError(f"SOE_WARN_QUARANTINE_SHARE ({settings.warn_quarantine_share}) is above "
                             f"SOE_BLOCK_QUARANTINE_SHARE ({settings.block_quarantine_share}): a source would be "
                             "blocked before it is warned about")
        return settings

    def limits(self):
        from soe_assets.ingest.health import QualityLimits

        return QualityLimits(dict(self.freshness_days), self.warn_quarantine_share, self.block_quarantine_share,
                             self.block_min_rows)
