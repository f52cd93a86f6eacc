"""Time `soe run` end to end and per stage on large generated networks, with peak memory.

    python benchmarks/run_benchmark.py [--sizes 20000 200000] [--dcs 4] [--workdir /tmp/soe-bench] [--copy-floor]
                                       [--runs first daily]

For each size it generates a landing zone (once; reused when present), measures a
floor (DuckDB reading every input file once, before the run and again after it; with
``--copy-floor`` also DuckDB copying every file into a table, unvalidated), lets dbt parse the project for the
run's warehouse (untimed, as a previous run on it would have), then runs `soe run` in a child
process: the first run, on a fresh warehouse (every extract is new), and a daily run (the
previous day's run, without the newest extract of each daily source, is set up first,
untimed; the timed run ingests only those extracts); ``--runs`` picks one. For each it
reports wall time, CPU time (of `soe run` and the dbt subprocess: steadier than wall time
when the machine's speed drifts), per-stage times (from the run's progress lines) and peak
memory: the largest sum of resident memory over `soe run` and all its
descendants (the dbt subprocess included), sampled every 0.1 s from /proc, with the
CPU seconds of each stage (from its start to the next one's). Results are appended to
`<workdir>/results.jsonl` and printed as a table.
"""

from __future__ import annotations

import argparse
import json
import re
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from data_contracts.sources import SOURCES
from soe_assets.duckdb_settings import MEMORY_LIMIT_ENV, resolve_memory_limit
from soe_assets.ingest.landing import list_extracts

DBT_PROJECT = Path(__file__).resolve().parent.parent / "dbt_project"
STAGE_LINE = re.compile(r"^\[(?P<step>[^\]]+)\] done in (?P<seconds>[\d.]+) s")
STAGE_START = re.compile(r"^\[(?P<step>[^\]]+)\] started")
SOE = Path(sys.executable).parent / "soe"


@dataclass(frozen=True)
class Target:
    """soe's speed and memory targets for a network of about ``sku_location_weeks`` rows in the trusted view."""

    sku_location_weeks: int
    seconds: float
    peak_gb: float
    ratio_to_floor: float | None = None

    def applies_to(self, sku_location_weeks: int | None) -> bool:
        """A run is judged by the target of its size, within a factor of two."""
        size = self.sku_location_weeks
        return bool(sku_location_weeks) and size / 2 <= sku_location_weeks <= size * 2


TARGETS = (Target(1_000_000, seconds=30, peak_gb=2), Target(10_000_000, seconds=180, peak_gb=8, ratio_to_floor=15))


def verdicts(result: dict) -> list[str]:
    """Each target the run's size has, met or not: the ratio to the floor against the worse of its two floors
    (this machine's speed drifts; a target met on one floor only is not claimed)."""
    target = next((t for t in TARGETS if t.applies_to(result["sku_location_weeks"])), None)
    if target is None or not result["ok"]:
        return []
    judged = [("end to end", result["seconds"], target.seconds, "s"),
              ("peak memory", result["peak_rss_gb"], target.peak_gb, "GB")]
    ratios = [r for r in (result["ratio_to_floor"], result["ratio_to_floor_after"]) if r is not None]
    if target.ratio_to_floor is not None and ratios:
        judged.append(("end to end / floor", max(ratios), target.ratio_to_floor, "x"))
    return [f"{name} {value:g} {unit} (target <= {limit:g}): {'met' if value <= limit else 'NOT met'}"
            for name, value, limit, unit in judged]


def _generate(landing: Path, skus: int, dcs: int) -> None:
    if (landing / "_planted_problems.json").exists():
        print(f"reusing {landing}", flush=True)
        return
    print(f"generating {skus:,} SKUs x {dcs} DCs into {landing} ...", flush=True)
    subprocess.run([str(SOE), "generate", "--out", str(landing), "--skus", str(skus), "--dcs", str(dcs)], check=True)


def _extract_scan(path: Path) -> str:
    """SQL reading one extract as DuckDB reads it by itself: Parquet as stored, CSV as text."""
    if path.suffix == ".parquet":
        return "read_parquet(?)"
    return "read_csv(?, all_varchar = true)"


