"""Compile a pandera contract into DuckDB SQL, so extracts of millions of rows validate set-based.

The pandera models in ``data_contracts.schemas`` stay the one declaration of the
contract; this module translates each column's logical type, nullability and
checks (plus the run-time rules of ``SourceContract``) into SQL expressions that
DuckDB evaluates over the whole extract at once. A check this module cannot
translate raises ``UntranslatableCheck`` instead of being skipped, and
``tests/test_contract_engines.py`` asserts that the SQL engine and pandera's own
``validate`` reject exactly the same rows for every kind of bad input.
"""

from __future__ import annotations

from dataclasses import dataclass

from data_contracts.sources import SourceContract
from data_contracts.validation import KIND_WORDS, describe_check


class UntranslatableCheck(Exception):
    """A pandera check with no SQL translation: add one here rather than skipping it."""


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# Custom (named) pandera checks and their SQL: the predicate is true for a VALID value.
CUSTOM_CHECKS = {
    "week_start must be a Monday (ISO week start)": "isodow({col}) = 1",
}


def typed_expression(kind: str, text: str) -> str:
    """SQL turning a trimmed, empty-as-NULL text column into its contract type (NULL if unparseable)."""
    if kind == "str":
        return text
    if kind == "date":
        return f"TRY_CAST({text} AS DATE)"
    if kind == "ts":
        # Offsets are honoured and normalised to UTC (the connection runs in UTC).
        return f"CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS TIMESTAMP)"
    number = f"TRY_CAST({text} AS DOUBLE)"
    finite = f"CASE WHEN isfinite({number}) THEN {number} END"
    if kind == "int":
        return f"CASE WHEN {finite} = floor({finite}) THEN CAST({finite} AS BIGINT) END"
    return finite


def _check_predicate(check, column: str, typed: str) -> str:
    """SQL that is true for a value passing the pandera check."""
    stats = check.statistics or {}
    if check.name == "greater_than_or_equal_to":
        return f"{typed} >= {stats['min_value']}"
    if check.name == "greater_than":
        return f"{typed} > {stats['min_value']}"
    if check.name == "less_than_or_equal_to":
        return f"{typed} <= {stats['max_value']}"
    if check.name == "isin":
        return f"{typed} IN ({', '.join(literal(str(v)) for v in stats['allowed_values'])})"
    if check.name in CUSTOM_CHECKS:
        return CUSTOM_CHECKS[check.name].format(col=typed)
    raise UntranslatableCheck(f"no SQL translation for check {check.name!r} on {column}")


def text_alias(column: str) -> str:
    return quote(f"{column}__text")


@dataclass(frozen=True)
class CompiledContract:
    """Three layers of SQL over the extract: text, typed, failures (each value is parsed once)."""

    text_columns: dict[str, str]  # contract column -> trimmed, empty-as-NULL text of the raw value
    typed_columns: dict[str, str]  # contract column -> typed expression over its text alias
    key_copies: str  # window counting the rows of the file with the same primary key, as ``_key_copies``
    failures: list[tuple[str, str, str]]  # (column, SQL failure condition, SQL reason) over the aliases


def _unparseable_reason(column: str, kind: str) -> str:
    prefix = literal(f"{column} is not {KIND_WORDS[kind]}: '")
    return f"{prefix} || {text_alias(column)} || {literal(chr(39))}"


def compile_contract(source: SourceContract, *, extract_date: str, master_tables: dict[str, str] | None) -> CompiledContract:
    """Text, typed and failure expressions for one extract of ``source``.

    ``master_tables`` maps ``"sku"``/``"location"`` to a table of valid ids
    (column ``id``); None skips referential integrity (master data itself).
    """
    schema = source.schema
    text_columns: dict[str, str] = {}
    typed_columns: dict[str, str] = {}
    failures: list[tuple[str, str, str]] = []
    pk = source.primary_key
    for column, kind in source.columns.items():
        text_columns[column] = f"NULLIF(trim(CAST({quote(column)} AS VARCHAR)), '')"
        text = text_alias(column)
        typed_columns[column] = typed_expression(kind, text)
        typed = quote(column)
        spec = schema.columns[column]
        if not spec.nullable:
            failures.append((column, f"{text} IS NULL", literal(describe_check("not_nullable", column, pk))))
        if kind != "str":
            failures.append((column, f"{text} IS NOT NULL AND {typed} IS NULL", _unparseable_reason(column, kind)))
        for check in spec.checks:
            builtin = check.name in {"greater_than_or_equal_to", "greater_than", "less_than_or_equal_to", "isin"}
            reason = describe_check(check.error, column, pk) if builtin else check.name
            failures.append((column, f"{typed} IS NOT NULL AND NOT ({_check_predicate(check, column, typed)})",
                             literal(reason)))
        if master_tables is not None:
            for kind_of_id, columns in (("sku", source.sku_columns), ("location", source.location_columns)):
                if column in columns:
                    failures.append(
                        (column, f"{typed} IS NOT NULL AND {typed} NOT IN (SELECT id FROM {master_tables[kind_of_id]})",
                         literal(f"unknown {column} (not in master data {kind_of_id}s)"))
                    )
        if column in source.not_after_extract:
            failures.append(
                (column, f"{typed} > DATE {literal(extract_date)}",
                 literal(f"{column} is after the extract date {extract_date} (a future event cannot be reported)"))
            )
    key = ", ".join(quote(c) for c in pk)
    failures.append(
        (", ".join(pk), "_key_copies > 1", literal(describe_check("multiple_fields_uniqueness", "", pk)))
    )
    return CompiledContract(
        text_columns=text_columns,
        typed_columns=typed_columns,
        key_copies=f"count(*) OVER (PARTITION BY {key})",
        failures=failures,
    )
