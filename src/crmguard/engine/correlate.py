"""Sigma correlation rules compiled to DuckDB SQL, with one written definition of their semantics.

Semantics (sliding windows by event time), for a correlation over base rules R, grouped by fields
G, with timespan T:

1. *Matches* are the events matching any rule in R whose G fields are all non-null; their group is
   the tuple of G values. An event matching several rules of R is one event (for counting).
2. For every match time t in a group, the *window* is [t - T, t] (both ends included). The window
   *fires* when, over the group's matches inside it:
   - event_count: the number of distinct events satisfies the condition (e.g. >= 10);
   - value_count: the number of distinct non-null values of the condition's field does;
   - temporal: the number of distinct rules of R with at least one match does (default: all);
   - temporal_ordered: matches of r1, r2 ... rk exist with t1 <= t2 <= ... <= tk (a chain ending at
     a match of rk at t; the condition then requires all of R, in order);
   - value_sum, value_avg: the sum, the mean of the condition's (numeric) field over the events of
     the window, nulls left out;
   - value_median, value_percentile: the median, the p-th percentile of those values, interpolated
     linearly between the two nearest ranks (position (n - 1) * p / 100 in the sorted values).
   A metric over no value (every event of the window has the field null) fires nowhere.
   A temporal correlation with an extended condition (``rule_a and not rule_b``) fires when the
   expression holds over the set of rules of R with a match in the window.
3. Firing windows of a group that overlap or touch merge into one *episode* [min t - T, max t];
   each episode is one alert, with the group's matches inside it as evidence (first_seen = the
   earliest, last_seen = the latest, event_count = how many).

:mod:`crmguard.engine.reference` implements the same definition in plain Python; tests check that
both give identical alerts on generated events.
"""

from __future__ import annotations

import datetime as dt

from crmguard.engine.rule_expr import monotone, to_sql
from crmguard.engine.rules import ACTOR, METRIC_TYPES, Correlation
from crmguard.sources.sql import ident, sql_str

OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=", "neq": "<>"}


def _field(name: str) -> str:
    return ACTOR if name == ACTOR else ident(name)


def correlation_sql(corr: Correlation, matches: str = "mr", where: str = "", aggregates: str = "") -> str:
    """Return a SELECT over table ``matches`` (one row per (rule, matching event), with columns
    ``rule``, ``time``, ``event_id`` and the event schema) yielding one row per episode:
    ``grp`` (list of group values), ``first_seen``, ``last_seen``, ``event_count``, ``event_ids``,
    ``fired_at`` (the first match time at which the condition held), ``fired_value`` (what the
    condition tested then: the events, values, rules counted or the metric; NULL for an ordered
    chain or an extended condition), then ``aggregates`` (extra SELECT items over the episode's events, e.g. ``sum(rows) AS n``).
    ``where`` (``" AND ..."``) further filters the matches, e.g. the correlation's allow-list."""
    return f"SELECT * EXCLUDE (corr) FROM ({batch_sql({'_': corr}, matches, where, aggregates)})"


def _group_value(name: str, corrs: dict[str, Correlation]) -> str:
    """SQL for group-by ``name`` over a match ``m`` of correlation ``c.corr``: the field itself, or
    for a Sigma alias the field its mapping names for the match's rule."""
    cases = [
        f"WHEN c.corr = '{sql_str(cn)}' AND m.rule = '{sql_str(rule)}' THEN CAST(m.{_field(fld)} AS VARCHAR)"
        for cn, corr in corrs.items() for rule, fld in (corr.alias(name) or {}).items()
    ]
    if not cases:
        return f"CAST(m.{_field(name)} AS VARCHAR)"
    return f"(CASE {' '.join(cases)} END)"


def shape(corr: Correlation) -> tuple[object, ...]:
    """What correlations must share to be evaluated in one query by :func:`batch_sql`: everything
    but the names of their rules (an extended condition, which names them, included)."""
    return (corr.type, corr.timespan, corr.group_by, corr.op, corr.count, corr.field, len(corr.rules),
            corr.percentile, corr.expression)


