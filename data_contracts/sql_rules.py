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

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from data_contracts.schemas import MONDAY
from data_contracts.sources import SourceContract
from data_contracts.validation import (
    EARLIEST_DATE, EDGE_BLANKS, ISO_IMPOSSIBLE_OFFSET, ISO_TIMESTAMP_REWRITES, KIND_WORDS, LATEST_DATE, OUT_OF_RANGE, describe_check,
    not_a_plant,
)


class UntranslatableCheck(Exception):
    """A pandera check with no SQL translation: add one here rather than skipping it."""


def quote(identifier: str) -> str:
    """A SQL identifier, safely quoted whatever it contains."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# Contract kinds a typed file can store natively.
STORED_KINDS = frozenset({"date", "ts", "int", "num"})

# Custom (named) pandera checks and their SQL: the predicate is true for a VALID value.
CUSTOM_CHECKS = {
    MONDAY: "isodow({col}) = 1",
}


def typed_expression(kind: str, text: str) -> str:
    """SQL turning a trimmed, empty-as-NULL text column into a typed kind (NULL if unparseable).

    A date is ``YYYY-MM-DD`` (four, two and two digits) and a timestamp starts with one: DuckDB's
    casts also take '2026/11/20', '26-11-20', 'epoch', 'infinity', a signed year, or '2026-11-2 ' as
    2 November, which the contract does not. A timestamp's offset or zone is honoured and normalised
    to UTC (the connection runs in UTC)."""
    if kind == "date":
        return _iso_date(text)
    if kind == "ts":
        return _zoned_parse(text)
    return _number(f"TRY_CAST({text} AS DOUBLE)", kind, text)


def _iso_date(text: str) -> str:
    """A date of ten characters written exactly as DuckDB writes it: ``YYYY-MM-DD``, years 0001 to 9999."""
    return _read_back_date(text, f"TRY_CAST({text} AS DATE)")


def _read_back_date(text: str, parsed: str) -> str:
    """``parsed`` (``text`` cast to DATE) where ``text`` is exactly how DuckDB writes that date: ``YYYY-MM-DD``.

    Matching the cast's own output costs less than a ``LIKE '____-__-__'`` pre-check did, which let
    blanks and signs through ('2026-11-2 ', '-026-11-20'), and a third of a regular expression."""
    return f"CASE WHEN strlen({text}) = 10 AND CAST({parsed} AS VARCHAR) = {text} THEN {parsed} END"


def _starts_with_iso_date(text: str) -> str:
    """A date, then nothing or a time (not DuckDB's '(BC)'); the year 0000 is none (ISO 8601 allows it
    only by agreement, DuckDB reads it as 1 BC)."""
    return (f"(regexp_matches({text}, '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}([T ][0-9]|$)') "
            f"AND NOT prefix({text}, '0000'))")


def _zoned_parse(text: str) -> str:
    """Only a value DuckDB cannot read as written is rewritten (``ISO_TIMESTAMP_REWRITES``) and read again; a
    value with an offset no clock has (``ISO_IMPOSSIBLE_OFFSET``) is none."""
    rewritten = text
    for pattern, replacement in ISO_TIMESTAMP_REWRITES:
        rewritten = f"regexp_replace({rewritten}, {literal(pattern)}, {literal(replacement)})"
    parsed = f"coalesce(TRY_CAST({text} AS TIMESTAMPTZ), TRY_CAST({rewritten} AS TIMESTAMPTZ))"
    possible = f"NOT regexp_matches({text}, {literal(ISO_IMPOSSIBLE_OFFSET)})"
    return f"CASE WHEN {_starts_with_iso_date(text)} AND {possible} THEN CAST({parsed} AS TIMESTAMP) END"


def _number(number: str, kind: str, text: str) -> str:
    """``number`` (``text`` parsed as a DOUBLE) as the contract's number (finite) or integer (finite, whole and
    within BIGINT). Not where ``text`` holds a form DuckDB's casts take and the contract does not: a digit
    separator ('1_000') or a doubled sign ('+-1', read as -1; looked for in negative numbers only, the rare
    ones). The checks sit in the finite test's condition, where they cost least (~5 ns a value)."""
    plain = f"NOT contains({text}, '_') AND ({number} >= 0 OR NOT contains({text}, '+-'))"
    finite = f"CASE WHEN isfinite({number}) AND {plain} THEN {number} END"
    if kind == "int":
        return f"CASE WHEN {finite} = floor({finite}) THEN TRY_CAST({finite} AS BIGINT) END"
    return finite


