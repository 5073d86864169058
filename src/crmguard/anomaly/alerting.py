"""Turn scored identity-hours into alerts with a plain explanation, stored like rule alerts.

One alert per identity and UTC day in which the identity's score reached the threshold; its id is a
hash of the identity and the day, so re-scoring the same day updates the alert (same dedup as rule
alerts) and the alert flows through the same store, outbox and sinks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from typing import Any

import duckdb

from crmguard.anomaly.features import BULK_JOB, EXPORT, FAILED_LOGIN, PII_OBJECTS, READS, identity_sql, sql_in
from crmguard.anomaly.score import INFRASTRUCTURE, Settings, score_days
from crmguard.engine.run import EVIDENCE_LIMIT, Alert
from crmguard.sources.sql import sql_str
from crmguard.utc import iso_z

RULE_ID = "crmguard-baseline-behaviour"
"""The ``rule_id`` of baseline alerts (route or filter them like a rule)."""

_FACT_NAMES = {"ip": "IP address", "asn": "ASN", "country": "country", "app": "connected app", "user_agent": "user agent",
               "channel": "channel", "hour": "hour of day (UTC)"}


@dataclass(frozen=True)
class Component:
    """One reason an identity-day scored: a feature deviation or a first-seen fact."""

    hour: dt.datetime
    kind: str
    feature: str
    value: str
    own_ref: float | None
    peer_ref: float | None
    bits: float

    def text(self, peer_group: str) -> str:
        """The component as a sentence, e.g. ``read 48,000 Contact rows in 1 h; own p99 is 600; ...``."""
        if self.kind == "fact":
            return f"new {_FACT_NAMES.get(self.feature, self.feature)} {self.value!r} (never used by this identity in the history)"
        span = "1 h" if self.kind == "hour" else "the day so far"
        value = int(self.value)
        if self.feature.startswith("rows:"):
            obj = self.feature.removeprefix("rows:")
            what = f"read {value:,} {'other-object' if obj == 'other' else obj} rows in {span}"
        else:
            what = {"failed_logins": f"{value:,} failed sign-ins in {span}", "exports": f"{value:,} exports in {span}",
                    "export_rows": f"exported {value:,} rows in {span}", "bulk_jobs": f"{value:,} bulk jobs in {span}",
                    "objects": f"read {value:,} distinct objects in {span}"}.get(self.feature, f"{self.feature} = {value:,}")
        own = ("no own history (cold start)" if self.own_ref is None
               else "never in own history" if not self.own_ref else f"own p99 is {self.own_ref:,.0f}")
        return f"{what}; {own}; peer p99 ({peer_group}) is {self.peer_ref or 0:,.0f}"


def find_anomalies(con: duckdb.DuckDBPyConnection, days: list[dt.date], settings: Settings | None = None) -> list[Alert]:
    """Score ``days`` (views ``hourly``, ``facts``, ``peers`` and ``events`` of ``con``) and return one
    alert per identity-day in which an hour alerted (see :class:`Settings`), sorted by first_seen."""
    settings = settings or Settings()
    score_days(con, days, settings)
    rows = con.execute(
        """SELECT identity, CAST(hour AS DATE) AS day, min(hour) FILTER (WHERE alerting) AS first_hour,
            max(hour) FILTER (WHERE alerting) AS last_hour, max(score) AS score
        FROM hour_scores GROUP BY ALL HAVING bool_or(alerting) ORDER BY first_hour, identity"""
    ).fetchall()
    alerts = []
    for identity, day, first_hour, last_hour, score in rows:
        alerts.append(_alert(con, identity, day, first_hour, last_hour, float(score), settings))
    return sorted(alerts, key=lambda a: (a.first_seen, a.id))


def _components(con: duckdb.DuckDBPyConnection, identity: str, day: dt.date, until: dt.datetime) -> list[Component]:
    """The components of ``identity`` on ``day`` up to hour ``until``: the strongest deviation per
    feature and each kind of first-seen fact once, strongest first."""
    rows = con.execute(
        """SELECT hour, kind, feature, value, own_ref, peer_ref, bits FROM components
        WHERE identity = ? AND CAST(hour AS DATE) = ? AND hour <= ?
        QUALIFY row_number() OVER (PARTITION BY CASE WHEN kind = 'fact' THEN 'fact' ELSE 'volume' END, feature
                                   ORDER BY bits DESC, hour) = 1
        ORDER BY bits DESC, feature""", [identity, day, until]).fetchall()
    return [Component(*r) for r in rows]


def _alert(con: duckdb.DuckDBPyConnection, identity: str, day: dt.date, first_hour: dt.datetime,
           last_hour: dt.datetime, score: float, settings: Settings) -> Alert:
    [(group,)] = con.execute(
        "SELECT coalesce(any_value(peer_group), 'no directory group') FROM peers WHERE identity = ?", [identity]
    ).fetchall()
    comps = _components(con, identity, day, last_hour)
    volume = [c for c in comps if c.kind != "fact"]
    facts = [c for c in comps if c.kind == "fact"]
    fired = _fired_at(con, identity, first_hour, settings, _components(con, identity, day, first_hour))
    end = last_hour + dt.timedelta(hours=1)
    start = min([first_hour, *(c.hour for c in facts)])
    [(n, ids, first_seen, last_seen, ips, apps)] = con.execute(
        f"""SELECT count(*), list(event_id ORDER BY coalesce(rows, 0) DESC, time)[1:{EVIDENCE_LIMIT}], min(time), max(time),
            list(DISTINCT src_ip) FILTER (WHERE src_ip IS NOT NULL)[1:10],
            list(DISTINCT app) FILTER (WHERE app IS NOT NULL)[1:10]
        FROM ({_identity_events_sql(identity, start, end)})""").fetchall()
    reasons = [c.text(group) for c in volume[:3]] + [c.text(group) for c in facts]
    explanation = (f"{identity} scored {score:.1f} (alerts at {settings.alert_score:g} with "
                   f"{settings.min_fact_bits:g} from new infrastructure, or {settings.volume_alone_bits:g} from volume alone): " + "; ".join(reasons[:1]) +
                   ("" if len(reasons) < 2 else ". Also: " + " | ".join(reasons[1:])))
    key = f"{identity}|{day.isoformat()}"
    context: dict[str, Any] = {
        "score": round(score, 2), "peer_group": group, "fired_at": iso_z(fired or first_hour),
        "components": [
            {"hour": iso_z(c.hour), "kind": c.kind, "feature": c.feature, "value": c.value, "own_p99": c.own_ref,
             "peer_p99": c.peer_ref, "bits": round(c.bits, 2)} for c in comps],
        "src_ips": ips, "apps": apps,
    }
    title = "Unusual behaviour: " + (reasons[0].split(";")[0] if reasons else "score above threshold")
    return Alert(
        id=hashlib.sha256(f"{RULE_ID}\x1f{key}".encode()).hexdigest()[:20], rule_id=RULE_ID, title=title,
        severity="high" if score >= 2 * settings.alert_score else "medium", actor=identity,
        first_seen=first_seen or first_hour, last_seen=last_seen or end, event_count=int(n), dedup_key=key,
        event_ids=tuple(ids or ()), explanation=explanation, context=context,
    )


def _identity_events_sql(identity: str, start: dt.datetime, end: dt.datetime) -> str:
    return f"""SELECT e.* FROM events e LEFT JOIN idmap USING (user_id)
        WHERE e.time >= TIMESTAMPTZ '{start.isoformat()}' AND e.time < TIMESTAMPTZ '{end.isoformat()}'
          AND {identity_sql()} = '{sql_str(identity)}'"""


def _measure_sql(feature: str) -> str | None:
    """What one event adds to ``feature`` (the same predicates as the hourly features; None for
    features that are not sums)."""
    if feature.startswith("rows:"):
        obj = feature.removeprefix("rows:")
        where = (f"object NOT IN {sql_in(PII_OBJECTS)}" if obj == "other"
                 else f"object = '{sql_str(obj)}'")
        return f"CASE WHEN {READS} AND {where} THEN coalesce(rows, 0) ELSE 0 END"
    return {"failed_logins": f"CASE WHEN {FAILED_LOGIN} THEN 1 ELSE 0 END",
            "exports": f"CASE WHEN {EXPORT} THEN 1 ELSE 0 END",
            "export_rows": f"CASE WHEN {EXPORT} THEN coalesce(rows, 0) ELSE 0 END",
            "bulk_jobs": f"CASE WHEN {BULK_JOB} THEN 1 ELSE 0 END",
            }.get(feature)


def _fired_at(con: duckdb.DuckDBPyConnection, identity: str, hour: dt.datetime, settings: Settings,
              comps: list[Component]) -> dt.datetime | None:
    """When ``identity`` first alerted in ``hour``: the moment the facts it needed had been seen and
    its strongest feature's running total reached the value that, with those facts, alerts (an upper
    bound when several features rose together)."""
    facts = sorted((c for c in comps if c.kind == "fact"), key=lambda c: c.hour)
    fact_times = _fact_times(con, identity, hour, facts)
    fact_bits = sum(c.bits for c in facts)
    infra_bits = sum(c.bits for c in facts if c.feature in INFRASTRUCTURE)
    volume = [c for c in comps if c.kind != "fact" and c.hour == hour]
    if infra_bits >= settings.min_fact_bits:
        needed_facts_at = max(fact_times) if fact_times else None
        if fact_bits >= settings.alert_score or not volume:
            return needed_facts_at
        need = settings.alert_score - fact_bits
    else:
        needed_facts_at = None
        if not volume:
            return hour
        need = settings.volume_alone_bits
    best = volume[0]
    measure = _measure_sql(best.feature)
    if measure is None:
        return max(filter(None, [needed_facts_at, hour]))
    reference = float(best.value) / 2 ** best.bits
    target = reference * 2 ** need
    start = hour if best.kind == "hour" else hour.replace(hour=0)
    [(at,)] = con.execute(
        f"""SELECT min(time) FROM (
            SELECT time, sum({measure}) OVER (PARTITION BY source ORDER BY time, event_id) AS running
            FROM ({_identity_events_sql(identity, start, hour + dt.timedelta(hours=1))})
        ) WHERE running >= {target if math.isfinite(target) else 0}""").fetchall()
    times = [t for t in (at, needed_facts_at) if t is not None]
    return max(times) if times else None


def _fact_times(con: duckdb.DuckDBPyConnection, identity: str, hour: dt.datetime, facts: list[Component]) -> list[dt.datetime]:
    if not facts:
        return []
    rows = con.execute(
        "SELECT min(first_time) FROM facts WHERE identity = ? AND date = ? AND first_time < ? AND (kind, value) IN "
        f"({', '.join('(?, ?)' for _ in facts)}) GROUP BY kind",
        [identity, hour.date(), hour + dt.timedelta(hours=1), *(x for c in facts for x in (c.feature, c.value))],
    ).fetchall()
    return [r[0] for r in rows]

