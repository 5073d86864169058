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
     a match of rk at t; the condition then requires all of R, in order).
3. Firing windows of a group that overlap or touch merge into one *episode* [min t - T, max t];
   each episode is one alert, with the group's matches inside it as evidence (first_seen = the
   earliest, last_seen = the latest, event_count = how many).

:mod:`crmguard.engine.reference` implements the same definition in plain Python; tests check that
both give identical alerts on generated events.
"""

from __future__ import annotations

from crmguard.engine.rules import ACTOR, Correlation
from crmguard.sources.sql import ident

OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=", "neq": "<>"}


def _field(name: str) -> str:
    return ACTOR if name == ACTOR else ident(name)


def correlation_sql(corr: Correlation, matches: str = "mr", where: str = "") -> str:
    """Return a SELECT over table ``matches`` (one row per (rule, matching event), with columns
    ``rule``, ``time``, ``event_id`` and the event schema) yielding one row per episode:
    ``grp`` (list of group values), ``first_seen``, ``last_seen``, ``event_count``, ``event_ids``.
    ``where`` (``" AND ..."``) further filters the matches, e.g. the correlation's allow-list."""
    secs = int(corr.timespan.total_seconds())
    span = f"INTERVAL {secs} SECOND"
    rules = ", ".join(f"'{r}'" for r in corr.rules)
    group = "[" + ", ".join(f"CAST({_field(g)} AS VARCHAR)" for g in corr.group_by) + "]::VARCHAR[]"
    not_null = " AND ".join(f"{_field(g)} IS NOT NULL" for g in corr.group_by) or "true"
    op = OPS[corr.op]
    window = f"(PARTITION BY grp ORDER BY time RANGE BETWEEN {span} PRECEDING AND CURRENT ROW)"
    base = f"SELECT *, {group} AS grp FROM {matches} WHERE rule IN ({rules}) AND {not_null}{where}"
    events = "SELECT * FROM base QUALIFY row_number() OVER (PARTITION BY grp, event_id ORDER BY rule) = 1"
    if corr.type == "event_count":
        firing = f"SELECT grp, time AS t FROM (SELECT grp, time, count(*) OVER {window} AS n FROM events) WHERE n {op} {corr.count}"
    elif corr.type == "value_count":
        value = _field(corr.field or ACTOR)
        # DuckDB has no DISTINCT in RANGE windows: collect the window's values and count distinct ones.
        firing = (
            f"SELECT grp, time AS t FROM (SELECT grp, time, len(list_distinct(list({value}) OVER {window})) AS n "
            f"FROM events) WHERE n {op} {corr.count}"
        )
    elif corr.type == "temporal":
        firing = (
            f"SELECT grp, time AS t FROM (SELECT grp, time, len(list_distinct(list(rule) OVER {window})) AS n "
            f"FROM base) WHERE n {op} {corr.count}"
        )
    elif corr.type == "temporal_ordered":
        firing = _ordered_firing(corr, span)
    else:
        raise ValueError(f"unsupported correlation type {corr.type}")
    return f"""
WITH base AS ({base}),
events AS ({events}),
firing AS ({firing}),
marked AS (SELECT grp, t, CASE WHEN lag(t) OVER (PARTITION BY grp ORDER BY t) >= t - {span} THEN 0 ELSE 1 END AS brk FROM firing),
episodes AS (SELECT grp, t, sum(brk) OVER (PARTITION BY grp ORDER BY t ROWS UNBOUNDED PRECEDING) AS ep FROM marked),
spans AS (SELECT grp, ep, min(t) - {span} AS lo, max(t) AS hi FROM episodes GROUP BY grp, ep)
SELECT s.grp, min(e.time) AS first_seen, max(e.time) AS last_seen, count(*) AS event_count,
       list(e.event_id ORDER BY e.time, e.event_id) AS event_ids
FROM spans s JOIN events e ON e.grp = s.grp AND e.time BETWEEN s.lo AND s.hi
GROUP BY s.grp, s.ep"""


def _ordered_firing(corr: Correlation, span: str) -> str:
    """Chains r1 <= r2 <= ... <= rk: for each rk match, take the latest r(k-1) match at or before it
    (ASOF join), and so on back to r1; the latest predecessors give the shortest chain, so the
    window fires iff that chain starts within T."""
    steps = [f"r{i}" for i in range(len(corr.rules))]
    ctes = [f"{s} AS (SELECT grp, time FROM base WHERE rule = '{r}')" for s, r in zip(steps, corr.rules, strict=True)]
    last = len(steps) - 1
    query = f"SELECT c{last}.grp, c{last}.time AS t{last}"
    joins = f"FROM {steps[last]} c{last}"
    for i in range(last - 1, -1, -1):
        joins += f" ASOF JOIN {steps[i]} c{i} ON c{i}.grp = c{last}.grp AND c{i}.time <= c{i + 1}.time"
        query += f", c{i}.time AS t{i}"
    chain = f"{query} {joins}"
    return f"WITH {', '.join(ctes)} SELECT grp, t{last} AS t FROM ({chain}) WHERE t0 >= t{last} - {span}"