def _read_every_extract(landing: Path) -> tuple[float, int]:
    """Count every column's values: a bare ``count(*)`` would let DuckDB skip the columns (and answer a
    Parquet file from its footer), which is not reading the file."""
    started = time.perf_counter()
    rows = 0
    with duckdb.connect() as conn:
        for path in sorted(landing.glob("*/*")):
            relation = conn.sql(f"SELECT * FROM {_extract_scan(path)}", params=[str(path)])
            counts = ", ".join('count("' + column.replace('"', '""') + '")' for column in relation.columns)
            rows += conn.execute(f"SELECT count(*), {counts} FROM {_extract_scan(path)}", [str(path)]).fetchone()[0]
    return time.perf_counter() - started, rows


def copy_floor(landing: Path, workdir: Path) -> float:
    """Seconds for DuckDB to copy every extract, as read, into a table of a fresh database file.

    A second reference beside the read floor: the least any design pays that
    keeps the inputs in the warehouse before transforming them, with no
    validation, typing or upsert.
    """
    database = workdir / "copy_floor.duckdb"
    database.unlink(missing_ok=True)
    try:
        started = time.perf_counter()
        with duckdb.connect(str(database)) as conn:
            conn.execute("SET preserve_insertion_order = false")
            for number, path in enumerate(sorted(landing.glob("*/*"))):
                conn.execute(f"CREATE TABLE extract_{number} AS SELECT * FROM {_extract_scan(path)}", [str(path)])
        return time.perf_counter() - started
    finally:
        database.unlink(missing_ok=True)


def read_floor(landing: Path) -> tuple[float, int]:
    """Seconds for DuckDB to read every extract once (all rows, all columns), and the row count.

    Read twice, the second time timed: the files are then in the page cache,
    as they are for the run that follows, so the ratio compares like with like.
    """
    _read_every_extract(landing)
    return _read_every_extract(landing)


PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _tree_usage(root: int) -> tuple[int, float]:
    """Resident bytes and CPU seconds of ``root`` and every live descendant, from /proc.

    CPU counts the root's own time and that of the children it has waited for
    (``cutime``/``cstime``), so a dbt subprocess that has ended still counts.
    """
    parents: dict[int, int] = {}
    resident: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            statm = Path(entry.path, "statm").read_text()
        except OSError:
            continue  # the process ended while we looked
        fields = stat[stat.rindex(")") + 2:].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        resident[pid] = int(statm.split()[1]) * PAGE_BYTES
        # utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the state and the parent
        cpu[pid] = sum(int(f) for f in fields[11:15]) / CLOCK_TICKS
    tree, frontier = {root}, [root]
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    while frontier:
        for child in children.get(frontier.pop(), []):
            tree.add(child)
            frontier.append(child)
    return sum(resident.get(pid, 0) for pid in tree), sum(cpu.get(pid, 0.0) for pid in tree)


class TreeSampler(threading.Thread):
    """Samples the process tree's resident memory and CPU time every 0.1 s until the root ends.

    Keeps the peak memory overall and per stage, and the CPU seconds spent
    from each stage's start to the next one's: CPU beside wall time shows
    how much of a stage kept both cores busy.
    """

    def __init__(self, process: subprocess.Popen) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.peak_bytes = 0
        self.stage = "start-up"
        self.stage_peaks: dict[str, int] = {}
        self.stage_cpu: dict[str, float] = {}
        self._stage_cpu_start = 0.0

    def run(self) -> None:
        stage = self.stage
        while self.process.poll() is None:
            resident, cpu = _tree_usage(self.process.pid)
            if self.stage != stage:  # the stage changed since the last sample
                self.stage_cpu[stage] = cpu - self._stage_cpu_start
                stage, self._stage_cpu_start = self.stage, cpu
            self.peak_bytes = max(self.peak_bytes, resident)
            self.stage_peaks[stage] = max(self.stage_peaks.get(stage, 0), resident)
            self.stage_cpu[stage] = cpu - self._stage_cpu_start
            time.sleep(0.1)


