"""Run-wide settings resource: where the data is and the S&OE window."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from soe_assets.warehouse import connect


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (``SOE_WAREHOUSE``), opened only for one step at a time."""

    path: str
    threads: int = 2

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.path, read_only=read_only, threads=self.threads) as conn:
            yield conn


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

    @property
    def landing_path(self) -> Path:
        return Path(self.landing_dir)

    @property
    def publish_path(self) -> Path:
        return Path(self.publish_dir)

    @property
    def requested_as_of(self) -> date | None:
        return date.fromisoformat(self.as_of) if self.as_of else None
