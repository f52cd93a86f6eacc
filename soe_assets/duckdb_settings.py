"""DuckDB settings shared by every connection: the Python stages' and dbt's (no heavy imports here)."""

from __future__ import annotations

import os
import re

MEMORY_LIMIT_ENV = "SOE_DUCKDB_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "1GB"  # also the default in dbt_project/profiles.yml
MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


class InvalidMemoryLimit(ValueError):
    """``SOE_DUCKDB_MEMORY_LIMIT`` is not a size such as 1GB or 512MB."""


def memory_limit() -> str:
    """DuckDB's memory budget per connection, for the Python stages and dbt alike.

    Beyond it DuckDB spills to disk instead of growing, so a run's footprint
    stays predictable; raise it for large networks on large machines.
    """
    value = os.environ.get(MEMORY_LIMIT_ENV, "").strip() or DEFAULT_MEMORY_LIMIT
    if not MEMORY_SIZE.match(value):
        raise InvalidMemoryLimit(f"{MEMORY_LIMIT_ENV}={value!r} is not a memory size such as 1GB or 512MB")
    return value
