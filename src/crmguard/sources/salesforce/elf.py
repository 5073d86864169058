"""Salesforce Event Log Files (ELF): the CSV that ``EventLogFile.LogFile`` serves.

Columns are read by header name, never by position, because every release adds some. The event
type comes from each row's ``EVENT_TYPE``; types without a specific mapping below still get the
generic one (time, user, IP, URI, ...) and keep every column in ``raw``. The same mapping reads ELF
rows rendered as JSON objects (as other collectors store them).
"""

from __future__ import annotations

from crmguard.sources.mapping import Field, Shape, SourceMapping, first, shape_sql

SOURCE = "salesforce_elf"

AUTH_TYPES = ("Login", "Logout", "LoginAs")
API_TYPES = ("API", "RestApi", "BulkApi", "BulkApi2", "ApiTotalUsage")
EXPORT_TYPES = ("ReportExport", "ContentTransfer")
WEB_TYPES = ("URI", "LightningUri", "AuraRequest", "VisualforceRequest")


# Documented code -> label tables (EventLogFile Login event type / LoginHistory). The labels are
# the values RTEM LoginEvent carries in LoginType / LoginSubType, so one rule matches both sources.
LOGIN_TYPES = {
    "7": "AppExchange", "A": "Application", "s": "Certificate-based login",
    "k": "Chatter Communities External User", "n": "Chatter Communities External User Third Party SSO",
    "x": "Cross Tenant Login", "r": "Employee Login to Community", "z": "Lightning Login",
    "l": "Networks Portal API Only", "6": "Remote Access Client", "i": "Remote Access 2.0",
    "I": "Other Apex API", "R": "Partner Product", "w": "Passwordless Login", "3": "Customer Service Portal",
    "q": "Partner Portal Third-Party SSO", "9": "Partner Portal", "5": "SAML Idp Initiated SSO",
    "m": "SAML Chatter Communities External User SSO", "b": "SAML Customer Service Portal SSO",
    "c": "SAML Partner Portal SSO", "h": "SAML Site SSO", "8": "SAML Sfdc Initiated SSO", "E": "SelfService",
    "j": "Third Party SSO",
}
LOGIN_SUB_TYPES = {
    "uiup": "UI Username-Password", "oauthpassword": "OAuth Username-Password", "oauthtoken": "OAuth User-Agent",
    "oauthhybridtoken": "OAuth User-Agent for Hybrid Apps", "oauthtokenidtoken": "OAuth User-Agent with ID Token",
    "oauthclientcredential": "OAuth Client Credential", "oauthcode": "OAuth Web Server",
    "oauthhybridauthcode": "OAuth Web Server for Hybrid Apps",
    # Not in the published list, but real files carry it (refresh-token logins of connected apps).
    "oauthrefreshtoken": "OAuth Refresh Token",
}
API_TYPES_FAMILY = {
    "E": "SOAP", "P": "SOAP", "O": "SOAP", "I": "SOAP", "S": "SOAP", "p": "SOAP", "T": "Tooling",
    "M": "Metadata", "X": "XmlRPC", "D": "Apex", "f": "Feed", "l": "LiveAgent", "R": "REST",
}
"""ELF API_TYPE code -> API family (E SOAP Enterprise, P SOAP Partner, O Old SOAP, I SOAP Cross
Instance, S SOAP Apex, p SOAP ClientSync, T SOAP Tooling, M SOAP Metadata, X XmlRPC, D Apex Class,
f Feed, l Live Agent)."""


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _label(expr: str, labels: dict[str, str]) -> str:
    """SQL mapping a documented code to its label; unknown values pass through unchanged."""
    whens = " ".join(f"WHEN '{code}' THEN '{label}'" for code, label in labels.items())
    return f"CASE {expr} {whens} ELSE {expr} END"