def batch_sql(corrs: dict[str, Correlation], matches: str = "mr", where: str = "", aggregates: str = "",
              touched: dt.datetime | None = None) -> str:
    """Like :func:`correlation_sql` for several correlations of one :func:`shape` at once (keyed by
    name), in one query: each match is joined to the correlations that use its rule, and every
    window, episode and join is partitioned by correlation. Rows gain a leading ``corr`` column.
    With ``touched``, only the groups with a match at or after it are evaluated."""
    shapes = {shape(c) for c in corrs.values()}
    if len(shapes) != 1:
        raise ValueError("correlations of different shapes cannot share a query")
    corr = next(iter(corrs.values()))
    secs = int(corr.timespan.total_seconds())
    span = f"INTERVAL {secs} SECOND"
    op = OPS[corr.op]
    window = f"(PARTITION BY k ORDER BY time RANGE BETWEEN {span} PRECEDING AND CURRENT ROW)"
    base = _base_sql(corrs, matches, where, touched)
    reach = _reach(corr)
    if reach is not None:
        # Windows only for the groups whose matches, all together, reach the condition: the others
        # fire nowhere (see possible_sql), and a pack's largest match sets (every session's data
        # access, every API client in use) are mostly such groups.
        base = f"WITH g AS ({base}) SELECT * FROM g WHERE k IN (SELECT k FROM g GROUP BY k HAVING {reach})"
    # One row per event of a group (the first of its rules). A window, not arg_min over the whole
    # row: on a small match table the aggregate is faster, but over 20 M events it is 16% slower
    # and takes 35% more memory.
    # Over one rule a group's matches are already one per event (``mr`` holds a (rule, event) once).
    events = ("SELECT * FROM base" if len(corr.rules) == 1 else
              "SELECT * FROM base QUALIFY row_number() OVER (PARTITION BY k, event_id ORDER BY rule, step) = 1")
    if corr.type == "event_count":
        firing = (f"SELECT k, time AS t, n FROM (SELECT k, time, count(*) OVER {window} AS n FROM events) "
                  f"WHERE n {op} {corr.count}")
    elif corr.type == "value_count":
        firing = _distinct_firing("events", _field(corr.field or ACTOR), span, f"{op} {corr.count}")
    elif corr.type in METRIC_TYPES:
        firing = (f"SELECT k, time AS t, n FROM (SELECT k, time, {_metric(corr)} OVER {window} AS n FROM events) "
                  f"WHERE n {op} {corr.count}")
    elif corr.type == "temporal" and corr.expression is not None:
        firing = _expression_firing(corr, window)
    elif corr.type == "temporal":
        firing = _distinct_firing("base", "rule", span, f"{op} {corr.count}")
    elif corr.type == "temporal_ordered":
        firing = _ordered_firing(len(corr.rules), span)
    else:
        raise ValueError(f"unsupported correlation type {corr.type}")
    extra = f",\n       {aggregates}" if aggregates else ""
    return f"""
WITH base AS ({base}),
events AS ({events}),
firing AS (SELECT k, t, max(CAST(n AS DOUBLE)) AS n FROM ({firing}) GROUP BY k, t),
marked AS (SELECT k, t, n, CASE WHEN lag(t) OVER (PARTITION BY k ORDER BY t) >= t - {span} THEN 0 ELSE 1 END AS brk FROM firing),
episodes AS (SELECT k, t, n, sum(brk) OVER (PARTITION BY k ORDER BY t, brk DESC ROWS UNBOUNDED PRECEDING) AS ep FROM marked),
spans AS (SELECT k, ep, min(t) - {span} AS lo, max(t) AS hi, arg_min(n, t) AS v FROM episodes GROUP BY k, ep)
SELECT any_value(e.corr) AS corr, any_value(e.grp) AS grp, min(e.time) AS first_seen, max(e.time) AS last_seen,
       count(*) AS event_count, list(e.event_id ORDER BY e.time, e.event_id) AS event_ids,
       any_value(s.lo) + {span} AS fired_at, any_value(s.v) AS fired_value{extra}
FROM spans s JOIN events e ON e.k = s.k AND e.time BETWEEN s.lo AND s.hi
GROUP BY s.k, s.ep"""


