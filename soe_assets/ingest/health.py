"""Input health after ingest: contract violations, rejected files, freshness (no Dagster here).

Read from ``raw.ingest_log``, ``raw.quarantine`` and ``raw.run_context``, so
the same findings back the Dagster asset checks, the alert sink and tests.

Two levels, on purpose (bad rows never stop a run):
- per-source *warnings*: some rows quarantined above the warning share, a
  file rejected whole, a source older than its freshness limit. The run goes
  on and publishes; the alert tells the owning team.
- *publish gates* (block publishing, the previous published set stays): a
  required source has no valid row at all (a source a network can lack,
  ``SourceContract.may_be_empty``, may be empty but not lose every row; so may
  sales orders where POS carries the demand, ``may_be_empty_beside``), or the
  newest extract of a source lost more than the blocking share of its rows. A
  loss of rows blocks only from ``block_min_rows`` quarantined rows on: a few bad
  rows of a small extract are bad input, quarantined and warned about like any
  other (the share of a ten-row file says nothing of a broken export); the rows
  read from a file rejected whole count among them. A newest extract that could
  not be read at all blocks nothing: as with an extract that never came, the
  older extracts' rows stand (the landing-zone contract's upsert), the file is
  quarantined and warned about, and ``freshness`` judges the age of what stands.
  ``published_marts`` evaluates the gates again itself, so no way of starting it
  publishes a blocked run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import duckdb
import pandas as pd

from data_contracts.sources import SOURCES, SOURCES_BY_NAME

DEFAULT_WARN_QUARANTINE_SHARE = 0.02
DEFAULT_BLOCK_QUARANTINE_SHARE = 0.25
DEFAULT_BLOCK_MIN_ROWS = 100


@dataclass(frozen=True)
class QualityLimits:
    """Per-source freshness limits (days) over the contract defaults, quarantine shares, and the quarantined
    rows of a newest extract from which their loss blocks publishing."""

    freshness_days: Mapping[str, int]
    warn_quarantine_share: float = DEFAULT_WARN_QUARANTINE_SHARE
    block_quarantine_share: float = DEFAULT_BLOCK_QUARANTINE_SHARE
    block_min_rows: int = DEFAULT_BLOCK_MIN_ROWS

    def freshness_limit(self, source: str) -> int:
        return int(self.freshness_days.get(source, SOURCES_BY_NAME[source].default_freshness_days))


def parse_freshness_days(text: str) -> dict[str, int]:
    """``"sales_orders=1, sop_plan=31"`` -> ``{"sales_orders": 1, "sop_plan": 31}`` (clear errors)."""
    limits: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, days = item.partition("=")
        name = name.strip()
        if not sep or name not in SOURCES_BY_NAME:
            known = ", ".join(SOURCES_BY_NAME)
            raise ValueError(f"freshness limit '{item}' must be SOURCE=DAYS with SOURCE one of: {known}")
        try:
            limits[name] = int(days)
        except ValueError:
            raise ValueError(f"freshness limit '{item}': '{days.strip()}' is not a whole number of days") from None
        if limits[name] < 0:
            raise ValueError(f"freshness limit '{item}' must not be negative")
    return limits


@dataclass(frozen=True)
class SourceHealth:
    source: str
    required: bool
    as_of: date
    files_read: int
    files_rejected: int
    rejected_files: tuple[str, ...]
    rows_read: int
    rows_valid: int
    rows_quarantined: int
    latest_accepted: date | None  # the newest extract with a usable file (not rejected whole, not every row quarantined)
    newest_extract: date | None  # the newest extract date read or rejected, on or before as_of
    newest_rows_read: int = 0
    newest_rows_quarantined: int = 0
    may_be_empty: bool = False  # SourceContract.may_be_empty
    may_be_empty_beside: str | None = None  # SourceContract.may_be_empty_beside
    # the columns most of the quarantined rows are rejected for, with their counts (most first; '' for the row)
    quarantined_columns: tuple[tuple[str, int], ...] = ()
    # per file rejected whole for columns (one it lacks, one stored as nested values): those columns
    rejected_for: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def present(self) -> bool:
        return self.files_read > 0 or self.files_rejected > 0

    @property
    def quarantine_share(self) -> float:
        """The share of the newest extract's rows quarantined: today's picture is what the gates protect, and a
        share over every extract read would shrink with each older extract kept in the landing zone."""
        return self.newest_rows_quarantined / self.newest_rows_read if self.newest_rows_read else 0.0

    @property
    def age_days(self) -> int | None:
        return (self.as_of - self.latest_accepted).days if self.latest_accepted else None


@dataclass(frozen=True)
class Finding:
    """The verdict of one check: ``passed`` or a message saying what is wrong."""

    passed: bool
    message: str
    metadata: dict


def read_source_health(conn: duckdb.DuckDBPyConnection) -> dict[str, SourceHealth]:
    """Per source, from ``raw.run_context``, ``raw.ingest_log`` and ``raw.quarantine``."""
    as_of = conn.execute("SELECT as_of FROM raw.run_context").fetchone()[0]
    log = {
        row[0]: row[1:]
        for row in conn.execute(
            "SELECT source, files_read, rows_read, rows_valid, rows_quarantined, latest_usable_extract_date, "
            "newest_extract_date, newest_rows_read, newest_rows_quarantined FROM raw.ingest_log"
        ).fetchall()
    }
    by_file = conn.execute(  # the quarantined rows per source, extract file and column
        "SELECT source, file, CASE WHEN starts_with(reason, 'malformed CSV row') THEN '' "
        "ELSE coalesce(\"column\", '') END AS column_name, count(*) AS n FROM raw.quarantine "
        "WHERE row_number IS NOT NULL GROUP BY ALL").df()
    by_file["extract_date"] = by_file["file"].map(extract_date_of)
    rejected: dict[str, dict[str, tuple[str, ...]]] = {}
    for source, file, columns in conn.execute(
        "SELECT source, file, max(\"column\") FROM raw.quarantine WHERE row_number IS NULL GROUP BY ALL "
        "ORDER BY source, file"
    ).fetchall():
        rejected.setdefault(source, {})[file] = tuple(columns.split(", ")) if columns else ()
    health = {}
    for contract in SOURCES:
        (files_read, rows_read, rows_valid, rows_quarantined, latest_usable, newest, newest_read,
         newest_quarantined) = log.get(contract.name, (0, 0, 0, 0, None, None, 0, 0))
        files = rejected.get(contract.name, {})
        health[contract.name] = SourceHealth(
            source=contract.name,
            required=contract.required,
            may_be_empty=contract.may_be_empty,
            may_be_empty_beside=contract.may_be_empty_beside,
            as_of=as_of,
            files_read=int(files_read or 0),
            files_rejected=len(files),
            rejected_files=tuple(files),
            rejected_for={file: columns for file, columns in files.items() if columns},
            rows_read=int(rows_read or 0),
            rows_valid=int(rows_valid or 0),
            rows_quarantined=int(rows_quarantined or 0),
            latest_accepted=latest_usable,
            newest_extract=newest,
            newest_rows_read=int(newest_read or 0),
            newest_rows_quarantined=int(newest_quarantined or 0),
            quarantined_columns=_columns_most_quarantined(by_file, contract.name, newest),
        )
    return health


def _columns_most_quarantined(by_file: pd.DataFrame, source: str, newest: date | None) -> tuple[tuple[str, int], ...]:
    """The columns most rows of the source's newest extract were quarantined for, with their counts."""
    of_newest = by_file[by_file["source"].eq(source) & by_file["extract_date"].eq(newest)]
    counts = of_newest.groupby("column_name")["n"].sum().sort_values(ascending=False, kind="stable")
    return tuple((str(column), int(rows)) for column, rows in counts.head(QUARANTINED_COLUMNS_SHOWN).items())


