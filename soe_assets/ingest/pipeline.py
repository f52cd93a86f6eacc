"""Ingest a landing zone: read every extract, validate, upsert, quarantine.

The rules are those of ``shared/spec/landing-zone.md``: a source's files are
unioned and the latest valid version of each primary key wins (extract date,
then file name in byte order); an invalid row goes to the quarantine with
its source, file, 1-based row number, column and reason, and every valid row
of the same file still flows on; a file that cannot be read, has no extract
date in its name or lacks a contract column is quarantined whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from data_contracts.sources import SOURCES, SourceContract
from data_contracts.validation import MasterData, missing_columns, validate_extract
from soe_assets.ingest.landing import INVALID_UTF8, Extract, UnreadableFile, list_extracts, read_extract_text
from soe_assets.warehouse import RunContext, replace_table

QUARANTINE_COLUMNS = ["source", "file", "row_number", "column", "reason", "raw_record"]

Progress = Callable[[str], None]


class LandingZoneError(Exception):
    """A problem with the landing zone as a whole that the user must fix (no traceback)."""


@dataclass
class SourceReport:
    source: str
    files_read: int = 0
    files_skipped: int = 0
    latest_extract_date: date | None = None
    rows_read: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0


@dataclass
class IngestResult:
    as_of: date
    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    reports: dict[str, SourceReport] = field(default_factory=dict)

    @property
    def rows_read(self) -> int:
        return sum(r.rows_read for r in self.reports.values())

    @property
    def rows_quarantined(self) -> int:
        return sum(r.rows_quarantined for r in self.reports.values())


def resolve_as_of(landing_dir: Path, requested: date | None) -> date:
    """The run's as_of: as requested, else the latest extract date in the landing zone."""
    check_landing_zone(landing_dir)
    if requested is not None:
        return requested
    dates = [e.extract_date for s in SOURCES for e in list_extracts(landing_dir, s.name) if e.extract_date]
    if not dates:
        raise LandingZoneError(f"no extract in {landing_dir} has a name starting with a date YYYY-MM-DD")
    return max(dates)


def check_landing_zone(landing_dir: Path) -> None:
    if not landing_dir.is_dir():
        raise LandingZoneError(f"landing zone {landing_dir} does not exist or is not a folder")
    missing = [s.name for s in SOURCES if s.required and not (landing_dir / s.name).is_dir()]
    if missing:
        raise LandingZoneError(
            f"landing zone {landing_dir} lacks required source folder(s): {', '.join(missing)} "
            "(see the landing-zone layout in the README)"
        )


def _whole_file(extract: Extract, reason: str, column: str | None = None, raw: str | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        [{"source": extract.source, "file": extract.file, "row_number": None, "column": column,
          "reason": reason, "raw_record": raw}],
        columns=QUARANTINE_COLUMNS,
    )


def _row_quarantine(extract: Extract, text: pd.DataFrame, rejections: pd.DataFrame) -> pd.DataFrame:
    rows = text.set_index("_row_number").loc[rejections["row_number"].unique()]
    rows = rows.drop(columns=[c for c in rows.columns if c.startswith("_")])
    raw = pd.Series(rows.to_json(orient="records", lines=True).splitlines(), index=rows.index)
    return pd.DataFrame(
        {
            "source": extract.source,
            "file": extract.file,
            "row_number": rejections["row_number"].to_numpy(),
            "column": rejections["column"].to_numpy(),
            "reason": rejections["reason"].to_numpy(),
            "raw_record": raw.loc[rejections["row_number"]].to_numpy(),
        }
    )


def _with_utf8_rejections(text: pd.DataFrame, rejections: pd.DataFrame) -> pd.DataFrame:
    if INVALID_UTF8 not in text:
        return rejections
    bad = text.loc[text[INVALID_UTF8], "_row_number"]
    extra = pd.DataFrame({"row_number": bad, "column": None, "reason": "the row holds bytes that are not valid UTF-8"})
    return pd.concat([rejections, extra], ignore_index=True)


def _ingest_source(
    source: SourceContract, landing_dir: Path, as_of: date, master: MasterData | None
) -> tuple[pd.DataFrame, pd.DataFrame, SourceReport]:
    report = SourceReport(source.name)
    valid_parts: list[pd.DataFrame] = []
    rejected_keys: list[pd.DataFrame] = []
    quarantine: list[pd.DataFrame] = []
    for extract in list_extracts(landing_dir, source.name):
        if extract.extract_date is None:
            quarantine.append(_whole_file(extract, "file name does not start with an extract date YYYY-MM-DD"))
            continue
        if extract.extract_date > as_of:
            report.files_skipped += 1  # not yet happened from this run's point of view
            continue
        try:
            text = read_extract_text(extract)
        except UnreadableFile as error:
            quarantine.append(_whole_file(extract, str(error)))
            continue
        report.files_read += 1
        report.latest_extract_date = max(filter(None, [report.latest_extract_date, extract.extract_date]))
        report.rows_read += len(text)
        missing = missing_columns(source, list(text.columns))
        if missing:
            hint = " (is the delimiter a comma?)" if len(text.columns) <= 2 and ";" in "".join(text.columns) else ""
            header = pd.Series([[c for c in text.columns if not c.startswith("_")]]).to_json(orient="values")
            quarantine.append(
                _whole_file(
                    extract,
                    f"missing required column(s) {', '.join(missing)}{hint}: the whole file is quarantined",
                    column=", ".join(missing),
                    raw=header,
                )
            )
            report.rows_quarantined += len(text)
            continue
        result = validate_extract(source, text, extract_date=extract.extract_date, master=master)
        rejections = _with_utf8_rejections(text, result.rejections)
        if len(rejections):
            quarantine.append(_row_quarantine(extract, text, rejections))
            bad = result.typed["_row_number"].isin(rejections["row_number"])
            rejected_keys.append(result.typed.loc[bad, [*source.primary_key, "_row_number"]].assign(_file=extract.file))
            report.rows_quarantined += int(bad.sum())
            valid = result.typed[~bad]
        else:
            valid = result.typed
        valid_parts.append(valid.assign(_file=extract.file, _extract_date=pd.Timestamp(extract.extract_date)))

    columns = [*source.columns, "_file", "_extract_date", "_row_number"]
    if valid_parts:
        union = pd.concat(valid_parts, ignore_index=True)
        table = union.drop_duplicates(subset=source.primary_key, keep="last")[columns].reset_index(drop=True)
    else:
        table = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    report.rows_valid = len(table)
    quarantined = pd.concat(quarantine, ignore_index=True) if quarantine else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    if rejected_keys and len(table):
        quarantined = _note_surviving_versions(source, quarantined, pd.concat(rejected_keys), table)
    return table, quarantined, report


