"""Okta System Log events (``/api/v1/logs`` JSON array, or NDJSON), every eventType.

Also reads the Panther-normalised variant whose top-level keys are lower case
(``eventtype``, ``debugcontext`` ...), since exports of that shape circulate too.

``src_country`` is the ISO 3166-1 alpha-2 code of Okta's country name (``country_iso``, see
:mod:`crmguard.sources.countries`); a name that is no known country is kept as Okta wrote it.
"""

from __future__ import annotations

from crmguard.sources.mapping import Field, Shape, SourceMapping, first, shape_sql

SOURCE = "okta"

JSON_KEYS: Shape = ((("eventType",),), (("eventtype",),))
JSON_SHAPE = shape_sql(JSON_KEYS)
JSON_ROOT = "rec"

_TOP = ("displayMessage", "eventType", "legacyEventType", "authenticationContext", "securityContext", "debugContext")


def _targets(targets: str, kind: str, attr: str) -> str:
    """First target of Okta type ``kind`` (User, AppInstance ...), its ``attr``; ``targets`` is the
    record's ``target`` array as JSON text (extracted with the other fields: the whole record is
    parsed once)."""
    return (
        f"list_extract(list_filter(from_json(coalesce({targets}, '[]'), "
        "'[{\"type\":\"VARCHAR\",\"alternateId\":\"VARCHAR\",\"displayName\":\"VARCHAR\",\"id\":\"VARCHAR\"}]'), "
        f"lambda t: t.type = '{kind}'), 1).{attr}"
    )


def _target_name(targets: str, kind: str) -> str:
    return first(f"blank_null({_targets(targets, kind, 'displayName')})",
                 f"blank_null({_targets(targets, kind, 'alternateId')})")


