"""A pySigma backend that turns a Sigma rule's detection into a DuckDB boolean expression over the
event schema (the ``events`` view of the lake).

Written the pySigma way — a ``TextQueryBackend`` subclass made of class-level tokens — so it can be
registered with ``sigma-cli`` too. Sigma semantics kept: string matches are case-insensitive
(``ILIKE``) unless ``|cased``; regular expressions are case-sensitive; ``cidr`` uses the
``cidr_match`` macro; ``exists`` tests for NULL (a field absent from a source is NULL there);
the time-part modifiers (``time|hour: [0, 1, 2]``, ``minute``, ``day``, ``week``, ``month``,
``year``) read the event time in UTC. Sigma values are loosely typed, the schema's columns are not:
a string match on a number, boolean or time column reads its text (a time as ISO 8601 UTC,
``2025-03-04T08:00:00.000000Z``), a comparison (``gte`` ...) on a text column reads it as a number
(NULL when it is not one), and a number on a text column matches its digits.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import pyarrow as pa
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
)
from sigma.conversion.base import TextQueryBackend
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.types import SigmaCasedString, SigmaCompareExpression, SigmaString, TimestampPart

from crmguard.schema import COLUMNS, TIME_TYPE

_TYPES = {c.name: c.type for c in COLUMNS}


def _text_view(field: str) -> str | None:
    """SQL reading a non-text schema column as text, or None for a text (or unknown) field."""
    kind = _TYPES.get(field)
    if kind is None or pa.types.is_string(kind):
        return None
    if kind == TIME_TYPE:
        return f"strftime(\"{field}\" AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ')"
    return f'CAST("{field}" AS VARCHAR)'


def _number_view(field: str) -> str | None:
    """SQL reading a text schema column as a number (NULL when it is not one), or None otherwise."""
    kind = _TYPES.get(field)
    return f'TRY_CAST("{field}" AS DOUBLE)' if kind is not None and pa.types.is_string(kind) else None


def _retyped(query: Any, field: str, view: str | None) -> Any:
    """``query`` (a condition that starts by naming ``field``) reading ``view`` instead of the column."""
    return query.replace(f'"{field}"', view, 1) if view and isinstance(query, str) else query

_LIKE = " ESCAPE '\\'"
VOCABULARY_FIELDS = frozenset({"source", "category", "action", "outcome"})
"""Columns whose values crmguard itself writes, always lower case (see ``crmguard.schema``)."""
_BACKSLASH_QUOTE = re.compile(r"\\'")
TIME_FIELDS = frozenset(c.name for c in COLUMNS if c.type == TIME_TYPE)


class DuckDBBackend(TextQueryBackend):
    """Sigma -> DuckDB SQL condition (one per rule; correlations are compiled by
    :mod:`crmguard.engine.correlate`)."""

    name: ClassVar[str] = "crmguard DuckDB backend"
    identifier: ClassVar[str] = "crmguard_duckdb"
    formats: ClassVar[dict[str, str]] = {"default": "DuckDB boolean expression over crmguard's event schema"}
    requires_pipeline: ClassVar[bool] = True

    precedence: ClassVar[tuple[type[ConditionItem], type[ConditionItem], type[ConditionItem]]] = (
        ConditionNOT, ConditionAND, ConditionOR,
    )
    group_expression: ClassVar[str] = "({expr})"
    token_separator: str = " "
    or_token: ClassVar[str] = "OR"
    and_token: ClassVar[str] = "AND"
    not_token: ClassVar[str] = "NOT"
    eq_token: ClassVar[str] = " = "

    field_quote: ClassVar[str] = '"'
    field_quote_pattern: ClassVar[re.Pattern[str] | None] = None

    str_quote: ClassVar[str] = "'"
    escape_char: ClassVar[str] = "\\"
    wildcard_multi: ClassVar[str] = "%"
    wildcard_single: ClassVar[str] = "_"
    add_escaped: ClassVar[str] = "\\"
    bool_values: ClassVar[dict[bool, str | None]] = {True: "true", False: "false"}

    eq_expression: ClassVar[str] = "{field} ILIKE {value}" + _LIKE
    wildcard_match_expression: ClassVar[str] = "{field} ILIKE {value}" + _LIKE
    case_sensitive_match_expression: ClassVar[str] = "{field} LIKE {value}" + _LIKE

    re_expression: ClassVar[str] = "regexp_matches({field}, '{regex}')"
    re_escape_char: ClassVar[str] = "'"
    re_escape: ClassVar[tuple[str, ...]] = ("'",)  # type: ignore[assignment]

    cidr_expression: ClassVar[str] = "cidr_match({field}, '{value}')"
    compare_op_expression: ClassVar[str] = "{field} {operator} {value}"
    compare_operators: ClassVar[dict[SigmaCompareExpression.CompareOperators, str]] = {
        SigmaCompareExpression.CompareOperators.LT: "<",
        SigmaCompareExpression.CompareOperators.LTE: "<=",
        SigmaCompareExpression.CompareOperators.GT: ">",
        SigmaCompareExpression.CompareOperators.GTE: ">=",
    }
    field_equals_field_expression: ClassVar[str] = "{field1} = {field2}"
    field_null_expression: ClassVar[str] = "{field} IS NULL"
    field_exists_expression: ClassVar[str] = "{field} IS NOT NULL"
    field_not_exists_expression: ClassVar[str] = "{field} IS NULL"
    convert_or_as_in: ClassVar[bool] = False
    convert_and_as_in: ClassVar[bool] = False

    # UTC whatever the session's time zone: an hour-of-day rule means the same on every machine.
    field_timestamp_part_expression: ClassVar[str] = "date_part('{timestamp_part}', {field} AT TIME ZONE 'UTC')"
    timestamp_part_mapping: ClassVar[dict[TimestampPart, str]] = {
        TimestampPart.MINUTE: "minute", TimestampPart.HOUR: "hour", TimestampPart.DAY: "day",
        TimestampPart.WEEK: "week", TimestampPart.MONTH: "month", TimestampPart.YEAR: "year",
    }

    unbound_value_str_expression: ClassVar[str] = "raw ILIKE '%' || {value} || '%'" + _LIKE
    unbound_value_num_expression: ClassVar[str] = "raw LIKE '%{value}%'"

    def convert_condition_field_eq_val_str(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> Any:
        """Field = string. On crmguard's own lower-case vocabulary (``VOCABULARY_FIELDS``) a plain
        value becomes an exact ``=`` with the value lower-cased (same result as ILIKE, several times
        faster); elsewhere ILIKE, with ``ESCAPE`` only when the pattern holds an escaped character."""
        value = cond.value
        if cond.field in VOCABULARY_FIELDS and isinstance(value, SigmaString) and not value.contains_special() \
                and not isinstance(value, SigmaCasedString):
            return f'"{cond.field}" = ' + _BACKSLASH_QUOTE.sub("''", super().convert_value_str(
                SigmaString(value.to_plain().lower()), state)).replace("\\_", "_").replace("\\%", "%")
        query = super().convert_condition_field_eq_val_str(cond, state)
        if isinstance(query, str) and query.endswith(_LIKE) and "\\" not in query[: -len(_LIKE)]:
            query = query[: -len(_LIKE)]
        return _retyped(query, cond.field, _text_view(cond.field))

    def convert_condition_field_eq_val_str_case_sensitive(self, cond: ConditionFieldEqualsValueExpression,
                                                          state: ConversionState) -> Any:
        """Field = cased string, on the text of a non-text column."""
        return _retyped(super().convert_condition_field_eq_val_str_case_sensitive(cond, state), cond.field,
                        _text_view(cond.field))

    def convert_condition_field_eq_val_re(self, cond: ConditionFieldEqualsValueExpression,
                                          state: ConversionState) -> Any:
        """Field matches a regular expression, on the text of a non-text column."""
        return _retyped(super().convert_condition_field_eq_val_re(cond, state), cond.field, _text_view(cond.field))

    def convert_condition_field_eq_val_num(self, cond: ConditionFieldEqualsValueExpression,
                                           state: ConversionState) -> Any:
        """Field = number; on a column that is not a number, its text equals the number's."""
        kind = _TYPES.get(cond.field)
        if kind is None or pa.types.is_integer(kind) or pa.types.is_floating(kind):
            return super().convert_condition_field_eq_val_num(cond, state)
        text = _text_view(cond.field) or f'"{cond.field}"'
        return f"{text} = '{cond.value}'"

    def convert_condition_field_compare_op_val(self, cond: ConditionFieldEqualsValueExpression,
                                               state: ConversionState) -> Any:
        """Field compared to a number (gt, gte, lt, lte); a text column is read as a number."""
        return _retyped(super().convert_condition_field_compare_op_val(cond, state), cond.field,
                        _number_view(cond.field))

    def convert_condition_field_eq_field(self, cond: ConditionFieldEqualsValueExpression,
                                         state: ConversionState) -> Any:
        """Field = another field; of two types, both are compared as text."""
        other = cond.value.field
        query = super().convert_condition_field_eq_field(cond, state)
        if _TYPES.get(cond.field) == _TYPES.get(other):
            return query
        return _retyped(_retyped(query, cond.field, _text_view(cond.field)), other, _text_view(other))

    def convert_condition_field_eq_val_timestamp_part(self, cond: ConditionFieldEqualsValueExpression,
                                                      state: ConversionState) -> Any:
        """Field's time part = number, for the event schema's timestamp columns only."""
        if cond.field not in TIME_FIELDS:
            raise SigmaFeatureNotSupportedByBackendError(
                f"time-part modifiers (hour, minute, day, week, month, year) apply to a time field "
                f"({', '.join(sorted(TIME_FIELDS))}), not {cond.field!r}")
        return super().convert_condition_field_eq_val_timestamp_part(cond, state)

    def convert_value_str(self, s: SigmaString, state: ConversionState) -> str:
        """Quote a string value for SQL: LIKE wildcards escaped with backslash, quotes doubled."""
        return _BACKSLASH_QUOTE.sub("''", super().convert_value_str(s, state))

    def finalize_query_default(self, rule: Any, query: str, index: int, state: ConversionState) -> str:
        """The condition itself is the query."""
        return query
