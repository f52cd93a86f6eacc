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
        return f"CAST(TRY_STRPTIME({text}, '%Y-%m-%d') AS DATE)"
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


@dataclass(frozen=True)
class CompiledContract:
    typed_columns: dict[str, str]  # contract column -> SQL typed expression over the text table
    failures: list[tuple[str, str, str]]  # (column, SQL condition for failure, SQL reason expression)


def compile_contract(source: SourceContract, *, extract_date: str, master_tables: dict[str, str] | None) -> CompiledContract:
    """Typed expressions and failure rules for one extract of ``source``.

    ``master_tables`` maps ``"sku"``/``"location"`` to a table of valid ids
    (column ``id``); None skips referential integrity (master data itself).
    """
    schema = source.schema
    typed_columns: dict[str, str] = {}
    failures: list[tuple[str, str, str]] = []
    pk = source.primary_key
    for column, kind in source.columns.items():
        text = f"NULLIF(trim({quote(column)}), '')"
        typed = typed_expression(kind, text)
        typed_columns[column] = typed
        spec = schema.columns[column]
        if not spec.nullable:
            failures.append((column, f"{text} IS NULL", literal(describe_check("not_nullable", column, pk))))
        if kind != "str":
            failures.append(
                (column, f"{text} IS NOT NULL AND {typed} IS NULL",
                 f"{literal(f'{column} is not {KIND_WORDS[kind]}: ' + chr(39))} || {quote(column)} || ''''")
            )
        for check in spec.checks:
            reason = describe_check(check.error or check.name, column, pk) if check.name in {
                "greater_than_or_equal_to", "greater_than", "less_than_or_equal_to", "isin"} else check.name
            failures.append((column, f"{typed} IS NOT NULL AND NOT ({_check_predicate(check, column, typed)})",
                             literal(reason)))
        if master_tables is not None:
            for kind_of_id, columns in (("sku", source.sku_columns), ("location", source.location_columns)):
                if column in columns:
                    table = master_tables[kind_of_id]
                    failures.append(
                        (column, f"{typed} IS NOT NULL AND {typed} NOT IN (SELECT id FROM {table})",
                         literal(f"unknown {column} (not in master data {kind_of_id}s)"))
                    )
        if column in source.not_after_extract:
            failures.append(
                (column, f"{typed} > DATE {literal(extract_date)}",
                 literal(f"{column} is after the extract date {extract_date} (a future event cannot be reported)"))
            )
    key = ", ".join(quote(c) for c in pk)
    failures.append(
        (", ".join(pk), f"count(*) OVER (PARTITION BY {key}) > 1",
         literal(describe_check("multiple_fields_uniqueness", "", pk)))
    )
    return CompiledContract(typed_columns=typed_columns, failures=failures)
