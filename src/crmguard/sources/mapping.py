"""How a source describes its mapping to the event schema.

A mapping is a function from a *field accessor* to one SQL expression per schema column. The
accessor hides where fields live: a CSV column (``"USER_ID"``) or a JSON path
(``json_extract_string(rec, '$.actor.alternateId')``). So one mapping serves a format whatever its
container (ELF rows come as CSV from EventLogFile and as JSON from other tools), and every mapping
is plain SQL that DuckDB runs vectorised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crmguard.schema import COLUMNS, duckdb_type
from crmguard.sources.sql import ident, json_path, sql_str

Field = Callable[[str], str]
"""Field accessor: vendor field name (dotted for nested JSON) -> SQL expression (VARCHAR or NULL)."""


@dataclass(frozen=True)
class SourceMapping:
    """A source's mapping: ``build(field)`` returns schema column -> SQL expression.

    Besides schema columns, ``build`` returns ``_time_raw`` (the raw text the time came from) and
    ``_time_field`` (its field name as a SQL string literal expression), used to explain a
    quarantined record whose timestamp is impossible. Entries named ``__<name>`` are *lets*:
    intermediate values computed once per record (in insertion order, each may use the ones before)
    that the other expressions refer to by name, e.g. an event type derived with regexes and used in
    twenty CASE branches.
    """

    source: str
    build: Callable[[Field], dict[str, str]]


Shape = tuple[tuple[tuple[str, ...], ...], ...]
"""Which keys make a JSON record one format's: any of several key sets, each key set all of its key
paths (a path is a tuple of nested keys). E.g. ``((("Action",), ("Section",)),)``."""


def has_key(*path: str) -> str:
    """SQL predicate: the JSON object ``rec`` has the key ``path`` (nested keys as several
    arguments), whatever its value.

    A substring test on the text comes first: it rules out most records of other formats for a
    fraction of the cost of parsing them (recognising a record's format was a fifth of JSON ingest
    when it listed every record's keys). It assumes the key is written as plain text, not with
    ``\\u`` escapes, as every log producer writes its keys.
    """
    return f"""(contains(rec, '"{sql_str(path[-1])}"') AND json_exists(rec, {json_path('.'.join(path))}))"""


def shape_sql(shape: Shape) -> str:
    """SQL predicate over the record text ``rec``: it has one of ``shape``'s key sets."""
    return "(" + " OR ".join("(" + " AND ".join(has_key(*path) for path in keys) + ")" for keys in shape) + ")"


def shape_matches(shape: Shape, record: object) -> bool:
    """Whether ``record`` (a parsed JSON value) has one of ``shape``'s key sets: :func:`shape_sql`
    for a record already in Python (the HTTP endpoint checks the first record of each body)."""

    def has(path: tuple[str, ...]) -> bool:
        value = record
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return False
            value = value[key]
        return True

    return any(all(has(path) for path in keys) for keys in shape)


def csv_field(header: list[str] | tuple[str, ...]) -> Field:
    """Accessor for a CSV relation whose columns are ``header``, already blank-nulled once each
    (see :func:`csv_source`): absent columns are NULL."""
    present = set(header)

    def field(name: str) -> str:
        return ident(name) if name in present else "CAST(NULL AS VARCHAR)"

    return field


def csv_source(header: list[str] | tuple[str, ...], reader: str) -> str:
    """Wrap CSV ``reader`` (a table function) so each column is trimmed/blank-nulled once — mappings
    read a column many times — and the original row is kept as JSON in ``__raw`` (the reader's
    virtual ``file_index`` is not part of it), with its file's position in the reader's list in
    ``__file``."""
    cols = ", ".join(f"blank_null({ident(h)}) AS {ident(h)}" for h in header)
    return f"(SELECT to_json(r)::VARCHAR AS __raw, r.file_index::BIGINT AS __file, {cols} FROM {reader} AS r)"


def split_lets(exprs: dict[str, str]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Split a mapping's expressions into its lets (``__<name>`` entries, in order) and the rest."""
    lets = [(k, v) for k, v in exprs.items() if k.startswith("__")]
    return lets, {k: v for k, v in exprs.items() if not k.startswith("__")}


def with_lets(relation: str, lets: list[tuple[str, str]]) -> str:
    """Wrap ``relation`` (a parenthesised subquery or table) so each let becomes a column, computed once."""
    for name, expr in lets:
        relation = f"(SELECT *, {expr} AS {name} FROM {relation})"
    return relation


def first(*exprs: str) -> str:
    """SQL ``coalesce`` of ``exprs`` (the first non-null)."""
    return exprs[0] if len(exprs) == 1 else "coalesce(" + ", ".join(exprs) + ")"


def select_list(exprs: dict[str, str]) -> str:
    """Render a SELECT list with every schema column (typed, NULL when the mapping has none),
    followed by the time-diagnostic columns ``_time_raw`` and ``_time_field``."""
    items = []
    for col in COLUMNS:
        if col.name in ("raw", "log_file", "event_id"):
            continue
        expr = exprs.get(col.name, "NULL")
        items.append(f"CAST({expr} AS {duckdb_type(col)}) AS {col.name}")
    items.append(f"CAST({exprs.get('_time_raw', 'NULL')} AS VARCHAR) AS _time_raw")
    items.append(f"CAST({exprs.get('_time_field', 'NULL')} AS VARCHAR) AS _time_field")
    return ",\n  ".join(items)


def json_select(mapping: SourceMapping, root: str) -> tuple[Callable[[str], str], str]:
    """Plan a JSON mapping so each record is parsed once and each field cleaned once.

    Returns ``(fields, select)``: ``fields(relation)`` wraps a relation that has the JSON
    expression ``root`` so that every field the mapping reads is pulled out of it in one call,
    blank-nulled once into its own column, and the mapping's lets are computed; ``select`` is the
    schema select list over that. Separate ``json_extract_string`` calls per field would re-parse
    the record dozens of times (slow and, for records of 100 kB, costly in memory), and cleaning a
    field at each of its uses (the event type is read in forty CASE branches) costs a quarter of
    the mapping's time.
    """
    paths: list[str] = []

    def field(path: str) -> str:
        if path not in paths:
            paths.append(path)
        return f"__f{paths.index(path) + 1}"

    lets, exprs = split_lets(mapping.build(field))
    select = select_list(exprs)
    extraction = f"json_extract_string({root}, [{', '.join(json_path(p) for p in paths)}]) AS __f"
    cleaned = ", ".join(f"blank_null(__f[{n}]) AS __f{n}" for n in range(1, len(paths) + 1))

    def fields(relation: str) -> str:
        return with_lets(f"(SELECT *, {cleaned} FROM (SELECT *, {extraction} FROM {relation}))", lets)

    return fields, select
