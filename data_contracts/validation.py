"""Validate one extract against its contract: typed valid rows + row-level rejections.

Two vectorised passes:
1. typing: every contract column is parsed from its text form (dates strictly
   ``YYYY-MM-DD``, timestamps ISO 8601, numbers, integers); a value that does
   not parse is rejected with the value quoted in the reason;
2. rules: the pandera contract (nullability, ranges, enums, primary key unique
   within the file) plus the run-time rules (sku/location known in master
   data, event dates not after the extract date), validated lazily so every
   failing row is reported, not just the first.
A row with any failure is rejected whole; every other row flows on.
"""

from __future__ import annotations

import re
from collections.abc import Set
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pandera.pandas as pa

from data_contracts.sources import SourceContract

REJECTION_COLUMNS = ["row_number", "column", "reason"]


@dataclass(frozen=True)
class MasterData:
    """Valid keys of the master data, for referential integrity."""

    sku_ids: Set[str]
    location_ids: Set[str]
    plant_ids: Set[str] = frozenset()  # the locations of type plant


def not_a_plant(column: str) -> str:
    """The quarantine reason for a known location that is not a plant where the contract names one."""
    return f"{column} is not a plant (location_type in master data locations)"


@dataclass
class ValidationResult:
    typed: pd.DataFrame  # every row: typed contract columns (null where unparseable) + ``_row_number``
    rejections: pd.DataFrame  # row_number, column, reason (one row per failure)

    @property
    def valid(self) -> pd.DataFrame:
        return self.typed[~self.typed["_row_number"].isin(self.rejections["row_number"])]


def missing_columns(source: SourceContract, header: list[str]) -> list[str]:
    present = set(header)
    return [column for column in source.columns if column not in present]


# What surrounds a value without being part of it, stripped alike by both engines: the space, tab and line
# breaks, and the Unicode spaces. Other control characters stay, and make a number or date invalid.
EDGE_BLANKS = " \t\n\r" + "".join(c for c in map(chr, range(0x80, 0x3001)) if c.isspace())
# The dates a value may carry: outside them it is a typo or a placeholder ('9999-12-31' for "no date"),
# which no projection week or KPI can hold.
EARLIEST_DATE, LATEST_DATE = "1900-01-01", "2199-12-31"
OUT_OF_RANGE = f"is outside the dates {EARLIEST_DATE} to {LATEST_DATE}"
# ISO 8601 forms of a timestamp neither pandas nor DuckDB reads as written, each with its rewrite into one
# they read (the same in both engines): a comma as the decimal sign of the seconds (ISO's preferred
# one), and a time of the hour alone ('T10', 'T10Z', 'T10+01:00'). Only a whole value of that form, with
# no zone or a UTC offset ('Z', '+01', '+0100', '+01:00'), is rewritten: anything else around it is
# left for both engines to reject alike.
_ISO_ZONE = r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)"
_ISO_OFFSET = f"({_ISO_ZONE})?$"
# A UTC offset no clock has, after a time of day: an hour past 23 or a minute past 59 ('+25:00', '+14:60',
# '-99:00'). DuckDB's cast reads '+25:00' as a day and an hour ahead, which moved a plan's commit time.
ISO_IMPOSSIBLE_OFFSET = r"[T ][0-9][0-9:.,]*[+-](?:(?:2[4-9]|[3-9][0-9])(?::?[0-9]{2})?|[0-9]{2}:?[6-9][0-9])$"
ISO_TIMESTAMP_REWRITES = (
    (r"^([0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}),([0-9]+)" + _ISO_OFFSET, r"\1.\2\3"),
    (r"^([0-9]{4}-[0-9]{2}-[0-9]{2}[T ](?:[01][0-9]|2[0-3]))" + _ISO_OFFSET, r"\1:00\2"),
)


