"""Score each identity-hour against the identity's own history and its peer group's, in DuckDB.

For one scored day ``D`` the references come from the 30 days before it (the baseline as it stood
at midnight, so a day's attack never raises its own bar):

- **own**: the p99 of each feature over the identity's active hours (hours with any event; hours
  without the feature count as zero), and over its active days for the day-to-date total. Only
  identities with at least :data:`MIN_HISTORY_DAYS` active days have an own reference; the others
  (cold start) are judged against their peers alone.
- **peer**: the same quantile over every active hour (day) of the identity's peer group (profile or
  role from the directory; without one, ``interactive`` or ``api-only`` from the identity's own use).

A feature's deviation, in bits, is ``log2(value / reference)`` where the reference is the largest of
the own p99, the peer p99 and the feature's floor (so an identity must exceed its own normal *and*
its peers' before it counts); the hourly value and the day-to-date total are both tested. First-seen
facts — an IP, ASN, country, connected app or user agent the identity has not used in the 30 days —
add fixed weights (more when no identity in the org used it). The identity-hour's score is its
largest deviation plus the facts of the day so far; it is an anomaly at :data:`ALERT_SCORE` or above
with at least :data:`MIN_FACT_BITS` of them from new infrastructure (:data:`INFRASTRUCTURE`), or with a
deviation of :data:`VOLUME_ALONE_BITS` alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from crmguard.sources.sql import sql_str

HISTORY_DAYS = 30
MIN_HISTORY_DAYS = 3
QUANTILE = 0.99
INFRASTRUCTURE: tuple[str, ...] = ("ip", "asn", "country", "app", "user_agent")
"""Fact kinds that say where from and with what the identity worked; only they open the alert gate
(a first API use or a first early-morning hour adds to the score but is no one's new infrastructure)."""
ALERT_SCORE = 4.0
MIN_FACT_BITS = 1.5
VOLUME_ALONE_BITS = 6.5

FLOORS: dict[str, float] = {
    "rows:*": 500.0,
    "objects": 3.0,
    "bulk_jobs": 2.0,
    "exports": 2.0,
    "export_rows": 500.0,
    "failed_logins": 4.0,
}
"""Scored features and the smallest reference each is judged against (a reference of a few rows
would turn ordinary work into large deviations)."""

FACT_WEIGHTS: dict[str, float] = {"asn": 0.5, "country": 0.75, "app": 0.5, "user_agent": 0.25, "ip": 0.1,
                                  "channel": 0.5, "hour": 0.5}
"""Bits of a value new to the identity but used by someone else in the org in the history (a colleague's
tool, the office network of another site): weak evidence."""
ORG_NEW_WEIGHTS: dict[str, float] = {"asn": 1.5, "country": 1.5, "app": 2.0, "user_agent": 1.25, "ip": 0.5,
                                     "channel": 1.0, "hour": 0.5}
"""Bits of a value nobody in the org used in the history: attackers bring their own infrastructure
(hosting ASNs, foreign exits, scripts, look-alike apps)."""


@dataclass(frozen=True)
class Settings:
    """Scoring knobs: history length, minimum own history, quantile, and when a score alerts: at
    ``alert_score`` or more with at least ``min_fact_bits`` of first-seen infrastructure, or on a volume
    deviation of ``volume_alone_bits`` by itself (rare work in bulk — a yearly export, a migration —
    is normal somewhere in every org; bulk work from never-seen infrastructure is not)."""

    history_days: int = HISTORY_DAYS
    min_history_days: int = MIN_HISTORY_DAYS
    quantile: float = QUANTILE
    alert_score: float = ALERT_SCORE
    min_fact_bits: float = MIN_FACT_BITS
    volume_alone_bits: float = VOLUME_ALONE_BITS


def _floor_sql(feature: str = "feature") -> str:
    cases = " ".join(
        f"WHEN {feature} LIKE 'rows:%' THEN {v}" if k == "rows:*" else f"WHEN {feature} = '{k}' THEN {v}"
        for k, v in FLOORS.items()
    )
    return f"CASE {cases} END"


def scored_features_sql(feature: str = "feature") -> str:
    """SQL predicate: ``feature`` is one of the scored features (rows per object and :data:`FLOORS`)."""
    names = ", ".join(f"'{k}'" for k in FLOORS if k != "rows:*")
    return f"({feature} LIKE 'rows:%' OR {feature} IN ({names}))"


def quantile_sql(values: str, nonzero: str, active: str, q: float) -> str:
    """The ``q`` quantile (discrete) of ``active`` observations of which ``nonzero`` are the sorted
    list ``values`` and the rest are zero."""
    rank = f"CAST(ceil({q} * {active}) - ({active} - {nonzero}) AS BIGINT)"
    return f"CASE WHEN {rank} >= 1 THEN {values}[{rank}] ELSE 0 END"


def score_day_sql(day: dt.date, s: Settings) -> str:
    """SELECT of every scored component ``(identity, hour, kind, feature, value, own_ref, peer_ref,
    bits)`` for ``day``: one row per deviating feature and scale (kind ``hour`` or ``day``) and one
    per first-seen fact (kind ``fact``, ``feature`` = fact kind, ``value`` its text). Needs views
    ``hourly``, ``facts`` and ``peers`` (identity, peer_group)."""
    d0 = f"TIMESTAMPTZ '{day.isoformat()} 00:00:00+00'"
    h0 = f"({d0} - INTERVAL {s.history_days} DAY)"
    d1 = f"({d0} + INTERVAL 1 DAY)"
    scored = scored_features_sql()
    q = s.quantile
    return f"""
    WITH hist AS MATERIALIZED (SELECT * FROM hourly WHERE hour >= {h0} AND hour < {d0}),
    cur AS MATERIALIZED (SELECT * FROM hourly WHERE hour >= {d0} AND hour < {d1}),
    active AS MATERIALIZED (
        SELECT identity, count(*) AS hours, count(DISTINCT CAST(hour AS DATE)) AS days
        FROM hist WHERE feature = 'events' GROUP BY identity
    ),
    groups AS MATERIALIZED (
        SELECT i.identity, coalesce(p.peer_group, CASE WHEN u.ui THEN 'interactive' ELSE 'api-only' END) AS grp
        FROM (SELECT DISTINCT identity FROM hist UNION SELECT DISTINCT identity FROM cur) i
        LEFT JOIN peers p USING (identity)
        LEFT JOIN (SELECT identity, true AS ui FROM hourly WHERE feature = 'ui' AND hour < {d1} GROUP BY identity) u
            USING (identity)
    ),
    hist_day AS (
        SELECT identity, CAST(hour AS DATE) AS date, feature,
            CASE WHEN feature = 'objects' THEN max(value) ELSE sum(value) END AS value
        FROM hist WHERE {scored} GROUP BY identity, CAST(hour AS DATE), feature
    ),
    own AS (
        SELECT h.identity, h.feature, {quantile_sql("list_sort(list(h.value))", "count(*)", "any_value(a.hours)", q)} AS q_hour
        FROM hist h JOIN active a USING (identity) WHERE {scored} AND a.days >= {s.min_history_days}
        GROUP BY h.identity, h.feature
    ),
    own_day AS (
        SELECT h.identity, h.feature, {quantile_sql("list_sort(list(h.value))", "count(*)", "any_value(a.days)", q)} AS q_day
        FROM hist_day h JOIN active a USING (identity) WHERE a.days >= {s.min_history_days}
        GROUP BY h.identity, h.feature
    ),
    group_active AS (
        SELECT g.grp, sum(a.hours) AS hours, sum(a.days) AS days FROM active a JOIN groups g USING (identity) GROUP BY ALL
    ),
    peer AS (
        SELECT g.grp, h.feature, {quantile_sql("list_sort(list(h.value))", "count(*)", "any_value(ga.hours)", q)} AS q_hour
        FROM hist h JOIN groups g USING (identity) JOIN group_active ga USING (grp) WHERE {scored}
        GROUP BY g.grp, h.feature
    ),
    peer_day AS (
        SELECT g.grp, h.feature, {quantile_sql("list_sort(list(h.value))", "count(*)", "any_value(ga.days)", q)} AS q_day
        FROM hist_day h JOIN groups g USING (identity) JOIN group_active ga USING (grp) GROUP BY g.grp, h.feature
    ),
    cur_scored AS (
        SELECT identity, hour, feature, value,
            CASE WHEN feature = 'objects' THEN max(value) OVER w ELSE sum(value) OVER w END AS day_value
        FROM cur WHERE {scored}
        WINDOW w AS (PARTITION BY identity, feature ORDER BY hour ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ),
    volume AS (
        SELECT c.identity, c.hour, c.feature, c.value, c.day_value,
            CASE WHEN a.days >= {s.min_history_days} THEN coalesce(o.q_hour, 0) END AS own_hour,
            CASE WHEN a.days >= {s.min_history_days} THEN coalesce(od.q_day, 0) END AS own_day,
            coalesce(p.q_hour, 0) AS peer_hour, coalesce(pd.q_day, 0) AS peer_day,
            {_floor_sql("c.feature")} AS floor
        FROM cur_scored c JOIN groups g USING (identity) LEFT JOIN active a USING (identity)
        LEFT JOIN own o USING (identity, feature) LEFT JOIN own_day od USING (identity, feature)
        LEFT JOIN peer p ON p.grp = g.grp AND p.feature = c.feature
        LEFT JOIN peer_day pd ON pd.grp = g.grp AND pd.feature = c.feature
    ),
    components AS (
        SELECT identity, hour, 'hour' AS kind, feature, CAST(value AS VARCHAR) AS value, own_hour AS own_ref,
            peer_hour AS peer_ref, log2(value / greatest(coalesce(own_hour, 0), peer_hour, floor)) AS bits
        FROM volume
        UNION ALL
        SELECT identity, hour, 'day', feature, CAST(day_value AS VARCHAR), own_day, peer_day,
            log2(day_value / greatest(coalesce(own_day, 0), peer_day, floor))
        FROM volume
    ),
    known AS (
        SELECT DISTINCT identity, kind, value FROM facts
        WHERE date >= CAST({h0} AS DATE) AND date < CAST({d0} AS DATE)
    ),
    org_known AS (SELECT DISTINCT kind, value FROM known),
    new_facts AS (
        SELECT f.identity, date_trunc('hour', f.first_time) AS hour, 'fact' AS kind, f.kind AS feature,
            f.value, NULL::DOUBLE AS own_ref, NULL::DOUBLE AS peer_ref,
            CASE WHEN ok.value IS NULL THEN {_weights_sql("f.kind", ORG_NEW_WEIGHTS)} ELSE {_weights_sql("f.kind")} END
                AS bits
        FROM facts f JOIN active a USING (identity)
        LEFT JOIN known k ON k.identity = f.identity AND k.kind = f.kind AND k.value = f.value
        LEFT JOIN org_known ok ON ok.kind = f.kind AND ok.value = f.value
        WHERE f.date = DATE '{day.isoformat()}' AND k.value IS NULL AND a.days >= {s.min_history_days}
    )
    SELECT * FROM components WHERE bits > 0
    UNION ALL SELECT * FROM new_facts"""


def _weights_sql(kind: str, weights: dict[str, float] = FACT_WEIGHTS) -> str:
    return "CASE " + " ".join(f"WHEN {kind} = '{sql_str(k)}' THEN {v}" for k, v in weights.items()) + " ELSE 0 END"


def hour_scores_sql(components: str, s: Settings) -> str:
    """SELECT of ``(identity, hour, volume_bits, fact_bits, infra_bits, score, alerting)`` from a components
    table: the largest volume deviation of the hour plus the first-seen facts of the day up to the
    hour, each fact kind counted once a day (a new app shows up as its name, id and client string:
    one fact), and whether that alerts under ``s``."""
    return f"""
    WITH vol AS (SELECT identity, hour, max(bits) AS volume_bits FROM {components} WHERE kind <> 'fact' GROUP BY ALL),
    fact_kind AS (
        SELECT identity, min(hour) AS hour, max(bits) AS bits,
            feature IN ({", ".join(f"'{k}'" for k in INFRASTRUCTURE)}) AS infra
        FROM {components} WHERE kind = 'fact'
        GROUP BY identity, CAST(hour AS DATE), feature
    ),
    fact AS (SELECT identity, hour, sum(bits) AS bits, sum(bits) FILTER (WHERE infra) AS infra_bits
             FROM fact_kind GROUP BY ALL),
    hours AS (SELECT identity, hour FROM vol UNION SELECT identity, hour FROM fact),
    joined AS (
        SELECT h.identity, h.hour, coalesce(v.volume_bits, 0) AS volume_bits,
            sum(coalesce(f.bits, 0)) OVER day_so_far AS fact_bits,
            sum(coalesce(f.infra_bits, 0)) OVER day_so_far AS infra_bits
        FROM hours h LEFT JOIN vol v USING (identity, hour) LEFT JOIN fact f USING (identity, hour)
        WINDOW day_so_far AS (PARTITION BY h.identity, CAST(h.hour AS DATE) ORDER BY h.hour)
    )
    SELECT *, volume_bits + fact_bits AS score,
        (volume_bits + fact_bits >= {s.alert_score} AND infra_bits >= {s.min_fact_bits})
            OR volume_bits >= {s.volume_alone_bits} AS alerting
    FROM joined"""


def score_days(con: duckdb.DuckDBPyConnection, days: list[dt.date], settings: Settings | None = None) -> None:
    """Fill temp tables ``components`` and ``hour_scores`` (see :func:`score_day_sql` and
    :func:`hour_scores_sql`) for ``days``, from views ``hourly``, ``facts`` and ``peers`` of ``con``."""
    settings = settings or Settings()
    con.execute("CREATE OR REPLACE TEMP TABLE components (identity VARCHAR, hour TIMESTAMPTZ, kind VARCHAR, "
                "feature VARCHAR, value VARCHAR, own_ref DOUBLE, peer_ref DOUBLE, bits DOUBLE)")
    for day in days:
        con.execute(f"INSERT INTO components {score_day_sql(day, settings)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE hour_scores AS {hour_scores_sql('components', settings)}")
