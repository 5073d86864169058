"""Behavioural features of each identity, per hour, computed in DuckDB over the lake's events.

Two long tables come out of one day's events (both keyed by ``identity``, the lower-cased username,
or the user id where no event names the user):

- **hourly** ``(identity, hour, feature, value)``: only non-zero values are kept. Features:

  ``rows:<Object>``   rows read of a customer-data object (Contact, Account, Lead, Case and the
                      configured custom PII objects); ``rows:other`` for every other object
  ``objects``         distinct objects read
  ``events``          events of any kind
  ``api`` / ``ui`` / ``report``   data-access events by channel (API calls; UI pages and list
                      views; report runs and exports)
  ``bulk_jobs``       bulk API jobs created or queried
  ``exports``         report / file exports; ``export_rows`` the rows they held
  ``failed_logins``   failed authentications

  Salesforce writes one action to several logs (an API call is an ELF ``RestApi`` row and an RTEM
  ``ApiEvent``), so each figure is computed per source and the largest source's figure is kept:
  one call never counts twice.
- **facts** ``(identity, date, kind, value, first_time, last_time, n)``: every IP, ASN, country,
  connected app, user agent, channel (API, bulk API, UI, reports) and UTC hour of day an identity
  used successfully that day, for first-seen tests (an hour never used is the identity's off-hours).
"""

from __future__ import annotations

import datetime as dt

from crmguard.sources.sql import sql_str

PII_OBJECTS: tuple[str, ...] = ("Contact", "Account", "Lead", "Case")
"""Objects whose rows are customer data, each with its own ``rows:<Object>`` feature."""

READ_ACTIONS: tuple[str, ...] = ("read", "query", "query_more", "list_view", "report_run", "export", "search")
"""Actions that return records to the actor."""

FACT_KINDS: tuple[str, ...] = ("ip", "asn", "country", "app", "user_agent", "channel", "hour")


def sql_in(items: tuple[str, ...]) -> str:
    """SQL list of string literals: ``('a', 'b')``."""
    return "(" + ", ".join(f"'{sql_str(i)}'" for i in items) + ")"


READS = f"action IN {sql_in(READ_ACTIONS)}"
"""SQL: the event returned records to the actor."""
FAILED_LOGIN = "(category = 'authentication' AND outcome = 'failure')"
BULK_JOB = "(api_type ILIKE 'bulk%' AND action IN ('query', 'create', 'read'))"
EXPORT = "action = 'export'"
API_READ = f"({READS} AND api_type IS NOT NULL AND api_type NOT IN ('UI', 'Report'))"
UI_VIEW = "(action IN ('view', 'list_view') OR api_type = 'UI')"
REPORT = "action IN ('report_run', 'export')"
"""Event predicates shared by the hourly features and by ``fired_at`` (what one event adds)."""

HOURLY_COLUMNS = "identity VARCHAR, hour TIMESTAMPTZ, feature VARCHAR, value BIGINT"
FACT_COLUMNS = ("identity VARCHAR, date DATE, kind VARCHAR, value VARCHAR, first_time TIMESTAMPTZ, last_time TIMESTAMPTZ, "
                "n BIGINT")

COUNT_FEATURES: tuple[str, ...] = ("objects", "events", "api", "ui", "report", "bulk_jobs", "exports", "export_rows",
                                   "failed_logins")


def identity_sql(alias: str = "e", idmap: str = "idmap") -> str:
    """SQL expression of the identity of an event row ``alias`` joined to ``idmap`` (user_id → name)."""
    return f"lower(coalesce({alias}.username, {idmap}.name, {alias}.user_id))"


def idmap_sql(relation: str) -> str:
    """SELECT of ``(user_id, name, seen)``: the latest username each user id was seen with in
    ``relation``, and when."""
    return (f"SELECT user_id, arg_max(username, time) AS name, max(time) AS seen FROM {relation} "
            "WHERE user_id IS NOT NULL AND username IS NOT NULL GROUP BY user_id")


