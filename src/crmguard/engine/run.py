"""Run a rule pack over the lake: one scan for every detection, then correlations and dedup.

1. **One scan**: a single query reads the events of the window once and evaluates every rule's
   condition, keeping each matching event with the list of rules it matched (``mr``: one row per
   (rule, event)). Cost grows with the data and the number of *matching* events, not data × rules.
2. **Detections**: matches of visible rules group by rule, dedup key and dedup period into alerts
   (threshold: minimum events per period).
3. **Correlations**: compiled by :mod:`crmguard.engine.correlate` over ``mr``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

import duckdb

from crmguard.engine.conjuncts import conjuncts
from crmguard.engine.correlate import batch_sql, possible_sql, shape
from crmguard.engine.rules import ACTOR, Correlation, Rule, mentions
from crmguard.schema import COLUMNS
from crmguard.sources.sql import ident, sql_str
from crmguard.utc import iso_z

EVIDENCE_LIMIT = 50
RECORDS_LIMIT = 1000


@dataclass(frozen=True)
class Alert:
    """One alert: which rule, about whom, when, how many events, evidence and explanation."""

    id: str
    rule_id: str
    title: str
    severity: str
    actor: str | None
    first_seen: dt.datetime
    last_seen: dt.datetime
    event_count: int
    dedup_key: str
    event_ids: tuple[str, ...]
    record_ids: tuple[str, ...] = ()
    explanation: str = ""
    context: dict[str, object] = field(default_factory=dict)


def _alert_id(rule_id: str, key: str, start: dt.datetime) -> str:
    return hashlib.sha256(f"{rule_id}\x1f{key}\x1f{start.isoformat()}".encode()).hexdigest()[:20]


def heavy_rules(rules: list[Rule]) -> list[Rule]:
    """Threshold detections (threshold above 1) that no correlation uses: their matches are counted
    per dedup group without being materialised (see :func:`prepare_matches`)."""
    used = {n for r in rules if r.correlation for n in r.correlation.rules}
    return [r for r in rules if r.condition and not r.hidden and r.threshold > 1 and r.name not in used]


HITS = "__hits"
"""Column of an ``events`` view that holds, per event, the names of the rules whose condition it
meets (allow-lists aside), computed when the event was stored (see ``run_rules``' ``hits``)."""


def hits_sql(conditions: list[tuple[str, str]]) -> str:
    """SQL over an event: the list (VARCHAR[]) of the names whose condition holds, given
    ``conditions`` as (rule name, SQL condition) pairs.

    The conditions are tested as a tree of their top-level AND terms
    (:func:`~crmguard.engine.conjuncts.conjuncts`): rules that start with the same terms test them
    once per event, and their other terms only on the events that pass. A large pack holds many
    variations of a few behaviours (the same event types, objects and sources), and testing each
    rule's terms on every event cost about 10 ns per rule and event."""
    if not conditions:
        return "[]::VARCHAR[]"
    tree = _term_tree([(name, conjuncts(cond)) for name, cond in conditions])
    return f"list_filter(coalesce({tree}, []::VARCHAR[]), lambda x: x IS NOT NULL)"


def _term_tree(rules: list[tuple[str, list[str]]]) -> str:
    """A VARCHAR[] expression holding, for each (name, terms) of ``rules``, the name when all its
    terms hold (NULL entries otherwise, or no entry when a shared first term fails)."""
    by_first: dict[str, list[tuple[str, list[str]]]] = {}
    alone: list[str] = []  # one scalar entry per rule tested on its own
    for name, terms in rules:
        if terms:
            by_first.setdefault(terms[0], []).append((name, terms[1:]))
        else:
            alone.append(f"'{sql_str(name)}'")
    lists: list[str] = []
    for first, members in by_first.items():
        if len(members) == 1:
            name, rest = members[0]
            alone.append(f"CASE WHEN {' AND '.join(f'({t})' for t in [first, *rest])} THEN '{sql_str(name)}' END")
        else:
            lists.append(f"CASE WHEN ({first}) THEN {_term_tree(members)} END")
    if alone:
        lists.append(f"[{', '.join(alone)}]::VARCHAR[]")
    return lists[0] if len(lists) == 1 else f"flatten([{', '.join(lists)}])"


def _condition_sql(rule: Rule, hits: frozenset[str]) -> str:
    """``rule``'s condition over an event: read from the :data:`HITS` column when ``rule`` is in ``hits``."""
    return f"list_contains({HITS}, '{sql_str(rule.name)}')" if rule.name in hits else f"({rule.condition})"


def _scan_sql(rules: list[Rule], cols: str, where: list[str], reads: dict[str, dt.datetime] | None = None,
              hits: frozenset[str] = frozenset()) -> str:
    """SELECT of one row per matching (rule, event) of ``rules`` over the ``events`` view: ``rule``,
    the columns ``cols`` and ``actor``. ``reads`` (rule name -> time) leaves out a rule's matches
    before its time, without testing its condition there; ``hits``, the rules whose condition the
    view holds precomputed."""
    reads = reads or {}
    conds = [(f"time >= TIMESTAMPTZ '{reads[r.name].isoformat()}' AND " if r.name in reads else "")
             + f"{_condition_sql(r, hits)}{allowlist_sql(r)}" for r in rules]
    hits = hits_sql([(r.name, c) for r, c in zip(rules, conds, strict=True)])
    actor = f"coalesce(e.username, i.name, e.user_id) AS {ACTOR}"
    filters = " AND ".join(where) or "true"
    # Each condition is written (so bound and planned) once: with a thousand rules, planning them
    # twice (in the list and in an OR filter before it) took longer than the scan. The unnest drops
    # the events that meet none before the identity join, unless a condition reads the actor it gives.
    if any(mentions(ACTOR, c) for c in conds):
        return f"""SELECT unnest(hits) AS rule, * EXCLUDE (hits) FROM (
            SELECT {cols}, {actor}, {hits} AS hits
            FROM events e LEFT JOIN identities i USING (user_id) WHERE {filters})"""
    return f"""SELECT e.rule, {cols}, {actor} FROM (
            SELECT unnest(hits) AS rule, * EXCLUDE (hits) FROM (SELECT {cols}, {hits} AS hits FROM events WHERE {filters})
            ) e LEFT JOIN identities i USING (user_id)"""


def _dedup_key_sql(rule: Rule) -> str:
    """The dedup key of a match of ``rule`` (over ``mr``'s columns)."""
    return "concat_ws(' | ', " + ", ".join(f"coalesce(CAST({ACTOR if f == ACTOR else ident(f)} AS VARCHAR), '-')"
                                           for f in rule.dedup_fields) + ")"


def match_reads(rules: list[Rule], starts: dict[str, dt.datetime]) -> dict[str, dt.datetime]:
    """Per rule name, the earliest time its matches are needed given the runs' ``starts``: its own
    start and that of every correlation over it (a correlation reads its base rules' matches from
    its own start). A rule some run needs from the window start has no entry."""
    needs: dict[str, list[dt.datetime | None]] = {}
    for r in rules:
        if r.condition and not r.hidden:
            needs.setdefault(r.name, []).append(starts.get(r.name))
        elif r.correlation:
            for base in r.correlation.rules:
                needs.setdefault(base, []).append(starts.get(r.name))
    return {name: min(ts) for name, ts in needs.items() if None not in ts}  # type: ignore[type-var]


def prepare_matches(con: duckdb.DuckDBPyConnection, rules: list[Rule], since: dt.datetime | None,
                    until: dt.datetime | None, count_heavy: bool = True,
                    starts: dict[str, dt.datetime] | None = None, identities: str | None = None,
                    hits: frozenset[str] = frozenset(), touched: dt.datetime | None = None) -> None:
    """Create temp table ``mr`` (one row per matching (rule, event), with ``rule`` = rule name and
    ``actor``) from the ``events`` view of ``con``, in one scan for every rule but the
    :func:`heavy_rules`. Those may match a large share of all events (``mass_record_views``: a third)
    and alert on few groups, so materialising their matches would dominate the run and, on large
    lakes, spill: a second, narrow scan counts their matches per (rule, dedup key, period) and a
    third, only when some group reaches its threshold, adds to ``mr`` the matches of those groups,
    which is all their alerts need. With ``count_heavy`` false every match of every rule is kept.
    ``starts`` (see :func:`run_rules`) leaves out matches no run needs (:func:`match_reads`);
    ``identities``, a SELECT of (user_id, name): the latest username of each user id, when the
    caller keeps it (default: computed from every event of ``events``); ``hits``, the rules whose
    condition ``events`` holds in its :data:`HITS` column; ``touched``, see :func:`run_rules`."""
    heavy = heavy_rules(rules) if count_heavy else []
    heavy_names = {r.name for r in heavy}
    detections = [r for r in rules if r.condition and r.name not in heavy_names]
    where = []
    if since:
        where.append(f"time >= TIMESTAMPTZ '{since.isoformat()}'")
    if until:
        where.append(f"time < TIMESTAMPTZ '{until.isoformat()}'")
    cols = ", ".join(ident(c) for c in match_columns(rules))
    identities = identities or (
        "SELECT user_id, arg_max(username, time) AS name FROM events "
        "WHERE user_id IS NOT NULL AND username IS NOT NULL GROUP BY user_id"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE identities AS {identities}")
    reads = match_reads(rules, starts or {})
    con.execute(f"CREATE OR REPLACE TEMP TABLE mr AS {_scan_sql(detections, cols, where, reads, hits)}")
    if heavy:
        _add_heavy_matches(con, heavy, cols, where, reads, hits, touched)


def _add_heavy_matches(con: duckdb.DuckDBPyConnection, heavy: list[Rule], cols: str, where: list[str],
                       reads: dict[str, dt.datetime], hits: frozenset[str], touched: dt.datetime | None) -> None:
    """Count ``heavy`` rules' matches per (rule, dedup key, period) in a narrow scan; add the matches
    of the groups that reach their rule's threshold (and have one at or after ``touched``) to ``mr``."""
    def per_rule(values: dict[str, str]) -> str:
        return "CASE rule " + " ".join(f"WHEN '{sql_str(n)}' THEN {v}" for n, v in values.items()) + " END"

    dkey = per_rule({r.name: _dedup_key_sql(r) for r in heavy})
    bucket = f"floor(epoch(time) / {per_rule({r.name: str(int(r.dedup_period.total_seconds())) for r in heavy})})"
    threshold = per_rule({r.name: str(r.threshold) for r in heavy})
    fields = {"time", "user_id", "username"} | {f for r in heavy for f in r.dedup_fields if f != ACTOR}
    narrow = ", ".join(ident(c.name) for c in COLUMNS if c.name in fields)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE heavy_hot AS
        SELECT rule, {dkey} AS dkey, {bucket} AS bucket, min(time) AS lo, max(time) AS hi
        FROM ({_scan_sql(heavy, narrow, where, reads, hits)}) GROUP BY ALL
        HAVING count(*) >= {threshold}{_touched_sql(touched, " AND max(time)")}"""
    )
    spans = hot_spans(con.execute("SELECT lo, hi FROM heavy_hot ORDER BY lo").fetchall())
    if not spans:
        return
    # Only the times the hot groups' matches cover are read again: they are few (at 20 M events 42
    # groups over 75 of the lake's 7,000 hours), and a scan of the whole lake was most of the cost.
    covered = " OR ".join(f"time BETWEEN TIMESTAMPTZ '{lo.isoformat()}' AND TIMESTAMPTZ '{hi.isoformat()}'"
                          for lo, hi in spans)
    span = [*where, f"({covered})"]
    [(partitioned,)] = con.execute(
        "SELECT count(*) > 0 FROM duckdb_columns() WHERE table_name = 'events' AND column_name = 'date'").fetchall()
    if partitioned:
        # Over the lake, the days' partitions: the other files are not even opened (testing the
        # spans on every row of a large lake costs as much as the scan they were to spare).
        listed = ", ".join(f"DATE '{d}'" for d in _utc_days(spans))
        span.append(f"date IN ({listed})")
    con.execute(
        f"""INSERT INTO mr BY NAME SELECT * EXCLUDE (dkey, bucket)
        FROM (SELECT *, {dkey} AS dkey, {bucket} AS bucket FROM ({_scan_sql(heavy, cols, span, reads, hits)}))
        SEMI JOIN heavy_hot USING (rule, dkey, bucket)"""
    )


def _utc_days(spans: list[tuple[dt.datetime, dt.datetime]]) -> list[dt.date]:
    """The UTC days (the lake's ``date`` partitions) that ``spans`` touch, sorted."""
    days: set[dt.date] = set()
    for lo, hi in spans:
        day, last = lo.astimezone(dt.UTC).date(), hi.astimezone(dt.UTC).date()
        while day <= last:
            days.add(day)
            day += dt.timedelta(days=1)
    return sorted(days)


def hot_spans(intervals: list[tuple[dt.datetime, dt.datetime]], limit: int = 512) -> list[tuple[dt.datetime, dt.datetime]]:
    """The time ``intervals`` (closed, sorted by start) merged where they overlap, then across the
    smallest gaps until at most ``limit`` remain; returns them sorted. Every instant of an
    interval is in a returned span."""
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for lo, hi in intervals:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    if len(merged) <= limit:
        return merged
    # Close the smallest gaps (gap i lies between spans i and i + 1).
    gaps = sorted(range(len(merged) - 1), key=lambda i: merged[i + 1][0] - merged[i][1])
    closed = set(gaps[:len(merged) - limit])
    out = [merged[0]]
    for i in range(1, len(merged)):
        if i - 1 in closed:
            out[-1] = (out[-1][0], merged[i][1])
        else:
            out.append(merged[i])
    return out


_ALWAYS = ("time", "event_id", "user_id", "username", "rows", "record_id", "object", "src_ip", "app", "user_agent")
"""Match columns every run keeps: identity, time, and what alerts report (see ``_CONTEXT``)."""


def match_columns(rules: list[Rule]) -> list[str]:
    """The event columns ``mr`` keeps for ``rules``: those alerts report, plus every field a
    rule's dedup key, correlation group, counted value or correlation allow-list uses."""
    wanted = set(_ALWAYS)
    for r in rules:
        wanted.update(r.dedup_fields)
        if r.correlation:
            wanted.update(r.correlation.fields())
            wanted.update(r.allowlist)
    return [c.name for c in COLUMNS if c.name in wanted]


def allowlist_sql(rule: Rule) -> str:
    """SQL ``AND ...`` excluding the rule's allow-listed values (case-insensitive; NULL is not excluded)."""
    parts = []
    for fld, values in rule.allowlist.items():
        col = ACTOR if fld == ACTOR else ident(fld)
        vals = ", ".join(f"lower('{sql_str(v)}')" for v in values)
        parts.append(f" AND coalesce(lower(CAST({col} AS VARCHAR)) NOT IN ({vals}), true)")
    return "".join(parts)


def run_rules(con: duckdb.DuckDBPyConnection, rules: list[Rule], since: dt.datetime | None = None,
              until: dt.datetime | None = None, starts: dict[str, dt.datetime] | None = None,
              together: bool = False, identities: str | None = None,
              hits: frozenset[str] = frozenset(), touched: dt.datetime | None = None) -> list[Alert]:
    """Evaluate ``rules`` over ``con``'s ``events`` view between ``since`` and ``until`` (UTC,
    ``until`` exclusive) and return the alerts, sorted by first_seen. ``starts`` (rule name ->
    time, none before ``since``) lets a rule read less: its matches before its start are left out
    (the incremental runs of ``watch``, where a one-hour correlation need not re-read the seven days
    another needs). ``together`` runs every correlation in one query: faster on the small match
    tables of incremental runs, while over a large lake each correlation's working set is better
    held one at a time. ``identities``: see :func:`prepare_matches`. ``hits``: names of the rules
    whose condition (allow-lists aside) ``events`` holds, per event, in a :data:`HITS` column of
    names (the match cache of ``watch`` computes it once per event as it stores it). ``touched``:
    only the alerts of groups (a detection's rule, dedup key and period; a correlation's group) with
    a match at or after it are computed, the only ones whose ``last_seen`` can reach it (an
    incremental run stores no other: the groups its new events touched)."""
    prepare_matches(con, rules, since, until, starts=starts, identities=identities, hits=hits, touched=touched)
    starts = starts or {}
    by_name = {r.name: r for r in rules}
    alerts: list[Alert] = []
    detections: dict[tuple, list[Rule]] = {}
    correlations: dict[tuple, list[Rule]] = {}
    for rule in rules:
        if rule.condition and not rule.hidden:
            detections.setdefault((rule.dedup_fields, rule.dedup_period, rule.threshold), []).append(rule)
        elif rule.correlation:
            correlations.setdefault((shape(rule.correlation), allowlist_sql(rule)), []).append(rule)
    for batch in detections.values():
        alerts += _detection_alerts(con, batch, by_name, _start_sql(batch, starts), touched)
    parts = [(batch, _start_sql(batch, starts, "m.")) for batch in correlations.values()]
    if together and parts:
        parts = _possible(con, parts, touched)
    for group in ([parts] if together and parts else [[part] for part in parts]):
        alerts += _correlation_alerts(con, group, by_name, touched)
    return sorted(alerts, key=lambda a: (a.first_seen, a.rule_id, a.id))


_CONTEXT = f"""any_value({ACTOR}) AS actor_value, sum(rows) AS rows_total,
    list(DISTINCT record_id) FILTER (WHERE record_id IS NOT NULL)[1:{RECORDS_LIMIT}] AS records,
    list(DISTINCT object) FILTER (WHERE object IS NOT NULL) AS objects,
    list(DISTINCT src_ip) FILTER (WHERE src_ip IS NOT NULL)[1:10] AS ips,
    list(DISTINCT app) FILTER (WHERE app IS NOT NULL)[1:10] AS apps,
    list(DISTINCT user_agent) FILTER (WHERE user_agent IS NOT NULL)[1:5] AS agents"""
"""What an alert says about its events (same columns for detections and correlations)."""

_SUMMARY = f"""min(time) AS first_seen, max(time) AS last_seen, count(DISTINCT event_id) AS n,
    list(DISTINCT event_id ORDER BY event_id)[1:{EVIDENCE_LIMIT}] AS ids, {_CONTEXT}"""


def _context(rows_total: object, objects: object, ips: object, apps: object, agents: object) -> dict[str, object]:
    return {"rows": rows_total, "objects": objects, "src_ips": ips, "apps": apps, "user_agents": agents}


def _fired_sql(threshold: int) -> str:
    """SQL aggregate over a detection group's matches: the time of its ``threshold``-th distinct
    event by (time, event id), the one that made it fire."""
    if threshold == 1:
        return "min(time)"
    return f"list_sort(list(DISTINCT {{'t': time, 'e': event_id}}))[{threshold}].t"


def _start_sql(batch: list[Rule], starts: dict[str, dt.datetime], prefix: str = "") -> str:
    """SQL ``AND time >= ...`` for the earliest of ``starts`` of the rules of ``batch`` (empty
    when one of them has none)."""
    if not batch or any(r.name not in starts for r in batch):
        return ""
    return f" AND {prefix}time >= TIMESTAMPTZ '{min(starts[r.name] for r in batch).isoformat()}'"


def _touched_sql(touched: dt.datetime | None, expr: str) -> str:
    """``expr >= touched`` (``expr`` starting with its connective), or nothing without ``touched``."""
    return f"{expr} >= TIMESTAMPTZ '{touched.isoformat()}'" if touched else ""


def _detection_alerts(con: duckdb.DuckDBPyConnection, batch: list[Rule], by_name: dict[str, Rule],
                      start: str = "", touched: dt.datetime | None = None) -> list[Alert]:
    """Alerts of detection rules sharing dedup fields, period and threshold, in one query
    (``start``: an ``AND`` filter on the matches' time; ``touched``: see :func:`run_rules`)."""
    first = batch[0]
    period = int(first.dedup_period.total_seconds())
    key = _dedup_key_sql(first)
    names = ", ".join(f"'{sql_str(r.name)}'" for r in batch)
    # Count first, then build the heavy evidence lists only for the (rule, key, period) groups that
    # reach the threshold: a threshold rule may match a third of all events and alert on few groups.
    # A plain count (an event matches a rule once) finds the candidates; the distinct count confirms.
    rows = con.execute(
        f"""WITH m AS (SELECT *, {key} AS dkey, floor(epoch(time) / {period}) AS bucket FROM mr WHERE rule IN ({names}){start}),
        hot AS (SELECT rule, dkey, bucket FROM m GROUP BY ALL
                HAVING count(*) >= {first.threshold}{_touched_sql(touched, " AND max(time)")})
        SELECT rule, dkey, bucket, {_SUMMARY}, {_fired_sql(first.threshold)} AS fired_at
        FROM m SEMI JOIN hot USING (rule, dkey, bucket)
        GROUP BY ALL HAVING count(DISTINCT event_id) >= {first.threshold} ORDER BY first_seen"""
    ).fetchall()
    out = []
    for name, dkey, bucket, first_seen, last, n, ids, actor, rows_total, records, objects, ips, apps, agents, fired in rows:
        rule = by_name[name]
        start = dt.datetime.fromtimestamp(bucket * period, dt.UTC)
        # When the group reached its threshold: the event (by time, then id) that made it fire.
        ctx = {**_context(rows_total, objects, ips, apps, agents), "fired_at": iso_z(fired)}
        out.append(Alert(_alert_id(rule.id, dkey, start), rule.id, rule.title, rule.severity, actor, first_seen, last,
                         n, dkey, tuple(ids), tuple(records or ()), explain(rule, actor, n, first_seen, last, ctx), ctx))
    return out


def _possible(con: duckdb.DuckDBPyConnection, parts: list[tuple[list[Rule], str]],
              touched: dt.datetime | None = None) -> list[tuple[list[Rule], str]]:
    """``parts`` (batches of correlations with their start filter) less the correlations no window
    can fire (:func:`~crmguard.engine.correlate.possible_sql`), told in one query. On the small
    match tables of incremental runs most correlations cannot fire, and each costs more to plan
    than its matches cost to count."""
    tests = [possible_sql({r.name: r.correlation for r in batch if r.correlation}, where=allowlist_sql(batch[0]) + start,
                          touched=touched) for batch, start in parts]
    asked = [f"({sql})" for sql in tests if sql is not None]
    fire = {name for (name,) in con.execute(" UNION ALL ".join(asked)).fetchall()} if asked else set()
    kept = []
    for (batch, start), sql in zip(parts, tests, strict=True):
        rules = batch if sql is None else [r for r in batch if r.name in fire]
        if rules:
            kept.append((rules, start))
    return kept


def _correlation_alerts(con: duckdb.DuckDBPyConnection, batches: list[tuple[list[Rule], str]],
                        by_name: dict[str, Rule], touched: dt.datetime | None = None) -> list[Alert]:
    """Alerts of correlation rules, in one query: a part per batch of rules of one shape and
    allow-list (with its ``start``, an ``AND`` filter on the matches' time). One query of many
    small parts costs less than a query each: DuckDB runs the parts side by side."""
    corrs = {r.name: r.correlation for batch, _start in batches for r in batch if r.correlation}
    parts = [
        f"""SELECT corr, grp, first_seen, last_seen, event_count, event_ids[1:{EVIDENCE_LIMIT}] AS event_ids,
        fired_at, fired_value, * EXCLUDE (corr, grp, first_seen, last_seen, event_count, event_ids, fired_at, fired_value)
        FROM ({batch_sql({r.name: r.correlation for r in batch if r.correlation},
                         where=allowlist_sql(batch[0]) + start, aggregates=_CONTEXT, touched=touched)})"""
        for batch, start in batches
    ]
    rows = con.execute(" UNION ALL ".join(f"({part})" for part in parts) + " ORDER BY first_seen").fetchall()
    out = []
    for name, grp, first, last, n, ids, fired, value, actor, rows_total, records, objects, ips, apps, agents in rows:
        rule = by_name[name]
        corr = corrs[name]
        dkey = " | ".join(grp)
        who = _identity_index(corr)
        if who is not None:
            actor = grp[who]
        ctx = {**_context(rows_total, objects, ips, apps, agents),
               "group_by": dict(zip(corr.group_by, grp, strict=True)), "rules": list(corr.rules),
               "fired_at": iso_z(fired), **({"fired_value": value} if value is not None else {})}
        out.append(Alert(_alert_id(rule.id, dkey, first), rule.id, rule.title, rule.severity, actor, first, last, n,
                         dkey, tuple(ids), tuple(records or ()), explain(rule, actor, n, first, last, ctx), ctx))
    return out


_IDENTITY_FIELDS = (ACTOR, "username", "target_user", "user_id")


def _identity_index(corr: Correlation) -> int | None:
    """Which group-by value names the identity a correlation alert is about (through aliases too)."""
    for wanted in _IDENTITY_FIELDS:
        for i, g in enumerate(corr.group_by):
            if wanted in (corr.alias(g) or {g: g}).values():
                return i
    return None


def _number(x: object) -> str:
    """A figure for an explanation: ``120,000``, ``2.5``, ``17.333``."""
    value = float(x)  # type: ignore[arg-type]
    return f"{int(value):,}" if value.is_integer() else f"{value:,.3f}".rstrip("0")


def explain(rule: Rule, actor: str | None, n: int, first: dt.datetime, last: dt.datetime, ctx: dict[str, object]) -> str:
    """Say in words why the alert fired (who, what, how much, from where, when)."""
    parts = [f"{rule.title}: {n:,} matching event{'s' if n != 1 else ''} by {actor or 'an unknown identity'}"]
    if ctx.get("rows"):
        parts.append(f"{int(ctx['rows']):,} rows read")  # type: ignore[call-overload]
    for label, key in (("objects", "objects"), ("from", "src_ips"), ("via", "apps"), ("agents", "user_agents")):
        if ctx.get(key):
            parts.append(f"{label} {', '.join(str(x) for x in ctx[key])}")  # type: ignore[attr-defined]
    if rule.correlation:
        reached = ctx.get("fired_value")
        parts.append(rule.correlation.describe() + (f": reached {_number(reached)}" if reached is not None else ""))
    parts.append(f"between {first:%Y-%m-%d %H:%M:%S} and {last:%Y-%m-%d %H:%M:%S} UTC")
    return "; ".join(parts)
