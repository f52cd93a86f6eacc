"""The benchmark judges each run against the speed and memory targets of its size, honestly: a ratio to the
floor counts as met only on both floors measured around the run."""

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "run_benchmark.py"
spec = importlib.util.spec_from_file_location("run_benchmark", SCRIPT)
run_benchmark = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = run_benchmark  # its dataclass resolves annotations through the module
spec.loader.exec_module(run_benchmark)


def result(sku_location_weeks, seconds, peak_gb, ratio, ratio_after, ok=True):
    return {"sku_location_weeks": sku_location_weeks, "seconds": seconds, "peak_rss_gb": peak_gb,
            "ratio_to_floor": ratio, "ratio_to_floor_after": ratio_after, "ok": ok}


def test_a_1m_run_is_judged_on_time_and_memory_only():
    lines = run_benchmark.verdicts(result(1_248_000, 29.3, 1.49, 20.3, 19.7))
    assert lines == ["end to end 29.3 s (target <= 30): met", "peak memory 1.49 GB (target <= 2): met"]
    over = run_benchmark.verdicts(result(1_248_000, 30.4, 2.1, 20.3, 19.7))
    assert over == ["end to end 30.4 s (target <= 30): NOT met", "peak memory 2.1 GB (target <= 2): NOT met"]


def test_a_10m_run_is_judged_on_its_worse_floor_too():
    lines = run_benchmark.verdicts(result(12_480_000, 170.8, 6.67, 24.2, 23.7))
    assert lines == ["end to end 170.8 s (target <= 180): met", "peak memory 6.67 GB (target <= 8): met",
                     "end to end / floor 24.2 x (target <= 15): NOT met"]
    # met against the floor before the run, not against the one after it: not claimed
    assert run_benchmark.verdicts(result(12_480_000, 100.0, 6.0, 14.5, 15.2))[-1] == (
        "end to end / floor 15.2 x (target <= 15): NOT met")


def test_no_verdict_for_a_size_without_a_target_or_a_failed_run():
    assert run_benchmark.verdicts(result(3_000_000, 60.0, 3.0, 20.0, 20.0)) == []
    assert run_benchmark.verdicts(result(None, 60.0, 3.0, None, None)) == []
    assert run_benchmark.verdicts(result(12_480_000, 170.8, 6.67, 24.2, 23.7, ok=False)) == []