def _action(f: Field, et: str) -> str:
    method = f"lower({first(f('METHOD_NAME'), f('OPERATION_TYPE'), f('METHOD'), f('HTTP_METHOD'))})"
    return f"""CASE
      WHEN {et} = 'Login' THEN 'login'
      WHEN {et} = 'Logout' THEN 'logout'
      WHEN {et} = 'LoginAs' THEN 'login_as'
      WHEN {et} = 'Report' THEN 'report_run'
      WHEN {et} = 'ReportExport' THEN 'export'
      WHEN {et} = 'ContentTransfer' THEN coalesce(lower({f('TRANSACTION_TYPE')}), 'download')
      WHEN {et} IN {_in(WEB_TYPES)} THEN 'view'
      WHEN {et} IN {_in(API_TYPES)} THEN CASE
        WHEN {method} IN ('query', 'queryall', 'query_all') THEN 'query'
        WHEN {method} IN ('querymore', 'query_more') THEN 'query_more'
        WHEN {method} IN ('retrieve', 'get', 'describesobject', 'search') THEN 'read'
        WHEN {method} IN ('insert', 'create', 'post') THEN 'create'
        WHEN {method} IN ('update', 'upsert', 'patch', 'put') THEN 'update'
        WHEN {method} IN ('delete', 'harddelete', 'undelete') THEN 'delete'
        WHEN {method} IS NOT NULL THEN {method}
        WHEN lower({f('URI')}) LIKE '%/query%' THEN 'query'
        ELSE 'call' END
      ELSE lower({et}) END"""


def _outcome(f: Field, et: str) -> str:
    status = f"upper({f('REQUEST_STATUS')})"
    code = f"to_int({f('STATUS_CODE')})"
    # REQUEST_STATUS: S success, R redirect (a handled 3xx), F failure, A authorization error,
    # N not found, U undefined. An API row always has EXCEPTION_MESSAGE, set when the call threw:
    # blank means it completed. A Logout row is written when a session ended: nothing can fail.
    return f"""CASE
      WHEN {et} IN ('Login', 'LoginAs') AND {f('LOGIN_STATUS')} IS NOT NULL
        THEN CASE WHEN {f('LOGIN_STATUS')} = 'LOGIN_NO_ERROR' THEN 'success' ELSE 'failure' END
      WHEN {status} IN ('S', 'SUCCESS', 'R') THEN 'success'
      WHEN {status} IN ('F', 'FAILURE', 'A', 'N') THEN 'failure'
      WHEN {status} = 'U' THEN 'unknown'
      WHEN {code} BETWEEN 200 AND 399 THEN 'success'
      WHEN {code} >= 400 THEN 'failure'
      WHEN {f('SUCCESS')} = '1' THEN 'success'
      WHEN {f('SUCCESS')} = '0' THEN 'failure'
      WHEN {f('EXCEPTION_MESSAGE')} IS NOT NULL THEN 'failure'
      WHEN to_int({f('NUMBER_FAILURES')}) > 0 THEN 'failure'
      WHEN {et} IN ('API', 'Logout') THEN 'success'
      ELSE 'unknown' END"""


def _api_type(f: Field, et: str) -> str:
    api = f("API_TYPE")
    return f"""CASE
      WHEN {et} = 'RestApi' THEN 'REST'
      WHEN {et} = 'BulkApi' THEN 'Bulk'
      WHEN {et} = 'BulkApi2' THEN 'Bulk2'
      WHEN {et} = 'ApiTotalUsage' THEN {f('API_FAMILY')}
      WHEN {et} IN ('Report', 'ReportExport') THEN 'Report'
      WHEN {et} IN {_in(WEB_TYPES)} THEN 'UI'
      WHEN {api} IS NOT NULL THEN {_label(api, API_TYPES_FAMILY)}
      WHEN {et} = 'API' THEN 'SOAP'
      END"""