CAST_TYPES = {"date": "DATE", "ts": "TIMESTAMP", "int": "DOUBLE", "num": "DOUBLE"}


def plain_cast(kind: str, received: str) -> str:
    """SQL: DuckDB's own cast of text as received to the kind's type, the one parse ``parsed_text`` starts from."""
    return f"TRY_CAST({received} AS {CAST_TYPES[kind]})"


def parsed_text(kind: str, received: str, cast: str) -> str:
    """SQL turning text as received (not trimmed) into a typed kind: ``typed_expression`` of its trimmed text.

    ``cast`` names ``plain_cast(kind, received)``, computed once per value by the layer below (reading
    a cast back names it twice). Where the cast reads back as the text received (the usual value: no
    blank around it, which DuckDB's casts skip, no offset, which its plain timestamp cast drops), it
    is the value; any other value is trimmed and parsed by the general rule, ``guarded`` so that only
    those values pay for it: trimming every value cost about as much as parsing it.
    """
    if kind == "date":
        fast = _read_back_date(received, cast)
    elif kind == "ts":
        date_and_time = (f"prefix({received}, CAST(CAST({cast} AS DATE) AS VARCHAR)) "
                         f"AND suffix({received}, CAST(CAST({cast} AS TIME) AS VARCHAR))")
        fast = f"CASE WHEN strlen({received}) = 19 AND {date_and_time} THEN {cast} END"
    else:
        fast = _number(cast, kind, received)
    return f"coalesce({fast}, {guarded(received, lambda text: typed_expression(kind, trimmed_text(text)))})"


def guarded(value: str, body: Callable[[str], str]) -> str:
    """SQL: ``body`` applied to ``value``, evaluated only where the branch holding it is taken.

    DuckDB's common-subexpression pass lifts a subexpression named twice in a projection (the
    trimmed text, in the general rule) out of the CASE or ``coalesce`` branch that guards it and
    computes it for every row; inside a lambda it stays in its branch."""
    return f"list_transform([{value}], lambda _value: {body('_value')})[1]"


def trimmed_text(value: str) -> str:
    """SQL for ``NULLIF(trim(value, EDGE_BLANKS), '')``, with the usual value (ASCII, no edge blank) skipping the copy.

    Trimming copies every string it returns, which made it a large share of
    validating an extract; an ASCII value whose first and last characters are
    printable (no blank, no control character) is returned as it is. The last
    character's code costs less than testing the four ASCII blanks as suffixes
    (~40% of this expression on an id column).
    """
    return (
        f"CASE WHEN strlen({value}) = length({value}) AND ascii({value}) > 32 "
        f"AND ascii(substring({value}, strlen({value}), 1)) > 32 "
        f"THEN {value} ELSE NULLIF(trim({value}, {literal(EDGE_BLANKS)}), '') END"
    )


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


def cast_alias(column: str) -> str:
    return quote(f"{column}__cast")


# Flag set on every copy of a primary key that occurs more than once in the extract.
DUPLICATE_KEY = "_duplicate_key"


@dataclass(frozen=True)
class CompiledContract:
    """Three layers of SQL over the extract: input, typed, failures (each value is parsed once)."""

    # contract column -> its input: a text column's trimmed, empty-as-NULL text, a typed column's text as
    # received, or the value a typed file stores
    text_columns: dict[str, str]
    typed_columns: dict[str, str]  # contract column -> typed expression over its input aliases
    failures: list[tuple[str, str, str]]  # (column, SQL failure condition, SQL reason) over the aliases
    # contract column parsed from text -> its ``plain_cast`` over the extract's column (input alias ``cast_alias``)
    cast_columns: dict[str, str]

    def layers(self, relation: str, carried: Collection[str] = (), numbered: bool = True) -> str:
        """CTEs ``inputs`` and ``typed`` over ``relation`` (the extract, with ``_row_number`` when ``numbered``),
        plus ``carried`` columns."""
        inputs = ", ".join(
            (["_row_number"] if numbered else [])
            + [f"{expression} AS {text_alias(c)}" for c, expression in self.text_columns.items()]
            + [f"{expression} AS {cast_alias(c)}" for c, expression in self.cast_columns.items()]
            + [quote(c) for c in carried]
        )
        typed = ", ".join(f"{expression} AS {quote(c)}" for c, expression in self.typed_columns.items())
        return f"inputs AS (SELECT {inputs} FROM {relation}), typed AS (SELECT *, {typed} FROM inputs)"

    def typed_value(self, column: str) -> str:
        """SQL for ``column``'s typed value straight over the extract's own columns (no ``layers``, no aliases
        that an extra column of the extract could shadow)."""
        typed = self.typed_columns[column].replace(text_alias(column), f"({self.text_columns[column]})")
        if column in self.cast_columns:
            typed = typed.replace(cast_alias(column), f"({self.cast_columns[column]})")
        return typed

    @property
    def row_failures(self) -> list[tuple[str, str, str]]:
        """The failures decidable row by row (all but the duplicate key, which needs the whole extract)."""
        return [f for f in self.failures if f[1] != DUPLICATE_KEY]