def _base_sql(corrs: dict[str, Correlation], matches: str, where: str, touched: dt.datetime | None = None) -> str:
    """The matches of ``corrs`` (one shape): one row per (correlation, step, match) whose group
    values are all set, with ``grp`` (the group values) and ``k``; with ``touched``, only those of
    the groups with a match at or after it."""
    corr = next(iter(corrs.values()))
    steps = ", ".join(f"('{sql_str(name)}', '{sql_str(rule)}', {i})" for name, c in corrs.items()
                      for i, rule in enumerate(c.rules))
    values = [_group_value(g, corrs) for g in corr.group_by]
    group = "[" + ", ".join(values) + "]::VARCHAR[]"
    not_null = " AND ".join(f"{v} IS NOT NULL" for v in values) or "true"
    # Windows, joins and groups work on k, one string naming the correlation and the group: DuckDB
    # partitions and joins on a string several times faster than on a (name, list) pair.
    base = (f"SELECT c.corr, c.step, m.*, {group} AS grp, to_json(list_prepend(c.corr, {group}))::VARCHAR AS k "
            f"FROM {matches} m JOIN (VALUES {steps}) c(corr, rule, step) ON m.rule = c.rule WHERE {not_null}{where}")
    if touched is None:
        return base
    # A group without a match at or after ``touched`` has every episode end before it.
    return (f"WITH b AS ({base}) SELECT * FROM b "
            f"WHERE k IN (SELECT k FROM b WHERE time >= TIMESTAMPTZ '{touched.isoformat()}')")


def possible_sql(corrs: dict[str, Correlation], matches: str = "mr", where: str = "",
                 touched: dt.datetime | None = None) -> str | None:
    """A SELECT of the names (column ``corr``) of those of ``corrs`` (one shape, as for
    :func:`batch_sql`) that some window of ``matches`` may fire, or None when that cannot be told
    cheaply. A window holds at most its group's matches, so a group whose matches all together do
    not reach the condition (events, values or rules counted over the whole read range) fires
    nowhere: a cheap grouping that spares the windows of :func:`batch_sql` for correlations that
    cannot fire. Only conditions that more matches can only help (``gte``, ``gt``, ``eq``)."""
    reach = _reach(next(iter(corrs.values())))
    if reach is None:
        return None
    return f"SELECT DISTINCT corr FROM ({_base_sql(corrs, matches, where, touched)}) GROUP BY corr, k HAVING {reach}"


def _reach(corr: Correlation) -> str | None:
    """A HAVING test over one group's matches (rows of :func:`_base_sql`): false when no window of
    the group can fire, because all its matches together do not reach the condition (events,
    values or rules counted over the whole read range); None when that cannot be told so (a
    condition that more matches can hurt: ``lt``, ``lte``, ``neq``)."""
    if corr.expression is not None:
        if not monotone(corr.expression):
            return None
        return to_sql(corr.expression, lambda r: f"bool_or(rule = '{sql_str(r)}')")
    if corr.op not in ("gte", "gt", "eq"):
        return None
    test = f"{'>' if corr.op == 'gt' else '>='} {corr.count}"
    if corr.type == "value_sum":
        # A window's sum is at most that of the group's positive values.
        return f"coalesce(sum(greatest({_field(corr.field)}, 0)), 0) {test}"
    if corr.type in METRIC_TYPES:
        # A mean, median or percentile is at most the largest value.
        return f"max({_field(corr.field)}) {test}"
    if corr.type == "event_count":
        return f"count(DISTINCT event_id) {test}"
    if corr.type == "value_count":
        return f"count(DISTINCT {_field(corr.field or ACTOR)}) {test}"
    if corr.type == "temporal":
        return f"count(DISTINCT rule) {test}"
    if corr.type == "temporal_ordered":
        return f"count(DISTINCT step) = {len(corr.rules)}"
    return None