def build(f: Field) -> dict[str, str]:
    """Map ELF fields (accessor ``f``) to event-schema SQL expressions."""
    et = f("EVENT_TYPE")
    # Each event type has one of these ids.
    record_id = "sf_id_or_null(" + first(
        f("URI_ID_DERIVED"), f("REPORT_ID_DERIVED"), f("REPORT_ID"), f("PAGE_ENTITY_ID"), f("DOCUMENT_ID"),
        f("JOB_ID"),
    ) + ")"
    # LoginAs: the DELEGATED_USER_* fields are the admin doing the impersonation (the actor) and
    # USER_ID the user being impersonated (Salesforce's Login As event type reference).
    login_as = (
        f"({et} = 'LoginAs' AND coalesce({f('DELEGATED_USER_ID_DERIVED')}, {f('DELEGATED_USER_ID')}, "
        f"{f('DELEGATED_USER_NAME')}) IS NOT NULL)"
    )
    user_id = first(f("USER_ID_DERIVED"), f("USER_ID"))
    lightning_object = f"nullif(regexp_extract({f('URI')}, '^/lightning/[ro]/([A-Za-z0-9_]+)/', 1), '')"
    return {
        "time": first("parse_ts(" + f("TIMESTAMP_DERIVED") + ")", "parse_ts(" + f("TIMESTAMP") + ")"),
        "_time_raw": first(f("TIMESTAMP_DERIVED"), f("TIMESTAMP")),
        "_time_field": f"CASE WHEN {f('TIMESTAMP_DERIVED')} IS NOT NULL THEN 'TIMESTAMP_DERIVED' ELSE 'TIMESTAMP' END",
        "source": f"'{SOURCE}'",
        "event_type": et,
        "category": f"""CASE WHEN {et} IN {_in(AUTH_TYPES)} THEN 'authentication'
            WHEN {et} IN {_in(API_TYPES)} THEN 'api_activity'
            WHEN {et} = 'Report' THEN 'api_activity'
            WHEN {et} IN {_in(EXPORT_TYPES)} THEN 'data_export'
            WHEN {et} IN {_in(WEB_TYPES)} THEN 'web_resource'
            ELSE 'other' END""",
        "action": _action(f, et),
        "outcome": _outcome(f, et),
        "outcome_reason": first(f("LOGIN_STATUS"), f("EXCEPTION_MESSAGE"), f("MESSAGE"), f("STATUS_CODE"), f("REQUEST_STATUS")),
        "org_id": f"sf_id18({f('ORGANIZATION_ID')})",
        # sf_id18 repeats its argument ~20 times: keep what it is given small.
        "user_id": f"""CASE WHEN {login_as}
            THEN sf_id18({first(f('DELEGATED_USER_ID_DERIVED'), f('DELEGATED_USER_ID'))}) ELSE sf_id18({user_id}) END""",
        "username": f"CASE WHEN {login_as} THEN {f('DELEGATED_USER_NAME')} ELSE {f('USER_NAME')} END",
        "target_user": f"CASE WHEN {login_as} THEN {first(f('USER_NAME'), f'sf_id18({user_id})')} END",
        "session_id": f("SESSION_KEY"),
        "login_key": f("LOGIN_KEY"),
        "src_ip": first(f"ip_or_null({f('SOURCE_IP')})", f"ip_or_null({f('CLIENT_IP')})"),
        "src_country": f("COUNTRY_CODE"),
        "user_agent": first(f("USER_AGENT"), f("BROWSER_TYPE"), f("CLIENT_INFO")),
        "app": first(f("CLIENT_NAME"), f("CONNECTED_APP_ID"), f("APP_NAME"), f("CLIENT_ID")),
        "api_type": _api_type(f, et),
        "operation": first(f("METHOD_NAME"), f("OPERATION_TYPE"), f("METHOD"), f("HTTP_METHOD"), f("TRANSACTION_TYPE")),
        "object": first(
            f("ENTITY_NAME"), f("ENTITY_TYPE"), f("PAGE_ENTITY_TYPE"),
            f"CASE WHEN {et} IN ('Report', 'ReportExport') THEN 'Report' END",
            f"CASE WHEN {et} IN {_in(WEB_TYPES)} THEN {lightning_object} END",
        ),
        "record_id": record_id,
        "query": first(f("QUERY"), f("SEARCH_QUERY"), f("QUERY_IDENTIFIER")),
        "rows": first(f"to_int({f('ROWS_PROCESSED')})", f"to_int({f('ROW_COUNT')})", f"to_int({f('NUM_RESULTS')})"),
        "bytes": first(f"to_int({f('RESPONSE_SIZE')})", f"to_int({f('SIZE_BYTES')})"),
        # An ApexCallout's URI is a constant (CALLOUT-LOG); the endpoint called is in URL.
        "uri": first(f"CASE WHEN {et} = 'ApexCallout' THEN {f('URL')} END", f("URI"), f("PAGE_URL"), f("REFERRER_URI")),
        "auth_method": first(
            _label(f("LOGIN_SUB_TYPE"), LOGIN_SUB_TYPES), f("AUTHENTICATION_METHOD_REFERENCE"),
            _label(f("LOGIN_TYPE"), LOGIN_TYPES),
        ),
    }


MAPPING = SourceMapping(SOURCE, build)

JSON_KEYS: Shape = ((("EVENT_TYPE",),),)
JSON_SHAPE = shape_sql(JSON_KEYS)
"""An ELF row rendered as a JSON object (keys are the CSV header names)."""
JSON_ROOT = "rec"