def _unparseable_reason(column: str, kind: str, shown: str) -> str:
    prefix = literal(f"{column} is not {KIND_WORDS[kind]}: '")
    return f"{prefix} || CAST({shown} AS VARCHAR) || {literal(chr(39))}"


def _stored_expression(kind: str, stored: str, timestamp: bool, zone: str | None) -> str:
    """A value already stored with the contract's type (typed Parquet) needs no parse, only the finite check.

    A timestamp with a time zone is normalised to UTC (the connection runs in
    UTC), one without is taken as UTC, exactly as their text would be. Only the
    zoned one needs the round trip through TIMESTAMPTZ (0.3 s per 2.4M values):
    a plain cast keeps a zoneless value as it is, whatever its precision.
    A date stored as a ``timestamp`` (pandas writes dates so) is the date it
    falls on at midnight, in its own time zone; with a time of day it is no date.
    """
    if kind == "num":
        return f"CASE WHEN isfinite({stored}) THEN {stored} END"
    if kind == "ts":
        return f"CAST(CAST({stored} AS TIMESTAMPTZ) AS TIMESTAMP)" if zone else f"CAST({stored} AS TIMESTAMP)"
    if kind == "date" and timestamp:
        local = wall_clock(stored, zone)
        return f"CASE WHEN {local} = date_trunc('day', {local}) THEN CAST({local} AS DATE) END"
    return stored


def as_received(stored: str, zone: str) -> str:
    """SQL: a stored zoned timestamp as text on its own clock, with its zone ('2026-11-10 00:30:00 Europe/Berlin',
    '2026-11-10 14:30:00+05:30'): the instant the file holds, shown in the zone the file gives it (the connection's
    UTC could put it on another day)."""
    return f"CAST({wall_clock(stored, zone)} AS VARCHAR) || {literal(('' if zone[0] in '+-' else ' ') + zone)}"


def wall_clock(stored: str, zone: str | None) -> str:
    """SQL: a stored timestamp as the clock read in its own time zone (an IANA name or a '+HH:MM' offset)."""
    if zone is None:
        return f"CAST({stored} AS TIMESTAMP)"
    offset = re.fullmatch(r"([+-])(\d{2}):(\d{2})", zone)
    if offset:
        sign, hours, minutes = offset.groups()
        return f"(CAST({stored} AS TIMESTAMP) {sign} INTERVAL {literal(f'{hours}:{minutes}:00')})"
    return f"timezone({literal(zone)}, {stored})"


