"""Salesforce Real-Time Event Monitoring records as JSON: SOQL query results (``records``),
NDJSON object rows, or streaming envelopes (``data.payload``).

Covers LoginEvent, LogoutEvent, LoginAsEvent, ApiEvent, BulkApiResultEvent, ReportEvent,
ListViewEvent, UriEvent, LightningUriEvent, IdentityVerificationEvent and the threat events
(ApiAnomalyEvent, ReportAnomalyEvent, CredentialStuffingEvent, SessionHijackingEvent); any other
object still gets the generic mapping and keeps its fields in ``raw``.
"""

from __future__ import annotations

from crmguard.sources.mapping import Field, Shape, SourceMapping, first, shape_sql

SOURCE = "salesforce_rtem"

JSON_KEYS: Shape = ((("EventIdentifier",),), (("EventDate",),), (("data", "payload"),))
JSON_SHAPE = shape_sql(JSON_KEYS)
JSON_ROOT = "CASE WHEN json_exists(rec, '$.data.payload') THEN json_extract(rec, '$.data.payload') ELSE rec END"

THREAT_TYPES = ("ApiAnomalyEvent", "ReportAnomalyEvent", "CredentialStuffingEvent", "SessionHijackingEvent",
                "PermissionSetEvent")


def _event_type(f: Field) -> str:
    declared = first(f("attributes.type"), "regexp_extract(json_extract_string(rec, '$.channel'), '/event/(\\w+)$', 1)")
    # Object rows exported without ``attributes`` are recognised by their telltale fields.
    inferred = f"""CASE WHEN {f('LoginType')} IS NOT NULL OR {f('LoginGeoId')} IS NOT NULL THEN 'LoginEvent'
        WHEN {f('DelegatedUsername')} IS NOT NULL THEN 'LoginAsEvent'
        WHEN {f('ReportId')} IS NOT NULL THEN 'ReportEvent'
        WHEN {f('ListViewId')} IS NOT NULL THEN 'ListViewEvent'
        WHEN {f('Query')} IS NOT NULL THEN 'ApiEvent'
        WHEN {f('SessionKey')} IS NOT NULL AND {f('Status')} IS NULL THEN 'LogoutEvent'
        END"""
    name = first(f"nullif({declared}, '')", inferred)
    return f"regexp_replace(regexp_replace({name}, 'Stream$', ''), 'Store$', '')"


def _outcome(f: Field, et: str) -> str:
    status = f("Status")
    op_status = f("OperationStatus")
    # LoginEvent / LoginAsEvent Status is 'Success' or the reason the login failed ('Failed:
    # Missing Consumer Key Parameter', 'Password Lockout', 'Invalid Password' ...).
    # IdentityVerificationEvent Status: Succeeded / AutomatedSuccess, Failed..., Denied,
    # ReportedDenied, RateLimited; Initiated and InProgress are no outcome yet. A LogoutEvent is
    # published when a session ended: nothing can fail.
    return f"""CASE
        WHEN {f('PolicyOutcome')} IN ('Block', 'Error') THEN 'failure'
        WHEN {et} IN ('LoginEvent', 'LoginAsEvent') AND {status} IS NOT NULL
          THEN CASE WHEN {status} = 'Success' THEN 'success' ELSE 'failure' END
        WHEN {status} IN ('Success', 'Succeeded', 'AutomatedSuccess') OR {op_status} = 'Success' THEN 'success'
        WHEN {status} LIKE 'Fail%' OR {status} IN ('Denied', 'ReportedDenied', 'RateLimited')
          OR {op_status} LIKE 'Fail%' THEN 'failure'
        WHEN {et} = 'LogoutEvent' THEN 'success'
        ELSE 'unknown' END"""


def _single_record_id(f: Field) -> str:
    """Id of the one record in ``Records`` (the JSON list of records an ApiEvent, ListViewEvent or
    ReportEvent returned), when it holds exactly one; NULL otherwise."""
    records = f("Records")
    return (
        f"CASE WHEN json_valid({records}) AND json_array_length({records}, '$.records') = 1 "
        f"THEN blank_null(json_extract_string({records}, '$.records[0].Id')) END"
    )