def parse_dbt_project_for(landing: Path, warehouse: Path, memory_limit: str) -> None:
    """Let dbt parse the project for this warehouse, untimed, as any earlier run on it would have.

    dbt keys its partial parse on the profile, which names the warehouse file
    and the memory budget: the first run on a new warehouse parses the whole
    project (about 3 s more), a daily run finds the state its previous run
    left. The timed run starts from that state too.
    """
    env = {**os.environ, "SOE_WAREHOUSE": str(warehouse.resolve()),
           MEMORY_LIMIT_ENV: resolve_memory_limit(memory_limit, landing),
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    subprocess.run([str(SOE.with_name("dbt")), "parse", "--quiet", "--project-dir", str(DBT_PROJECT),
                    "--profiles-dir", str(DBT_PROJECT)], env=env, check=True)


RUN_KINDS = ("first", "daily")
# A source whose contract expects an extract at least this often changes between two daily runs.
DAILY_FRESHNESS_DAYS = 7
# Where a daily run's new extracts wait while the previous day's run is set up: a hidden folder, which runs
# never read.
HELD_BACK = ".benchmark-held-back"


def newest_daily_extracts(landing: Path) -> list[Path]:
    """The newest extract of each source the contracts expect daily (a freshness limit of a few days): what
    arrives between two daily runs. Master data and the S&OP plan change monthly."""
    newest = []
    for source in SOURCES:
        extracts = [e for e in list_extracts(landing, source.name) if e.extract_date]
        if extracts and source.default_freshness_days <= DAILY_FRESHNESS_DAYS:
            newest.append(max(extracts, key=lambda e: e.extract_date).path)
    return newest


@contextmanager
def held_back(extracts: list[Path]) -> Iterator[None]:
    """The extracts moved aside (into ``HELD_BACK`` of their source folder) for the block, then put back."""
    moved = []
    try:
        for path in extracts:
            aside = path.parent / HELD_BACK / path.name
            aside.parent.mkdir(exist_ok=True)
            path.rename(aside)
            moved.append((aside, path))
        yield
    finally:
        for aside, path in moved:
            aside.rename(path)
            aside.parent.rmdir()


def _soe_run_command(landing: Path, workdir: Path, memory_limit: str) -> list[str]:
    return [str(SOE), "run", "--landing", str(landing), "--warehouse", str(workdir / "warehouse" / "soe.duckdb"),
            "--publish", str(workdir / "publish"), *(["--memory-limit", memory_limit] if memory_limit else [])]


def run_once(landing: Path, workdir: Path, memory_limit: str, daily: bool = False) -> dict:
    """Time one `soe run` on a fresh warehouse; with ``daily``, the run that follows the previous day's, whose
    warehouse holds every extract but the newest daily ones (that run is set up first, untimed)."""
    warehouse = workdir / "warehouse" / "soe.duckdb"
    for stale in (warehouse, warehouse.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    if daily:  # the previous day's run, with the same command, leaves dbt's parse state for the daily one
        new = newest_daily_extracts(landing)
        print(f"the previous day's run, untimed, without {len(new)} newest daily extracts "
              f"({', '.join(f'{p.parent.name}/{p.name}' for p in new)}) ...", flush=True)
        with held_back(new):
            previous = subprocess.run(_soe_run_command(landing, workdir, memory_limit), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
        if previous.returncode:
            print(previous.stdout[-4000:], flush=True)
            return {"ok": False, "seconds": 0.0, "cpu_seconds": 0.0, "peak_rss_gb": 0.0, "stages": {},
                    "stage_peak_rss_gb": {}, "stage_cpu_seconds": {}}
    else:
        parse_dbt_project_for(landing, warehouse, memory_limit)
    started = time.perf_counter()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(
        _soe_run_command(landing, workdir, memory_limit), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    memory = TreeSampler(process)
    memory.start()
    stages: dict[str, float] = {}
    for line in process.stdout:
        print("   ", line.rstrip(), flush=True)
        start = STAGE_START.match(line.strip())
        if start:
            memory.stage = start["step"]
        match = STAGE_LINE.match(line.strip())
        if match:
            stages[match["step"]] = float(match["seconds"])
    code = process.wait()
    elapsed = time.perf_counter() - started
    # CPU of `soe run` and every process it waited for (dbt): steadier than wall time on a busy machine.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    memory.join()
    return {"ok": code == 0, "seconds": round(elapsed, 1), "cpu_seconds": round(cpu, 1),
            "peak_rss_gb": round(memory.peak_bytes / 1024**3, 2),
            "stages": stages,
            "stage_peak_rss_gb": {stage: round(peak / 1024**3, 2) for stage, peak in memory.stage_peaks.items()},
            "stage_cpu_seconds": {stage: round(cpu, 1) for stage, cpu in memory.stage_cpu.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 200000], help="SKU counts to benchmark")
    parser.add_argument("--dcs", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/soe-bench"))
    parser.add_argument("--memory-limit", default="", metavar="SIZE",
                        help="passed to `soe run --memory-limit` (default: soe's own default)")
    parser.add_argument("--copy-floor", action="store_true",
                        help="also time DuckDB copying every extract into tables (no validation)")
    parser.add_argument("--runs", nargs="+", choices=RUN_KINDS, default=list(RUN_KINDS),
                        help="first: a run on a fresh warehouse, every extract new; daily: the run after the "
                        "previous day's, which ingested every extract but the newest of each daily source (set up "
                        "first, untimed) (default: both)")
    args = parser.parse_args()
    results = []
    for skus, kind in [(skus, kind) for skus in args.sizes for kind in args.runs]:
        workdir = args.workdir / f"skus{skus}_dcs{args.dcs}"
        landing = workdir / "landing"
        _generate(landing, skus, args.dcs)
        print(f"{kind} run of {skus:,} SKUs", flush=True)
        floor, input_rows = read_floor(landing)
        print(f"floor: DuckDB reads {input_rows:,} input rows in {floor:.1f} s", flush=True)
        copy = copy_floor(landing, workdir) if args.copy_floor and kind == "first" else None
        if copy is not None:
            print(f"copy floor: DuckDB copies them into tables in {copy:.1f} s", flush=True)
        outcome = run_once(landing, workdir, args.memory_limit, daily=kind == "daily")
        # The floor again after the run: this machine's speed drifts within minutes, and the two floors
        # bracket the speed the run met (the ratio is given against each).
        floor_after, _ = read_floor(landing)
        print(f"floor after the run: {floor_after:.1f} s", flush=True)
        with duckdb.connect(str(workdir / "warehouse" / "soe.duckdb"), read_only=True) as conn:
            slw = conn.execute("SELECT count(*) FROM marts.sku_location_week").fetchone()[0] if outcome["ok"] else None
        result = {"skus": skus, "dcs": args.dcs, "run": kind, "memory_limit": args.memory_limit or "default",
                  "input_rows": input_rows, "sku_location_weeks": slw,
                  "floor_seconds": round(floor, 1), "floor_after_seconds": round(floor_after, 1),
                  "copy_floor_seconds": round(copy, 1) if copy else None,
                  **outcome,
                  "ratio_to_floor": round(outcome["seconds"] / floor, 1) if floor else None,
                  "ratio_to_floor_after": round(outcome["seconds"] / floor_after, 1) if floor_after else None}
        results.append(result)
        with (args.workdir / "results.jsonl").open("a") as log:
            log.write(json.dumps(result) + "\n")
    print()
    print(f"{'skus':>8} {'run':>5} {'SLW rows':>11} {'input rows':>12} {'floor s':>11} {'copy s':>7} {'run s':>7} {'cpu s':>7} "
          f"{'x floor':>11} {'peak GB':>8}  stages (time/CPU/peak memory)")
    for r in results:
        stages = ", ".join(
            f"{k} {v:.1f}s/{r['stage_cpu_seconds'].get(k, 0):.1f}s/{r['stage_peak_rss_gb'].get(k, 0):.1f}GB"
            for k, v in r["stages"].items()
        )
        floors = f"{r['floor_seconds']}/{r['floor_after_seconds']}"
        ratios = f"{r['ratio_to_floor'] or 0}/{r['ratio_to_floor_after'] or 0}"
        print(f"{r['skus']:>8,} {r['run']:>5} {r['sku_location_weeks'] or 0:>11,} {r['input_rows']:>12,} {floors:>11} "
              f"{r['copy_floor_seconds'] or '-':>7} "
              f"{r['seconds']:>7} {r['cpu_seconds']:>7} {ratios:>11} {r['peak_rss_gb']:>8}  {stages}")
    for r in results:
        for line in verdicts(r):
            print(f"{r['sku_location_weeks']:>20,} SKU-location-weeks, {r['run']} run: {line}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
