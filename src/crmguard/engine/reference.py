"""Pure-Python reference evaluator of correlation semantics (see :mod:`crmguard.engine.correlate`).

Small and obviously correct rather than fast: tests run it and the DuckDB engine on the same
generated matches and require identical episodes.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections import defaultdict
from dataclasses import dataclass

from crmguard.engine.rule_expr import holds
from crmguard.engine.rules import METRIC_TYPES, Correlation

_OPS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le, "eq": operator.eq,
        "neq": operator.ne}


@dataclass(frozen=True)
class Match:
    """One (rule, event) match: the event's id, time, group values and counted value (a number
    for the metric correlations)."""

    rule: str
    event_id: str
    time: dt.datetime
    group: tuple[str | None, ...]
    value: str | float | None = None


@dataclass(frozen=True)
class Episode:
    """One correlation alert: its group, first/last match times, count, evidence ids, and what the
    condition tested when it first held (None for an ordered chain or an extended condition)."""

    group: tuple[str, ...]
    first_seen: dt.datetime
    last_seen: dt.datetime
    event_count: int
    event_ids: tuple[str, ...]
    fired_value: float | None = None


def evaluate(corr: Correlation, matches: list[Match]) -> list[Episode]:
    """Return the episodes ``corr`` raises over ``matches``, sorted by group and time."""
    span = corr.timespan
    groups: dict[tuple[str, ...], list[Match]] = defaultdict(list)
    for m in matches:
        if m.rule in corr.rules and all(v is not None for v in m.group):
            groups[tuple(str(v) for v in m.group)].append(m)
    episodes: list[Episode] = []
    for group, ms in sorted(groups.items()):
        events: dict[str, Match] = {}
        for m in sorted(ms, key=lambda m: (m.event_id, m.rule)):
            events.setdefault(m.event_id, m)
        firing = sorted({m.time for m in ms if _fires(corr, ms, events, m, span)})
        spans: list[list[dt.datetime]] = []
        for t in firing:
            if spans and spans[-1][1] >= t - span:
                spans[-1][1] = t
            else:
                spans.append([t, t])
        for first, last in spans:
            lo = first - span
            inside = sorted((e for e in events.values() if lo <= e.time <= last), key=lambda e: (e.time, e.event_id))
            episodes.append(Episode(group, inside[0].time, inside[-1].time, len(inside),
                                    tuple(e.event_id for e in inside), _value(corr, ms, events, first, span)))
    return episodes


def _fires(corr: Correlation, ms: list[Match], events: dict[str, Match], m: Match, span: dt.timedelta) -> bool:
    if corr.type == "temporal_ordered":
        if m.rule != corr.rules[-1]:
            return False
        bound = m.time
        for rule in reversed(corr.rules[:-1]):
            before = [x.time for x in ms if x.rule == rule and x.time <= bound]
            if not before:
                return False
            bound = max(before)
        return bound >= m.time - span
    if corr.expression is not None:
        return holds(corr.expression, {x.rule for x in ms if m.time - span <= x.time <= m.time})
    value = _value(corr, ms, events, m.time, span)
    return value is not None and _OPS[corr.op](value, corr.count)


def _value(corr: Correlation, ms: list[Match], events: dict[str, Match], t: dt.datetime,
           span: dt.timedelta) -> float | None:
    """What the condition tests over the window [t - span, t]: events, distinct values or rules
    counted, or the metric (None when no value is set); None for an ordered chain or an expression."""
    inside = [e for e in events.values() if t - span <= e.time <= t]
    if corr.type == "event_count":
        return len(inside)
    if corr.type == "value_count":
        return len({e.value for e in inside if e.value is not None})
    if corr.type in METRIC_TYPES:
        numbers = [float(e.value) for e in inside if e.value is not None]
        return _metric(corr, numbers) if numbers else None
    if corr.type == "temporal" and corr.expression is None:
        return len({x.rule for x in ms if t - span <= x.time <= t})
    return None


def _metric(corr: Correlation, numbers: list[float]) -> float:
    if corr.type == "value_sum":
        return sum(numbers)
    if corr.type == "value_avg":
        return sum(numbers) / len(numbers)
    ranked = sorted(numbers)
    pos = (len(ranked) - 1) * (float(corr.percentile or 0) / 100)
    lo = int(pos)
    if lo + 1 >= len(ranked):
        return ranked[lo]
    return ranked[lo] + (ranked[lo + 1] - ranked[lo]) * (pos - lo)