def _parse_dated(kind: str, stripped: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(typed values, mask of real dates outside the range) of ``YYYY-MM-DD`` dates / timestamps starting so.

    pandas holds nanoseconds, so years before 1677 cannot be parsed as they are: a value is checked for
    a real calendar date with its year moved by whole 400-year cycles into 1800-2199 (same leap years)."""
    form = r"[0-9]{4}-[0-9]{2}-[0-9]{2}" + ("" if kind == "date" else ".*")
    iso = stripped.str.fullmatch(form, flags=re.S).fillna(False).astype(bool)
    year = pd.to_numeric(stripped.str[:4].where(iso), errors="coerce")
    iso &= year.ne(0).fillna(False).astype(bool)  # ISO 8601 has a year 0000 only by agreement
    in_range = year.between(int(EARLIEST_DATE[:4]), int(LATEST_DATE[:4]))

    def parse(values: pd.Series) -> pd.Series:
        if kind == "date":
            return pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
        values = values.mask(values.str.contains(ISO_IMPOSSIBLE_OFFSET, regex=True).fillna(False).astype(bool))
        for pattern, replacement in ISO_TIMESTAMP_REWRITES:
            values = values.str.replace(pattern, replacement, regex=True)
        # Values with a zone and values without are parsed apart: pandas 2.3 gives a value without one the
        # offset of a zoned value before it ('...T10:00:00+05:30', '...T10:00' read both at 04:30 UTC).
        zoned = values.str.contains(_ISO_ZONE + "$", regex=True).fillna(False).astype(bool)
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
        for part in (zoned, ~zoned):
            if part.any():
                parsed[part] = pd.to_datetime(values[part], format="ISO8601", errors="coerce",
                                              utc=True).dt.tz_localize(None)
        return parsed

    moved = (1800 + (year - 1800) % 400).astype("Int64").astype("string").str.zfill(4) + stripped.str[4:]
    real = parse(moved.where(iso)).notna()
    return parse(stripped.where(iso & in_range)), real & ~in_range


def _parse_column(kind: str, text: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Parse one text column; return (typed values, mask of unparseable non-empty values, mask of dates out of range)."""
    stripped = text.str.strip(EDGE_BLANKS)
    empty = stripped.eq("") | stripped.isna()
    none = pd.Series(False, index=text.index)
    if kind == "str":
        return stripped.where(~empty, None), none, none
    out_of_range = none
    if kind in ("date", "ts"):
        parsed, out_of_range = _parse_dated(kind, stripped)
    else:
        # a number is finite: 'inf' or '1e400' is no quantity (pandas reads both as infinity)
        numbers = pd.to_numeric(stripped, errors="coerce").astype(float)
        numbers = numbers.where(np.isfinite(numbers))
        if kind == "int":
            whole = numbers.notna() & (numbers % 1 == 0) & (numbers >= -(2**63)) & (numbers < 2**63)
            parsed = numbers.where(whole).astype("Int64")
        else:
            parsed = numbers
    return parsed, parsed.isna() & ~empty & ~out_of_range, out_of_range


KIND_WORDS = {"date": "a date (YYYY-MM-DD)", "ts": "an ISO 8601 timestamp", "int": "an integer", "num": "a number"}


def describe_check(check: str, column: str, pk: list[str]) -> str:
    if check == "not_nullable":
        return f"{column} is empty but required"
    if check == "multiple_fields_uniqueness" or check == "field_uniqueness":
        return f"duplicated primary key ({', '.join(pk)}) within the file: every copy is quarantined"
    match = re.fullmatch(r"(greater_than_or_equal_to|greater_than|less_than_or_equal_to|less_than)\((.*)\)", check)
    if match:
        symbol = {
            "greater_than_or_equal_to": ">=",
            "greater_than": ">",
            "less_than_or_equal_to": "<=",
            "less_than": "<",
        }[match.group(1)]
        return f"{column} must be {symbol} {match.group(2)}"
    match = re.fullmatch(r"isin\((.*)\)", check, flags=re.S)
    if match:
        return f"{column} must be one of {match.group(1).strip('[]').replace(chr(39), '')}"
    return check if column in check else f"{column}: {check}"


def _runtime_checks(source: SourceContract, master: MasterData | None, extract_date: date) -> dict[str, list[pa.Check]]:
    checks: dict[str, list[pa.Check]] = {}
    if master is not None:
        for column in source.sku_columns:
            checks.setdefault(column, []).append(
                pa.Check(lambda s: s.isin(master.sku_ids), error=f"unknown {column} (not in master data skus)")
            )
        for column in source.location_columns:
            checks.setdefault(column, []).append(
                pa.Check(
                    lambda s: s.isin(master.location_ids), error=f"unknown {column} (not in master data locations)"
                )
            )
        for column in source.plant_columns:
            checks.setdefault(column, []).append(
                pa.Check(lambda s: s.isin(master.plant_ids) | ~s.isin(master.location_ids), error=not_a_plant(column))
            )
    limit = pd.Timestamp(extract_date)
    for column in source.not_after_extract:
        checks.setdefault(column, []).append(
            pa.Check(
                lambda s: s <= limit,
                ignore_na=True,
                error=f"{column} is after the extract date {extract_date.isoformat()} (a future event cannot be reported)",
            )
        )
    return checks


def validate_extract(
    source: SourceContract, text: pd.DataFrame, *, extract_date: date, master: MasterData | None
) -> ValidationResult:
    """Validate the text rows of one extract (columns as read, plus ``_row_number``)."""
    typed = pd.DataFrame({"_row_number": text["_row_number"].to_numpy()}, index=text.index)
    rejections: list[pd.DataFrame] = []
    for column, kind in source.columns.items():
        values, unparseable, out_of_range = _parse_column(kind, text[column].astype("string"))
        typed[column] = values
        if unparseable.any():
            rejections.append(
                pd.DataFrame(
                    {
                        "row_number": text.loc[unparseable, "_row_number"],
                        "column": column,
                        "reason": f"{column} is not {KIND_WORDS[kind]}: '" + text.loc[unparseable, column].astype(str) + "'",
                    }
                )
            )
        if out_of_range.any():
            rejections.append(pd.DataFrame({"row_number": text.loc[out_of_range, "_row_number"], "column": column,
                                            "reason": f"{column} {OUT_OF_RANGE}"}))

    schema = source.schema
    for column, extra in _runtime_checks(source, master, extract_date).items():
        schema = schema.update_column(column, checks=[*schema.columns[column].checks, *extra])
    try:
        schema.validate(typed, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        cases = cases[cases["index"].notna()]
        described = pd.DataFrame(
            {
                "row_number": typed.loc[cases["index"].astype(int), "_row_number"].to_numpy(),
                "column": cases["column"].astype(str).to_numpy(),
                "check": cases["check"].astype(str).to_numpy(),
            }
        )
        pk = source.primary_key
        reasons = described[["check", "column"]].drop_duplicates()
        reasons["reason"] = [describe_check(check, column, pk) for check, column in reasons.itertuples(index=False)]
        described = described.merge(reasons, on=["check", "column"]).drop(columns="check")
        # A duplicated key is one failure of the row, not one per key column; a key with a blank or unparseable
        # part fails for that alone (pandas takes its empty parts for equal ones).
        duplicated_key = described["reason"].str.startswith("duplicated primary key")
        incomplete_key = described["row_number"].isin(typed.loc[typed[pk].isna().any(axis=1), "_row_number"])
        described = described[~(duplicated_key & incomplete_key)].copy()
        duplicated_key = described["reason"].str.startswith("duplicated primary key")
        described.loc[duplicated_key, "column"] = ", ".join(pk)
        # A value that did not parse is already reported; its null is not a second error.
        if rejections:
            unparsed = pd.concat(rejections)[["row_number", "column"]].assign(_unparsed=True)
            described = described.merge(unparsed, on=["row_number", "column"], how="left")
            described = described[described["_unparsed"].isna()].drop(columns="_unparsed")
        rejections.append(described)

    rejected = (
        pd.concat(rejections, ignore_index=True)
        if rejections
        else pd.DataFrame({name: pd.Series(dtype=object) for name in REJECTION_COLUMNS})
    )
    rejected = rejected.drop_duplicates().sort_values(["row_number", "column"], kind="stable", ignore_index=True)
    return ValidationResult(typed=typed, rejections=rejected)