def extract_date_of(file: str) -> date | None:
    """The extract date a file name starts with (``YYYY-MM-DD...``), else None."""
    try:
        return date.fromisoformat(file[:10])
    except ValueError:
        return None


def named_briefly(names: Sequence[str], limit: int = 3) -> str:
    """The first ``limit`` names, and how many more."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _newest(health: SourceHealth) -> str:
    return f"its newest extract ({health.newest_extract})"


# How many of the columns rows are quarantined for a warning names.
QUARANTINED_COLUMNS_SHOWN = 3


def _quarantined_for(health: SourceHealth) -> str:
    """'; most for ordered_qty (8), sku_id (4)': where to look first (a malformed line counts for the row as a
    whole, whichever column DuckDB's reader found missing; a repeated key for the key's columns)."""
    if not health.quarantined_columns:
        return ""
    listed = ", ".join(f"{column or 'the row as a whole'} ({rows:,})" for column, rows in health.quarantined_columns)
    return f"; most for {listed}"


def _rejected_for(health: SourceHealth, file: str) -> str:
    """'2026-11-18_wms.csv (for promised_date, status)': a file rejected whole with the columns it was rejected
    for, as a row's column is named."""
    columns = health.rejected_for.get(file)
    return f"{file} (for {named_briefly(columns)})" if columns else file


