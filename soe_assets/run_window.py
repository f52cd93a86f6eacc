"""The settings of a run that every way of starting one checks before anything runs (the command line, a run
launched from the UI): the S&OE window (horizon and time fence) and the form of a day."""

from __future__ import annotations

import re
from datetime import date

# S&OE looks weeks ahead; two years is S&OP's business (and 13 mistyped as 1300 would build a view 100 times the size).
MAX_HORIZON_WEEKS = 104
# A day as the settings take it: YYYY-MM-DD only (Python also reads 20261120 and 2026-W47-5).
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_iso_day(text: str) -> date:
    """A day written YYYY-MM-DD only; a ValueError saying which of the two it is not."""
    if not ISO_DAY.fullmatch(text):
        raise ValueError(f"'{text}' is not a date YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is no day of the calendar") from None


def window_problem(horizon_weeks: int, time_fence_weeks: int, horizon_name: str = "--horizon-weeks",
                   fence_name: str = "--time-fence-weeks") -> str | None:
    """What is wrong with an S&OE window, in the words of the settings' names (the command line's options by
    default); None when it is fine."""
    if not 1 <= horizon_weeks <= MAX_HORIZON_WEEKS:
        return f"{horizon_name} must be between 1 and {MAX_HORIZON_WEEKS} (S&OE's window; got {horizon_weeks})"
    if not 0 <= time_fence_weeks <= horizon_weeks:
        return f"{fence_name} must be between 0 and {horizon_name} ({horizon_weeks}; got {time_fence_weeks})"
    return None