def build(f: Field) -> dict[str, str]:
    """Map RTEM object fields (accessor ``f`` over the payload) to event-schema SQL expressions."""
    et = "__et"
    op = f("Operation")
    app = first(f("ConnectedAppId"), f("Client"), f("Application"))
    api = f("ApiType")
    # LoginAsEvent: DelegatedUsername is the admin logging in as another user (the actor);
    # Username / UserId is the user being impersonated. Same split as the ELF LoginAs type.
    login_as = f"({et} = 'LoginAsEvent' AND {f('DelegatedUsername')} IS NOT NULL)"
    user_id = f"sf_id18({f('UserId')})"
    return {
        "__et": _event_type(f),
        "time": first(f"parse_ts({f('EventDate')})", f"parse_ts({f('CreatedDate')})"),
        "_time_raw": first(f("EventDate"), f("CreatedDate")),
        "_time_field": f"CASE WHEN {f('EventDate')} IS NOT NULL THEN 'EventDate' ELSE 'CreatedDate' END",
        "source": f"'{SOURCE}'",
        "event_type": et,
        "category": f"""CASE
            WHEN {et} IN ('LoginEvent', 'LogoutEvent', 'LoginAsEvent', 'IdentityVerificationEvent') THEN 'authentication'
            WHEN {et} IN ('ApiEvent', 'ListViewEvent') THEN 'api_activity'
            WHEN {et} = 'BulkApiResultEvent' THEN 'data_export'
            WHEN {et} = 'ReportEvent' THEN CASE WHEN {op} = 'ReportExported' THEN 'data_export' ELSE 'api_activity' END
            WHEN {et} IN ('UriEvent', 'LightningUriEvent') THEN 'web_resource'
            WHEN {et} LIKE '%Anomaly%' OR {et} IN ('CredentialStuffingEvent', 'SessionHijackingEvent') THEN 'security_finding'
            ELSE 'other' END""",
        "action": f"""CASE
            WHEN {et} = 'LoginEvent' THEN 'login'
            WHEN {et} = 'LogoutEvent' THEN 'logout'
            WHEN {et} = 'LoginAsEvent' THEN 'login_as'
            WHEN {et} = 'IdentityVerificationEvent' THEN 'mfa_verify'
            WHEN {et} = 'BulkApiResultEvent' THEN 'export'
            WHEN {et} = 'ListViewEvent' THEN 'list_view'
            WHEN {et} = 'ReportEvent' THEN CASE WHEN {op} = 'ReportExported' THEN 'export' ELSE 'report_run' END
            WHEN {et} IN ('UriEvent', 'LightningUriEvent') THEN coalesce(lower({op}), 'view')
            WHEN {et} = 'ApiEvent' THEN CASE lower({op})
                WHEN 'query' THEN 'query' WHEN 'queryall' THEN 'query' WHEN 'querymore' THEN 'query_more'
                WHEN 'insert' THEN 'create' WHEN 'create' THEN 'create' WHEN 'update' THEN 'update'
                WHEN 'upsert' THEN 'update' WHEN 'delete' THEN 'delete' WHEN 'retrieve' THEN 'read'
                ELSE coalesce(lower({op}), 'call') END
            WHEN {et} LIKE '%Anomaly%' OR {et} IN ('CredentialStuffingEvent', 'SessionHijackingEvent') THEN 'anomaly'
            ELSE lower({et}) END""",
        "outcome": _outcome(f, et),
        "outcome_reason": first(f("Status"), f("OperationStatus"), f("PolicyOutcome")),
        "org_id": f"sf_id18({f('OrganizationId')})",
        "user_id": f"CASE WHEN NOT {login_as} THEN {user_id} END",
        "username": f"CASE WHEN {login_as} THEN {f('DelegatedUsername')} ELSE {f('Username')} END",
        "target_user": f"CASE WHEN {login_as} THEN {first(f('Username'), user_id)} END",
        "session_id": f("SessionKey"),
        "login_key": f("LoginKey"),
        "src_ip": f"ip_or_null({f('SourceIp')})",
        "src_country": f("CountryIso"),
        "src_city": f("City"),
        "user_agent": first(f("UserAgent"), f"CASE WHEN {f('Browser')} <> 'Unknown' THEN {f('Browser')} END"),
        "app": f"CASE WHEN {app} NOT IN ('N/A', 'Browser') THEN {app} END",
        # ApiType names the protocol variant ('SOAP Partner', 'SOAP Enterprise'); the schema holds
        # the family, as the ELF mapping does.
        "api_type": f"""CASE WHEN {api} = 'N/A' THEN NULL
            WHEN {api} LIKE 'SOAP Tooling%' THEN 'Tooling' WHEN {api} LIKE 'SOAP Metadata%' THEN 'Metadata'
            WHEN {api} LIKE 'SOAP %' THEN 'SOAP' ELSE {api} END""",
        "operation": op,
        "object": first(f("QueriedEntities"), f("EntityName"), f("PageEntityType")),
        "record_id": first(f("RecordId"), f("ReportId"), f("ListViewId"), f("JobId"), _single_record_id(f)),
        "query": f("Query"),
        "rows": f"to_int({f('RowsProcessed')})",
        "uri": first(f("PageUrl"), f("Uri"), f("LoginUrl")),
        "auth_method": first(f("LoginSubType"), f("LoginType"), f("VerificationMethod")),
        "risk": first(f("Score"), f("Summary")),
    }


MAPPING = SourceMapping(SOURCE, build)