def build(raw_f: Field) -> dict[str, str]:
    """Map Okta System Log fields (accessor ``raw_f``) to event-schema SQL expressions."""

    def f(path: str) -> str:
        head, _, rest = path.partition(".")
        if head in _TOP:
            lower = head.lower() + ("." + rest if rest else "")
            return first(raw_f(path), raw_f(lower))
        return raw_f(path)

    et = f("eventType")
    result = f"upper({f('outcome.result')})"
    ip = first(f"ip_or_null({f('client.ipAddress')})", f"ip_or_null(json_extract_string({f('request.ipChain')}, '$[0].ip'))")
    targets = f("target")
    session = f("authenticationContext.externalSessionId")
    # Okta writes 'unknown' for an actor it could not resolve (a login attempt for a username that
    # does not exist) and makes the IP the actor of some threat events: neither is a user.
    # The username tried is kept even then (a look-alike username is evidence).
    ip_actor = f"coalesce({f('actor.type')} = 'IP address', false)"
    # The app: the AppInstance signed into or acted on; for OAuth events the client, which is the
    # actor (PublicClientApp) or named by client.id ("the OAuth client making the request").
    app = first(
        _target_name(targets, "AppInstance"),
        _target_name(targets, "PublicClientApp"),
        f"CASE WHEN {f('actor.type')} = 'PublicClientApp' THEN {first(f('actor.displayName'), f('actor.alternateId'))} END",
        f"CASE WHEN {et} LIKE 'app.oauth2.%' THEN {f('client.id')} END",
    )
    return {
        "time": f"parse_ts({first(f('published'), f('p_event_time'))})",
        "_time_raw": first(f("published"), f("p_event_time")),
        "_time_field": "'published'",
        "source": f"'{SOURCE}'",
        "event_type": et,
        "category": f"""CASE
            WHEN {et} LIKE 'user.session.%' OR {et} LIKE 'user.authentication.%' THEN 'authentication'
            WHEN {et} LIKE 'user.mfa.%' OR {et} LIKE 'user.account.%' OR {et} LIKE 'user.lifecycle.%'
              OR {et} LIKE 'user.credential.%' OR {et} LIKE 'user.factor.%' THEN 'account_change'
            WHEN {et} LIKE 'app.oauth2.%' THEN 'authentication'
            WHEN {et} LIKE 'analytics.reports.export.%' THEN 'data_export'
            WHEN {et} LIKE 'security.%' OR {et} LIKE 'user.risk.%' THEN 'security_finding'
            WHEN {et} LIKE 'system.%' OR {et} LIKE 'policy.lifecycle.%' OR {et} LIKE 'policy.rule.%'
              OR {et} LIKE 'application.%' OR {et} LIKE 'group.%' OR {et} LIKE 'zone.%'
              OR {et} LIKE 'iam.%' THEN 'admin_change'
            ELSE 'other' END""",
        "action": f"""CASE
            WHEN {et} = 'user.session.start' THEN 'login'
            WHEN {et} = 'user.session.end' THEN 'logout'
            WHEN {et} = 'user.authentication.sso' THEN 'sso'
            WHEN {et} IN ('user.authentication.auth_via_mfa', 'user.authentication.verify') THEN 'mfa_verify'
            WHEN {et} IN ('user.mfa.factor.reset_all', 'user.mfa.factor.deactivate', 'user.mfa.factor.suspend',
                          'system.mfa.factor.deactivate') THEN 'mfa_reset'
            WHEN {et} IN ('user.mfa.factor.activate', 'user.mfa.factor.update', 'system.mfa.factor.activate') THEN 'factor_enroll'
            WHEN {et} IN ('user.account.reset_password', 'user.account.update_password') THEN 'password_reset'
            WHEN {et} LIKE 'user.session.impersonation.%' THEN 'impersonation'
            WHEN {et} LIKE 'app.oauth2.%token.grant%' THEN 'token_grant'
            WHEN {et} LIKE 'app.oauth2.%authorize%' OR {et} LIKE 'app.oauth2.%consent.grant%' THEN 'app_authorize'
            WHEN {et} LIKE 'analytics.reports.export.%' THEN 'export'
            WHEN {et} = 'policy.evaluate_sign_on' THEN 'policy_evaluation'
            ELSE replace({et}, '.', '_') END""",
        "outcome": f"""CASE WHEN {result} IN ('SUCCESS', 'ALLOW') THEN 'success'
            WHEN {result} IN ('FAILURE', 'DENY', 'REJECTED') THEN 'failure' ELSE 'unknown' END""",
        "outcome_reason": first(f("outcome.reason"), f("outcome.result")),
        "user_id": f"CASE WHEN NOT {ip_actor} AND {f('actor.id')} <> 'unknown' THEN {f('actor.id')} END",
        "username": f"CASE WHEN NOT {ip_actor} AND {f('actor.alternateId')} <> 'unknown' THEN {f('actor.alternateId')} END",
        "target_user": _targets(targets, "User", "alternateId"),
        "session_id": f"CASE WHEN {session} <> 'unknown' THEN {session} END",
        "src_ip": ip,
        # Okta names the country ("United States"); Salesforce and the rules use ISO alpha-2 codes.
        "src_country": f"country_iso({f('client.geographicalContext.country')})",
        "src_city": f("client.geographicalContext.city"),
        "src_asn": f"to_int({f('securityContext.asNumber')})",
        "src_isp": first(f("securityContext.isp"), f("securityContext.asOrg")),
        "is_anonymizer": f"to_bool({f('securityContext.isProxy')})",
        "user_agent": f("client.userAgent.rawUserAgent"),
        "app": app,
        "api_type": "'SSO'",
        "operation": f("legacyEventType"),
        "record_id": f("uuid"),
        "uri": f("debugContext.debugData.requestUri"),
        "auth_method": first(f("authenticationContext.credentialType"), f("debugContext.debugData.factor")),
        "risk": f"nullif(concat_ws('; ', {f('debugContext.debugData.risk')}, {f('debugContext.debugData.behaviors')}), '')",
    }


MAPPING = SourceMapping(SOURCE, build)