def _note_surviving_versions(
    source: SourceContract, quarantined: pd.DataFrame, rejected_keys: pd.DataFrame, table: pd.DataFrame
) -> pd.DataFrame:
    """Say in the quarantine which valid version of a rejected key stands instead."""
    pk = source.primary_key
    keys = rejected_keys.dropna(subset=pk)
    survivors = keys.merge(table[[*pk, "_file"]].rename(columns={"_file": "_kept_file"}), on=pk)
    if survivors.empty:
        return quarantined
    survivors = survivors[["_file", "_row_number", "_kept_file"]].rename(
        columns={"_file": "file", "_row_number": "row_number"}
    )
    noted = quarantined.merge(survivors, on=["file", "row_number"], how="left")
    has_survivor = noted["_kept_file"].notna()
    noted.loc[has_survivor, "reason"] = (
        noted.loc[has_survivor, "reason"]
        + "; the valid version of this key from "
        + noted.loc[has_survivor, "_kept_file"]
        + " stands"
    )
    return noted.drop(columns="_kept_file")


def ingest_landing_zone(landing_dir: Path, as_of: date | None = None, progress: Progress | None = None) -> IngestResult:
    """Ingest every source of the landing zone (see module docstring)."""
    resolved = resolve_as_of(landing_dir, as_of)
    tables: dict[str, pd.DataFrame] = {}
    quarantines: list[pd.DataFrame] = []
    reports: dict[str, SourceReport] = {}
    master: MasterData | None = None
    for source in SOURCES:
        if master is None and {"skus", "locations"} <= tables.keys():
            master = MasterData(
                sku_ids=set(tables["skus"]["sku_id"]), location_ids=set(tables["locations"]["location_id"])
            )
        table, quarantined, report = _ingest_source(source, landing_dir, resolved, master)
        tables[source.name] = table
        quarantines.append(quarantined)
        reports[source.name] = report
        if progress:
            progress(
                f"  {source.name:<20} {report.files_read} file(s), {report.rows_read:>9,} rows read, "
                f"{report.rows_valid:>9,} kept, {report.rows_quarantined:>6,} quarantined"
            )
    quarantine = pd.concat(quarantines, ignore_index=True)
    quarantine["row_number"] = quarantine["row_number"].astype("Int64")
    return IngestResult(as_of=resolved, tables=tables, quarantine=quarantine, reports=reports)


QUARANTINE_SQL_TYPES = {
    "source": "VARCHAR",
    "file": "VARCHAR",
    "row_number": "BIGINT",
    "column": "VARCHAR",
    "reason": "VARCHAR",
    "raw_record": "VARCHAR",
    "detected_at": "TIMESTAMP",
}


def write_raw(conn: duckdb.DuckDBPyConnection, result: IngestResult, context: RunContext) -> None:
    """Replace schema ``raw`` with this run's validated tables, quarantine, run context and log."""
    lineage = {"_file": "VARCHAR", "_extract_date": "DATE", "_row_number": "BIGINT"}
    for source in SOURCES:
        replace_table(conn, "raw", source.name, result.tables[source.name], {**source.sql_columns, **lineage})
    replace_table(
        conn, "raw", "quarantine", result.quarantine.assign(detected_at=context.started_at), QUARANTINE_SQL_TYPES
    )
    replace_table(
        conn,
        "raw",
        "run_context",
        pd.DataFrame([asdict(context)]),
        {"as_of": "DATE", "horizon_weeks": "INTEGER", "time_fence_weeks": "INTEGER", "run_id": "VARCHAR",
         "started_at": "TIMESTAMP"},
    )
    log = pd.DataFrame([asdict(report) for report in result.reports.values()])
    replace_table(
        conn,
        "raw",
        "ingest_log",
        log,
        {"source": "VARCHAR", "files_read": "INTEGER", "files_skipped": "INTEGER", "latest_extract_date": "DATE",
         "rows_read": "BIGINT", "rows_valid": "BIGINT", "rows_quarantined": "BIGINT"},
    )