def _metric(corr: Correlation) -> str:
    """The window aggregate of a metric correlation (its field's nulls left out by SQL)."""
    value = _field(corr.field or "")
    if corr.type == "value_sum":
        return f"sum({value})"
    if corr.type == "value_avg":
        return f"avg({value})"
    return f"quantile_cont({value}, {float(corr.percentile or 0) / 100!r})"


def _expression_firing(corr: Correlation, window: str) -> str:
    """Times t where a temporal correlation's extended condition holds over the rules present in
    the group's window [t - T, t]."""
    flags = ", ".join(f"bool_or(rule = '{sql_str(r)}') OVER {window} AS p{i}" for i, r in enumerate(corr.rules))
    test = to_sql(corr.expression or ("and",), lambda r: f"p{corr.rules.index(r)}")
    return f"SELECT k, time AS t, NULL AS n FROM (SELECT k, time, {flags} FROM base) WHERE {test}"


def _distinct_firing(source: str, value: str, span: str, test: str) -> str:
    """Times t of ``source``'s rows where the number of distinct non-null ``value``s among the
    group's rows in [t - T, t] passes ``test``, in O(n log n).

    A row at s makes its value *present* over [s, s + T]; a value's overlapping presences merge into
    intervals (gaps and islands; among rows at the same instant the one that may open an island
    sorts first, so one value never splits into two islands), and the distinct count at t is the number of intervals holding t:
    a running sum of +1 at each interval start and -1 after each end, read at every row time (starts
    sort before readings, ends after, so both window ends are inclusive)."""
    return f"""WITH v AS (SELECT k, {value} AS v, time FROM {source} WHERE {value} IS NOT NULL),
    gaps AS (SELECT k, v, time, CASE WHEN lag(time) OVER (PARTITION BY k, v ORDER BY time)
             >= time - {span} THEN 0 ELSE 1 END AS brk FROM v),
    islands AS (SELECT k, v, time, sum(brk) OVER (PARTITION BY k, v ORDER BY time, brk DESC
                ROWS UNBOUNDED PRECEDING) AS island FROM gaps),
    present AS (SELECT k, min(time) AS a, max(time) + {span} AS b FROM islands GROUP BY k, v, island),
    sweep AS (SELECT k, a AS t, 0 AS ord, 1 AS d FROM present
              UNION ALL SELECT k, b, 2, -1 FROM present
              UNION ALL SELECT DISTINCT k, time, 1, 0 FROM {source}),
    counted AS (SELECT k, t, ord, sum(d) OVER (PARTITION BY k ORDER BY t, ord
                ROWS UNBOUNDED PRECEDING) AS n FROM sweep)
    SELECT k, t, n FROM counted WHERE ord = 1 AND n {test}"""


def _ordered_firing(n: int, span: str) -> str:
    """Chains r1 <= r2 <= ... <= rk: for each rk match, take the latest r(k-1) match at or before it
    (ASOF join), and so on back to r1; the latest predecessors give the shortest chain, so the
    window fires iff that chain starts within T."""
    last = n - 1
    # One equality key, k (DuckDB 2.0's ASOF JOIN misses matches with two).
    ctes = [f"s{i} AS (SELECT k, time FROM base WHERE step = {i})" for i in range(n)]
    query = f"SELECT c{last}.k, c{last}.time AS t{last}"
    joins = f"FROM s{last} c{last}"
    for i in range(last - 1, -1, -1):
        joins += f" ASOF JOIN s{i} c{i} ON c{i}.k = c{last}.k AND c{i}.time <= c{i + 1}.time"
        query += f", c{i}.time AS t{i}"
    return (f"WITH {', '.join(ctes)} SELECT k, t{last} AS t, NULL AS n FROM ({query} {joins}) "
            f"WHERE t0 >= t{last} - {span}")
