"""The one event schema every source is normalised into.

Rules, baselines and response code only ever see these columns; the quirks of each log format
stay inside :mod:`crmguard.sources`. Names follow OCSF where it has a counterpart (given in
``OCSF`` below) so that exporting to a SIEM is a rename, not a re-interpretation.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIME_TYPE = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    """One documented column of the event schema."""

    name: str
    type: pa.DataType
    meaning: str
    ocsf: str


COLUMNS: tuple[Column, ...] = (
    Column("time", TIME_TYPE, "When the event happened, UTC, microsecond precision.", "time"),
    Column(
        "event_id",
        pa.string(),
        "Stable id: md5 (hex) of the source and the raw record; re-ingesting the same record "
        "gives the same id, so it is stored once.",
        "metadata.uid",
    ),
    Column(
        "source",
        pa.string(),
        "Log family: salesforce_elf, salesforce_rtem, salesforce_audit or okta.",
        "metadata.log_name",
    ),
    Column(
        "event_type",
        pa.string(),
        "The vendor's own event type: ELF EVENT_TYPE (Login, API, RestApi ...), RTEM object "
        "(LoginEvent, ApiEvent ...), SetupAuditTrail Action, Okta eventType.",
        "metadata.event_code",
    ),
    Column(
        "category",
        pa.string(),
        "Coarse class: authentication, api_activity, data_export, web_resource, "
        "account_change, admin_change, security_finding or other.",
        "class_name",
    ),
    Column(
        "action",
        pa.string(),
        "Normalised verb, lower case: login, logout, login_as, query, query_more, read, "
        "create, update, delete, export, report_run, mfa_reset, factor_enroll, app_authorize ...",
        "activity_name",
    ),
    Column("outcome", pa.string(), "success, failure or unknown.", "status"),
    Column("outcome_reason", pa.string(), "Vendor status or failure reason text.", "status_detail"),
    Column("org_id", pa.string(), "Salesforce organisation id (18 chars) or Okta org.", "metadata.tenant_uid"),
    Column(
        "user_id",
        pa.string(),
        "Actor's id: Salesforce user id always as 18 chars (15-char ids are converted), Okta 00u...",
        "actor.user.uid",
    ),
    Column("username", pa.string(), "Actor's login name (usually an e-mail address).", "actor.user.name"),
    Column(
        "target_user",
        pa.string(),
        "The user acted upon: Login-As target, Okta target user, audit-trail subject.",
        "user.name",
    ),
    Column("session_id", pa.string(), "Session key (Salesforce SESSION_KEY, Okta externalSessionId).", "actor.session.uid"),
    Column("login_key", pa.string(), "Salesforce LOGIN_KEY tying a session's events to its login.", "actor.session.credential_uid"),
    Column(
        "src_ip",
        pa.string(),
        "Client IP address, only when the log holds a real IPv4/IPv6 address (never the literal "
        "'Salesforce.com IP' or a placeholder).",
        "src_endpoint.ip",
    ),
    Column("src_country", pa.string(), "Country of the client, ISO 3166-1 alpha-2 (Okta's country names converted; a name no table knows is kept as written).", "src_endpoint.location.country"),
    Column("src_city", pa.string(), "City of the client as the log states it.", "src_endpoint.location.city"),
    Column("src_asn", pa.int64(), "Autonomous system number of the client IP, when the log gives it.", "src_endpoint.autonomous_system.number"),
    Column("src_isp", pa.string(), "ISP / AS organisation of the client IP.", "src_endpoint.autonomous_system.name"),
    Column(
        "is_anonymizer",
        pa.bool_(),
        "True when the log flags the client as a proxy/VPN/TOR (Okta securityContext.isProxy); "
        "null when unknown. Enrichment may fill it later.",
        "src_endpoint.proxy_endpoint",
    ),
    Column("user_agent", pa.string(), "Client user agent or client/browser string.", "http_request.user_agent"),
    Column(
        "app",
        pa.string(),
        "Connected app / OAuth client / API client name, or the Okta app signed into.",
        "app_name",
    ),
    Column("api_type", pa.string(), "API family: SOAP, REST, Bulk, Bulk2, UI, Report ...", "api.service.name"),
    Column("operation", pa.string(), "The vendor's operation verb (METHOD_NAME, Operation, HTTP method).", "api.operation"),
    Column("object", pa.string(), "Object / entity touched: Contact, Account, Lead, Case, Report ...", "resources.type"),
    Column("record_id", pa.string(), "The single record id touched, when the log names one.", "resources.uid"),
    Column("query", pa.string(), "SOQL / search text as logged.", "query_info.query_string"),
    Column("rows", pa.int64(), "Rows processed or returned.", "query_info.row_count"),
    Column("bytes", pa.int64(), "Response size in bytes.", "traffic.bytes_out"),
    Column("uri", pa.string(), "Request URI or page URL.", "http_request.url.path"),
    Column(
        "auth_method",
        pa.string(),
        "How the actor authenticated: login type, OAuth flow, Okta credential type or factor.",
        "auth_protocol",
    ),
    Column("risk", pa.string(), "Vendor risk or threat signal (Okta debugContext risk/behaviors, RTEM score).", "risk_level"),
    Column(
        "raw",
        pa.string(),
        "The original record as minified JSON (a CSV row as an object keyed by its header), for evidence.",
        "raw_data",
    ),
    Column("log_file", pa.string(), "Path of the file the record was ingested from.", "metadata.log_provider"),
)

EVENT_SCHEMA: pa.Schema = pa.schema([pa.field(c.name, c.type) for c in COLUMNS])
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)

QUARANTINE_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("quarantine_id", pa.string()),
        pa.field("ingested_at", TIME_TYPE),
        pa.field("file", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("record", pa.int64()),
        pa.field("source", pa.string()),
        pa.field("field", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("content", pa.string()),
    ]
)
"""A rejected record: where it was (file, physical line or record number), the field at fault,
why, and its text as read (so nothing is lost). ``quarantine_id`` makes re-quarantining the same
record a no-op."""

SOURCES: tuple[str, ...] = ("salesforce_elf", "salesforce_rtem", "salesforce_audit", "okta")

_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
    TIME_TYPE: "TIMESTAMPTZ",
}


def duckdb_type(column: Column) -> str:
    """Return the DuckDB type name matching ``column``'s Arrow type."""
    return _DUCKDB_TYPES[column.type]


def markdown_table() -> str:
    """Render the schema as a Markdown table (name, type, meaning, OCSF) for the docs."""
    lines = ["| column | type | meaning | OCSF |", "| --- | --- | --- | --- |"]
    lines += [f"| `{c.name}` | {c.type} | {c.meaning} | `{c.ocsf}` |" for c in COLUMNS]
    return "\n".join(lines)
