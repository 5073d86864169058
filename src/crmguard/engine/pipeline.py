"""The pySigma processing pipeline: Sigma field names and log sources -> crmguard's event schema.

Rules may use schema columns directly (``username``, ``rows``, ``src_ip`` ...) or the vendors'
own field names (``USER_NAME``, ``ROWS_PROCESSED``, ``SourceIp``, ``actor.alternateId`` ...),
which are mapped here. A log source narrows a rule to its logs: ``product: salesforce`` (optionally
``service: elf|rtem|audit``) or ``product: okta``.
"""

from __future__ import annotations

from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import AddConditionTransformation, FieldMappingTransformation

from crmguard.schema import COLUMN_NAMES

FIELD_ALIASES: dict[str, str] = {
    # Salesforce ELF
    "EVENT_TYPE": "event_type", "USER_NAME": "username", "USER_ID": "user_id", "USER_ID_DERIVED": "user_id",
    "CLIENT_IP": "src_ip", "SOURCE_IP": "src_ip", "ROWS_PROCESSED": "rows", "ROW_COUNT": "rows",
    "RESPONSE_SIZE": "bytes", "ENTITY_NAME": "object", "ENTITY_TYPE": "object", "METHOD_NAME": "operation",
    "OPERATION_TYPE": "operation", "CLIENT_NAME": "app", "CONNECTED_APP_ID": "app", "USER_AGENT": "user_agent",
    "BROWSER_TYPE": "user_agent", "URI": "uri", "LOGIN_STATUS": "outcome_reason", "SESSION_KEY": "session_id",
    "LOGIN_KEY": "login_key", "ORGANIZATION_ID": "org_id", "DELEGATED_USER_NAME": "username",
    # Salesforce RTEM
    "Username": "username", "UserId": "user_id", "SourceIp": "src_ip", "RowsProcessed": "rows",
    "QueriedEntities": "object", "Query": "query", "Operation": "operation", "UserAgent": "user_agent",
    "Application": "app", "ConnectedAppId": "app", "SessionKey": "session_id", "LoginKey": "login_key",
    "CountryIso": "src_country", "Status": "outcome_reason", "EventDate": "time",
    # Okta System Log
    "eventType": "event_type", "actor.alternateId": "username", "actor.id": "user_id",
    "client.ipAddress": "src_ip", "client.userAgent.rawUserAgent": "user_agent",
    "client.geographicalContext.country": "src_country", "securityContext.isProxy": "is_anonymizer",
    "securityContext.asNumber": "src_asn", "securityContext.isp": "src_isp", "outcome.result": "outcome_reason",
    "authenticationContext.externalSessionId": "session_id", "published": "time",
    # Generic Sigma / ECS-ish
    "src_ip_addr": "src_ip", "SourceIP": "src_ip", "source.ip": "src_ip", "user.name": "username",
    "user_agent.original": "user_agent", "event.action": "action", "event.outcome": "outcome",
}

SOURCES_BY_LOGSOURCE: dict[tuple[str, str | None], list[str]] = {
    ("salesforce", None): ["salesforce_elf", "salesforce_rtem", "salesforce_audit"],
    ("salesforce", "elf"): ["salesforce_elf"],
    ("salesforce", "rtem"): ["salesforce_rtem"],
    ("salesforce", "audit"): ["salesforce_audit"],
    ("okta", None): ["okta"],
}


def crmguard_pipeline() -> ProcessingPipeline:
    """Return the pipeline mapping vendor field names to schema columns and log sources to
    ``source`` conditions."""
    items = [
        ProcessingItem(
            identifier="crmguard_field_aliases",
            transformation=FieldMappingTransformation({k: v for k, v in FIELD_ALIASES.items() if k not in COLUMN_NAMES}),
        )
    ]
    for (product, service), sources in SOURCES_BY_LOGSOURCE.items():
        items.append(
            ProcessingItem(
                identifier=f"crmguard_logsource_{product}_{service or 'any'}",
                transformation=AddConditionTransformation({"source": sources}),
                rule_conditions=[LogsourceCondition(product=product, service=service)],
            )
        )
    return ProcessingPipeline(name="crmguard event schema", priority=20, items=items)
