"""The S&OP calendar: when each cycle meets, and which cycle a day prepares for.

Sources, first found wins:
1. ``calendar_file``: a CSV with a ``cycle_date`` column (ISO dates; more columns ignored);
2. ``cycle_dates``: a list of ISO dates in the resource config;
3. the default: monthly, on the first Monday of every month.
"""

from __future__ import annotations

import csv
import os
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from soe_assets.run_window import parse_iso_day

CALENDAR_ENV = "SOE_SOP_CALENDAR"


def first_mondays(around: date, months_each_side: int = 13) -> list[date]:
    """The first Monday of every month, from ``months_each_side`` months before ``around`` to as many after."""
    cycles = []
    month_index = around.year * 12 + around.month - 1
    for index in range(month_index - months_each_side, month_index + months_each_side + 1):
        first = date(index // 12, index % 12 + 1, 1)
        cycles.append(first + timedelta(days=(7 - first.weekday()) % 7))
    return cycles


def read_calendar_file(path: Path) -> list[date]:
    """The cycle dates of a calendar CSV; a ValueError naming the line of a value that is not a day YYYY-MM-DD."""
    with path.open(newline="", encoding="utf-8-sig") as handle:  # Excel's "CSV UTF-8" starts with a BOM
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "cycle_date" not in reader.fieldnames:
            raise ValueError(f"S&OP calendar {path} needs a 'cycle_date' column")
        values = [(reader.line_num, (row["cycle_date"] or "").strip()) for row in reader]  # a short row: None
    cycles = set()
    for line, text in values:
        if not text:
            continue
        try:
            cycles.add(parse_iso_day(text))
        except ValueError:
            raise ValueError(f"S&OP calendar {path}, line {line}: cycle_date '{text}' is not a day YYYY-MM-DD") from None
    return sorted(cycles)


class SopCalendar(dg.ConfigurableResource):
    """S&OP cycle dates and how many days before a cycle its feedback is prepared.

    ``calendar_file`` (or the ``SOE_SOP_CALENDAR`` environment variable): CSV
    with a ``cycle_date`` column. Else ``cycle_dates``. Else monthly on the
    first Monday.
    """

    cycle_dates: list[str] = []
    calendar_file: str = ""
    lead_days: int = 5

    def cycles(self, around: date) -> list[date]:
        path = self.calendar_file or os.environ.get(CALENDAR_ENV, "")
        if path:
            return read_calendar_file(Path(path))
        if self.cycle_dates:
            return sorted({date.fromisoformat(text) for text in self.cycle_dates})
        return first_mondays(around)


def next_cycle(cycles: list[date], day: date) -> date | None:
    """The cycle a run on ``day`` prepares for: the first on or after it."""
    return next((cycle for cycle in sorted(cycles) if cycle >= day), None)


def previous_cycle(cycles: list[date], cycle: date) -> date | None:
    earlier = [c for c in cycles if c < cycle]
    return max(earlier) if earlier else None


def due_cycle(cycles: list[date], today: date, lead_days: int) -> date | None:
    """The cycle whose preparation window ``[cycle - lead_days, cycle]`` contains ``today``, if any."""
    return next((c for c in sorted(cycles) if c - timedelta(days=lead_days) <= today <= c), None)
