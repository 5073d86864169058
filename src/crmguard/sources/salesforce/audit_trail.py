"""Salesforce SetupAuditTrail records (SOQL JSON, NDJSON or CSV export): admin changes such as
connected-app installs, permission-set and profile changes, login IP range edits.

Reads the raw SOQL shape (``Action``, ``Section``, ``CreatedDate``, ``CreatedBy.Username``) and
the snake_case shape some collectors emit (``action``, ``section``, ``sfdc_created_date``).
"""

from __future__ import annotations

from crmguard.sources.mapping import Field, SourceMapping, first

SOURCE = "salesforce_audit"

JSON_SHAPE = (
    "((json_exists(rec, '$.Action') AND json_exists(rec, '$.Section')) "
    "OR (json_exists(rec, '$.action') AND json_exists(rec, '$.section')))"
)
JSON_ROOT = "rec"
CSV_COLUMNS = ("Action", "Section")
"""A CSV whose header has these columns (any case) is a SetupAuditTrail export."""


def build(f: Field) -> dict[str, str]:
    """Map SetupAuditTrail fields (accessor ``f``) to event-schema SQL expressions."""
    action = first(f("Action"), f("action"), f("ACTION"))
    created = first(f("CreatedDate"), f("sfdc_created_date"), f("CREATED_DATE"))
    return {
        "time": f"parse_ts({created})",
        "_time_raw": created,
        "_time_field": "'CreatedDate'",
        "source": f"'{SOURCE}'",
        "event_type": action,
        "category": "'admin_change'",
        "action": f"""CASE
            WHEN lower({action}) LIKE '%connectedapp%' OR lower({action}) LIKE '%connectedapplication%'
              OR lower({action}) LIKE '%oauth%' THEN 'app_change'
            WHEN lower({action}) LIKE 'permset%' OR lower({action}) LIKE 'profile%'
              OR lower({action}) LIKE '%permission%' THEN 'permission_change'
            WHEN lower({action}) LIKE '%ip%range%' OR lower({action}) LIKE '%loginip%' THEN 'network_change'
            WHEN lower({action}) LIKE '%password%' THEN 'password_policy_change'
            ELSE 'admin_change' END""",
        "outcome": "'success'",
        "outcome_reason": first(f("Display"), f("display"), f("DISPLAY")),
        "user_id": f"sf_id18({first(f('CreatedById'), f('sfdc_created_by_id'), f('CREATED_BY_ID'))})",
        "username": first(f("CreatedBy.Username"), f("sfdc_created_by_username"), f("CREATED_BY_USERNAME")),
        "target_user": first(f("DelegateUser"), f("delegate_user"), f("DELEGATE_USER")),
        "object": first(f("Section"), f("section"), f("SECTION")),
        "record_id": first(f("Id"), f("record_id"), f("ID")),
        "app": f"CASE WHEN lower({action}) LIKE '%connectedapp%' THEN regexp_extract({first(f('Display'), f('display'))}, '[\"“]([^\"”]+)[\"”]', 1) END",
    }


MAPPING = SourceMapping(SOURCE, build)