def contract_violations(health: SourceHealth, limits: QualityLimits) -> Finding:
    """Warning: rows of the newest extract quarantined above the warning share, or files rejected whole."""
    share = health.quarantine_share
    metadata = {
        "rows_read": health.rows_read,
        "rows_quarantined": health.rows_quarantined,
        "newest_extract": str(health.newest_extract or ""),
        "newest_rows_read": health.newest_rows_read,
        "newest_rows_quarantined": health.newest_rows_quarantined,
        "quarantine_share": round(share, 4),
        "warn_share": limits.warn_quarantine_share,
        "files_rejected": health.files_rejected,
    }
    problems = []
    if share > limits.warn_quarantine_share:
        problems.append(
            f"{health.newest_rows_quarantined:,} of {health.newest_rows_read:,} rows of {_newest(health)} quarantined "
            f"({share:.1%}, warning above {limits.warn_quarantine_share:.0%}{_quarantined_for(health)})"
        )
    if health.files_rejected:
        files = [_rejected_for(health, file) for file in health.rejected_files]
        problems.append(f"{health.files_rejected} file(s) rejected whole: {named_briefly(files)}")
    if not problems:
        return Finding(True, f"{health.rows_quarantined:,} of {health.rows_read:,} rows quarantined", metadata)
    return Finding(False, f"{health.source}: " + "; ".join(problems) + " (see data_quality_issues)", metadata)


def freshness(health: SourceHealth, limits: QualityLimits) -> Finding:
    """Warning: the newest accepted extract is older than the source's freshness limit."""
    limit = limits.freshness_limit(health.source)
    metadata = {
        "limit_days": limit,
        "latest_accepted_extract": str(health.latest_accepted or ""),
        "as_of": str(health.as_of),
    }
    if not health.present and not health.required:
        return Finding(True, f"{health.source} is an optional source and absent", metadata)
    if health.latest_accepted is None:
        return Finding(False, f"{health.source}: no usable extract on or before as_of {health.as_of}", metadata)
    age = health.age_days
    metadata["age_days"] = age
    if age > limit:
        return Finding(
            False,
            f"{health.source}: newest usable extract is from {health.latest_accepted} ({age} days before as_of "
            f"{health.as_of}; limit {limit} days)",
            metadata,
        )
    return Finding(True, f"{health.source}: newest extract {age} day(s) old (limit {limit})", metadata)


def _may_be_empty(health: SourceHealth, healths: Mapping[str, SourceHealth]) -> bool:
    """A source a network can lack, or one whose facts another source with valid rows carries."""
    beside = healths.get(health.may_be_empty_beside) if health.may_be_empty_beside else None
    return health.may_be_empty or (beside is not None and beside.rows_valid > 0)


def required_sources_have_rows(healths: Mapping[str, SourceHealth]) -> Finding:
    """Publish gate: every required source has valid rows (one a network can lack, ``may_be_empty``, may have no
    rows at all, but not lose every row it has)."""
    problems = [
        f"{health.source}: no valid row at all" if health.rows_read
        else f"{health.source}: no row at all (its extracts are empty)" if health.files_read
        else f"{health.source}: no extract dated on or before as_of {health.as_of}"
        for health in healths.values()
        if health.required and health.rows_valid == 0 and (health.rows_read or not _may_be_empty(health, healths))
    ]
    metadata = {"sources_blocking": len(problems)}
    if problems:
        return Finding(False, "publishing blocked: " + "; ".join(problems), metadata)
    return Finding(True, "every required source has valid rows", metadata)


def quarantine_share_below_limit(healths: Mapping[str, SourceHealth], limits: QualityLimits) -> Finding:
    """Publish gate: no source's newest extract lost more than the blocking share of its rows to the quarantine,
    counting from ``block_min_rows`` quarantined rows."""
    over = [h for h in healths.values()
            if h.quarantine_share > limits.block_quarantine_share and h.newest_rows_quarantined >= limits.block_min_rows]
    metadata = {"block_share": limits.block_quarantine_share, "block_min_rows": limits.block_min_rows,
                **{f"share.{h.source}": round(h.quarantine_share, 4) for h in healths.values() if h.newest_rows_read}}
    if over:
        listed = "; ".join(
            f"{h.source}: {h.newest_rows_quarantined:,} of {h.newest_rows_read:,} rows of {_newest(h)} "
            f"({h.quarantine_share:.0%})" for h in over
        )
        return Finding(
            False,
            f"publishing blocked: more than {limits.block_quarantine_share:.0%} of the rows quarantined in {listed}",
            metadata,
        )
    return Finding(True, f"no source above {limits.block_quarantine_share:.0%} quarantined "
                         f"(counting from {limits.block_min_rows:,} rows)", metadata)


PUBLISH_GATES = ("required_sources_have_rows", "quarantine_share_below_limit")


def publish_gates(healths: Mapping[str, SourceHealth], limits: QualityLimits) -> dict[str, Finding]:
    """The verdicts that decide whether a run may publish, by gate name."""
    return {"required_sources_have_rows": required_sources_have_rows(healths),
            "quarantine_share_below_limit": quarantine_share_below_limit(healths, limits)}