def compile_contract(
    source: SourceContract, *, extract_date: str, master_tables: dict[str, str] | None,
    stored_typed: Collection[str] = (), stored_timestamps: Mapping[str, str | None] | None = None,
) -> CompiledContract:
    """Input, typed and failure expressions for one extract of ``source``.

    ``master_tables`` maps ``"sku"``/``"location"``/``"plant"`` to a table of valid
    ids (column ``id``), and optionally ``"sku_rejected"``/``"location_rejected"`` to
    the ids of quarantined master-data rows without a valid one (a reason then says
    why an id in the master-data file is unknown); None skips referential integrity
    (master data itself).
    ``stored_typed`` names the columns the file already stores with their
    contract type (date, timestamp, integer, number in Parquet): they skip the
    text round trip and are judged by the same rules; ``stored_timestamps``
    maps the columns stored as timestamps to their time zone (None: none).
    """
    schema = source.schema
    text_columns: dict[str, str] = {}
    typed_columns: dict[str, str] = {}
    cast_columns: dict[str, str] = {}
    failures: list[tuple[str, str, str]] = []
    pk = source.primary_key
    for column, kind in source.columns.items():
        text, typed = text_alias(column), quote(column)
        if column in stored_typed and kind in STORED_KINDS:
            text_columns[column] = quote(column)
            timestamps = stored_timestamps or {}
            zone = timestamps.get(column)
            typed_columns[column] = _stored_expression(kind, text, timestamp=column in timestamps, zone=zone)
            shown = wall_clock(text, zone) if column in timestamps else text
            blank, unparseable = f"{text} IS NULL", f"{text} IS NOT NULL AND {typed} IS NULL"
        elif kind == "str":
            text_columns[column] = trimmed_text(f"CAST({quote(column)} AS VARCHAR)")
            typed_columns[column] = text
            blank, unparseable, shown = f"{text} IS NULL", None, text
        else:
            # Trimmed only where the value did not parse (a CASE branch is evaluated for its rows only).
            text_columns[column] = f"CAST({quote(column)} AS VARCHAR)"
            cast_columns[column] = plain_cast(kind, text_columns[column])
            typed_columns[column] = parsed_text(kind, text, cast_alias(column))
            shown = trimmed_text(text)
            # Two different guarded tests: one named twice would be lifted out of its CASE (``guarded``).
            blank = f"CASE WHEN {typed} IS NULL THEN {guarded(text, lambda v: f'{trimmed_text(v)} IS NULL')} END"
            unparseable = (f"CASE WHEN {typed} IS NULL "
                           f"THEN {guarded(text, lambda v: f'{trimmed_text(v)} IS NOT NULL')} END")
        spec = schema.columns[column]
        if not spec.nullable:
            failures.append((column, blank, literal(describe_check("not_nullable", column, pk))))
        if unparseable:
            failures.append((column, unparseable, _unparseable_reason(column, kind, shown)))
        for check in spec.checks:
            builtin = check.name in {"greater_than_or_equal_to", "greater_than", "less_than_or_equal_to", "isin"}
            reason = describe_check(check.error, column, pk) if builtin else check.name
            failures.append((column, f"{typed} IS NOT NULL AND NOT ({_check_predicate(check, column, typed)})",
                             literal(reason)))
        if master_tables is not None:
            for kind_of_id, columns in (("sku", source.sku_columns), ("location", source.location_columns)):
                if column in columns:
                    unknown = f"unknown {column} (not in master data {kind_of_id}s"
                    rejected = master_tables.get(f"{kind_of_id}_rejected")
                    # an id whose master-data row was itself quarantined is there in the file: say so
                    reason = (f"CASE WHEN {typed} IN (SELECT id FROM {rejected}) "
                              f"THEN {literal(unknown + ': its row there was quarantined)')} "
                              f"ELSE {literal(unknown + ')')} END") if rejected else literal(unknown + ")")
                    failures.append(
                        (column, f"{typed} IS NOT NULL AND {typed} NOT IN (SELECT id FROM {master_tables[kind_of_id]})",
                         reason)
                    )
            if column in source.plant_columns:  # a known location of another type (an unknown one fails above)
                failures.append(
                    (column, f"{typed} IN (SELECT id FROM {master_tables['location']}) "
                     f"AND {typed} NOT IN (SELECT id FROM {master_tables['plant']})", literal(not_a_plant(column)))
                )
        if kind in ("date", "ts"):
            bound = "DATE" if kind == "date" else "TIMESTAMP"
            failures.append(
                (column, f"{typed} IS NOT NULL AND NOT ({typed} BETWEEN {bound} {literal(EARLIEST_DATE)} "
                 f"AND {bound} {literal(LATEST_DATE + (' 23:59:59.999999' if kind == 'ts' else ''))})",
                 literal(f"{column} {OUT_OF_RANGE}"))
            )
        if column in source.not_after_extract:
            failures.append(
                (column, f"{typed} > DATE {literal(extract_date)}",
                 literal(f"{column} is after the extract date {extract_date} (a future event cannot be reported)"))
            )
    failures.append((", ".join(pk), DUPLICATE_KEY, literal(describe_check("multiple_fields_uniqueness", "", pk))))
    return CompiledContract(text_columns=text_columns, typed_columns=typed_columns, failures=failures,
                            cast_columns=cast_columns)