def projection_sql(relation: str, start: dt.datetime, end: dt.datetime) -> str:
    """SELECT of the columns the features need, with ``identity`` and ``hour``, from the events of
    ``relation`` (event schema) joined to table ``idmap``, for events in [start, end)."""
    return f"""SELECT e.time, date_trunc('hour', e.time) AS hour, e.source, e.category, e.action, e.outcome,
        e.api_type, e.object, e.rows, e.src_ip, e.src_asn, e.src_country, e.app, e.user_agent,
        {identity_sql()} AS identity
    FROM {relation} e LEFT JOIN idmap USING (user_id)
    WHERE e.time >= TIMESTAMPTZ '{start.isoformat()}' AND e.time < TIMESTAMPTZ '{end.isoformat()}'
      AND coalesce(e.username, e.user_id) IS NOT NULL"""


def hourly_sql(relation: str, pii_objects: tuple[str, ...] = PII_OBJECTS) -> str:
    """SELECT of the hourly features ``(identity, hour, feature, value)`` of the rows of ``relation``
    (shaped by :func:`projection_sql`)."""
    return f"""
    WITH ev AS (SELECT * FROM {relation}),
    per_source AS (
        SELECT identity, hour, source,
            count(DISTINCT object) FILTER ({READS} AND object IS NOT NULL) AS objects,
            count(*) AS events,
            count(*) FILTER ({API_READ}) AS api,
            count(*) FILTER ({UI_VIEW}) AS ui,
            count(*) FILTER ({REPORT}) AS report,
            count(*) FILTER ({BULK_JOB}) AS bulk_jobs,
            count(*) FILTER ({EXPORT}) AS exports,
            coalesce(sum(rows) FILTER ({EXPORT}), 0) AS export_rows,
            count(*) FILTER ({FAILED_LOGIN}) AS failed_logins
        FROM ev GROUP BY ALL
    ),
    counts AS (
        UNPIVOT (SELECT identity, hour, {", ".join(f"max({c}) AS {c}" for c in COUNT_FEATURES)}
                 FROM per_source GROUP BY ALL)
        ON {", ".join(COUNT_FEATURES)} INTO NAME feature VALUE value
    ),
    object_rows AS (
        SELECT identity, hour, 'rows:' || obj AS feature, max(n) AS value FROM (
            SELECT identity, hour, source,
                CASE WHEN object IN {sql_in(pii_objects)} THEN object ELSE 'other' END AS obj, sum(rows) AS n
            FROM ev WHERE {READS} AND rows > 0 GROUP BY ALL
        ) GROUP BY ALL
    )
    SELECT identity, hour, feature, CAST(value AS BIGINT) AS value FROM counts WHERE value > 0
    UNION ALL SELECT identity, hour, feature, CAST(value AS BIGINT) FROM object_rows WHERE value > 0"""


def facts_sql(relation: str) -> str:
    """SELECT of the daily facts ``(identity, date, kind, value, first_time, last_time, n)`` of the
    successful events of ``relation`` (shaped by :func:`projection_sql`). Kinds: ``ip``, ``asn``,
    ``country``, ``app``, ``user_agent``, ``channel`` (``api``, ``bulk``, ``ui`` or ``report``: how the
    identity reached the data) and ``hour`` (the UTC hour of day it was active)."""
    return f"""
    WITH pre AS (
        SELECT identity, CAST(time AS DATE) AS date, src_ip AS ip, CAST(src_asn AS VARCHAR) AS asn,
            src_country AS country, app, user_agent,
            CASE WHEN api_type ILIKE 'bulk%' THEN 'bulk' WHEN {REPORT} THEN 'report' WHEN {API_READ} THEN 'api'
                 WHEN {UI_VIEW} THEN 'ui' END AS channel,
            strftime(time, '%H') AS hour,
            min(time) AS first_time, max(time) AS last_time, count(*) AS n
        FROM {relation} WHERE outcome IS DISTINCT FROM 'failure'
        GROUP BY ALL
    )
    SELECT identity, date, kind, value, min(first_time) AS first_time, max(last_time) AS last_time, sum(n) AS n
    FROM (UNPIVOT pre ON {", ".join(FACT_KINDS)} INTO NAME kind VALUE value)
    GROUP BY ALL"""
