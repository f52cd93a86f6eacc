"""DuckDB settings shared by every connection: the Python stages' and dbt's (no heavy imports here)."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

MEMORY_LIMIT_ENV = "SOE_DUCKDB_MEMORY_LIMIT"
LANDING_DIR_ENV = "SOE_LANDING_DIR"
DEFAULT_MEMORY_LIMIT = "auto"
MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)

GIB = 2**30
# DuckDB's units: KB, MB ... are powers of 1000, KiB, MiB ... of 1024.
UNIT_BYTES = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
# Below this DuckDB runs out of memory on the smallest network before spilling helps (0GB, 100KB).
MIN_MEMORY_LIMIT_BYTES = 256 * 2**20
MAX_MEMORY_LIMIT_BYTES = 2**63  # DuckDB counts bytes in 64 bits
AUTO_FLOOR_BYTES = 1 * GIB
AUTO_CEILING_BYTES = 6 * GIB
# The trusted view's joins and windows hold about 1.4 times the landing zone's data
# (10M SKU-location-weeks: 6.3 GB of DuckDB buffers for 4.6 GiB of extracts).
AUTO_DATA_FACTOR = 1.5


# How long a run waits for a reader that holds the warehouse file (a planner's `soe exceptions --warehouse`, a
# notebook: readers are told to read the published marts, but one that opens the live file between two steps
# would otherwise fail the run), at its start and at each step.
LOCK_WAIT_SECONDS = 60.0


class InvalidMemoryLimit(ValueError):
    """``SOE_DUCKDB_MEMORY_LIMIT`` is neither ``auto`` nor a size such as 1GB or 512MB."""


def memory_limit() -> str:
    """DuckDB's memory budget per connection, for the Python stages and dbt alike.

    Beyond it DuckDB spills to disk instead of growing, so a run's footprint
    stays predictable. ``auto`` (the default) sizes it to the landing zone in
    ``$SOE_LANDING_DIR`` (see ``auto_memory_limit``); an explicit size wins.
    """
    return resolve_memory_limit(os.environ.get(MEMORY_LIMIT_ENV, ""), os.environ.get(LANDING_DIR_ENV))


def resolve_memory_limit(value: str, landing_dir: str | Path | None) -> str:
    """``value`` (``auto``, empty for the default, or a size) as the size DuckDB is given."""
    value = value.strip() or DEFAULT_MEMORY_LIMIT
    if value.lower() == "auto":
        return auto_memory_limit(landing_dir)
    size = MEMORY_SIZE.match(value)
    if not size:
        raise InvalidMemoryLimit(f"{MEMORY_LIMIT_ENV}={value!r} is not 'auto' or a memory size such as 1GB or 512MB")
    size_bytes = float(value[:size.start(2)]) * UNIT_BYTES[size.group(2).lower()]
    if size_bytes < MIN_MEMORY_LIMIT_BYTES:
        raise InvalidMemoryLimit(f"{MEMORY_LIMIT_ENV}={value!r} is too small: soe needs at least 256MiB")
    if size_bytes > MAX_MEMORY_LIMIT_BYTES:
        raise InvalidMemoryLimit(f"{MEMORY_LIMIT_ENV}={value!r} is more bytes than DuckDB can count (8EiB)")
    return value


def auto_memory_limit(landing_dir: str | Path | None) -> str:
    """One and a half times the landing zone's data size, at least 1GiB, at most 6GiB and a quarter of the
    machine's memory.

    The largest joins and windows (the trusted view, the reconciliation) grow
    with the inputs: within 4GiB DuckDB spilled 4.4 GB of the trusted view to
    disk at 10M SKU-location-weeks and took half as long again as within 6GiB;
    small networks never need more than 1GiB, which keeps a 1M run inside 2 GB
    (1.6 GB).
    """
    size = landing_data_bytes(Path(landing_dir)) if landing_dir else 0
    return f"{auto_budget_bytes(size, _physical_memory_bytes()) // 2**20}MiB"


def auto_budget_bytes(data_bytes: int, physical_bytes: int) -> int:
    ceiling = max(AUTO_FLOOR_BYTES, min(AUTO_CEILING_BYTES, physical_bytes // 4))
    return min(max(int(data_bytes * AUTO_DATA_FACTOR), AUTO_FLOOR_BYTES), ceiling)


def landing_data_bytes(landing_dir: Path) -> int:
    """CSV bytes plus Parquet's uncompressed bytes: what DuckDB will hold, comparable across formats."""
    if not landing_dir.is_dir():
        return 0
    from soe_assets.ingest.landing import UnreadableFile, extract_format  # pyarrow: only where a run sizes

    total = 0
    for path in landing_dir.glob("*/*"):  # the source folders' extracts
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            parquet = extract_format(path) == "parquet"
        except UnreadableFile:  # packed: ingest rejects it unread
            continue
        stat = path.stat()
        total += _parquet_data_bytes(str(path), stat.st_mtime_ns, stat.st_size) if parquet else stat.st_size
    return total


@functools.lru_cache(maxsize=4096)
def _parquet_data_bytes(path: str, mtime_ns: int, file_bytes: int) -> int:
    """Uncompressed size from the footer (cached per file version); the file size if the footer is unreadable."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path).metadata
    except (OSError, ValueError):  # a damaged file is ingest's business (quarantined there); here it only counts its bytes
        return file_bytes
    return sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))


def _physical_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 4 * AUTO_CEILING_BYTES  # unknown: do not let the machine's size lower the ceiling


# What DuckDB's error says when Ctrl-C or a stop signal reached a query (a RuntimeError when DuckDB met the
# SIGINT itself, an InterruptException when the query was interrupted through its connection).
DUCKDB_INTERRUPTED = "Query interrupted"
