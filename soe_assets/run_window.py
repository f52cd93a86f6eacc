"""The S&OE window of a run (horizon and time fence): its limits, checked wherever a run is configured (the command
line, a run launched from the UI) before anything runs."""

from __future__ import annotations

# S&OE looks weeks ahead; two years is S&OP's business (and 13 mistyped as 1300 would build a view 100 times the size).
MAX_HORIZON_WEEKS = 104


def window_problem(horizon_weeks: int, time_fence_weeks: int) -> str | None:
    """What is wrong with an S&OE window, in the words of the command line's options; None when it is fine."""
    if not 1 <= horizon_weeks <= MAX_HORIZON_WEEKS:
        return f"--horizon-weeks must be between 1 and {MAX_HORIZON_WEEKS} (S&OE's window; got {horizon_weeks})"
    if not 0 <= time_fence_weeks <= horizon_weeks:
        return f"--time-fence-weeks must be between 0 and --horizon-weeks ({horizon_weeks}; got {time_fence_weeks})"
    return None
