"""Salesforce SetupAuditTrail records (SOQL JSON, NDJSON or CSV export): admin changes such as
connected-app installs, permission-set and profile changes, login IP range edits.

Reads the raw SOQL shape (``Action``, ``Section``, ``CreatedDate``, ``CreatedBy.Username``) and
the snake_case shape some collectors emit (``action``, ``section``, ``sfdc_created_date``).
"""

from __future__ import annotations

from crmguard.sources.mapping import Field, Shape, SourceMapping, first, shape_sql

SOURCE = "salesforce_audit"

JSON_KEYS: Shape = ((("Action",), ("Section",)), (("action",), ("section",)))
JSON_SHAPE = shape_sql(JSON_KEYS)
JSON_ROOT = "rec"
CSV_COLUMNS = ("Action", "Section")
"""A CSV whose header has these columns (any case) is a SetupAuditTrail export."""


def build(f: Field) -> dict[str, str]:
    """Map SetupAuditTrail fields (accessor ``f``) to event-schema SQL expressions."""
    action = first(f("Action"), f("action"), f("ACTION"))
    act = f"lower({action})"
    created = first(f("CreatedDate"), f("sfdc_created_date"), f("CREATED_DATE"))
    display = first(f("Display"), f("display"), f("DISPLAY"))
    created_by_id = first(f("CreatedById"), f("sfdc_created_by_id"), f("CREATED_BY_ID"))
    created_by = first(f("CreatedBy.Username"), f("sfdc_created_by_username"), f("CREATED_BY_USERNAME"))
    # DelegateUser is "the Login-As user who executed the action": an admin logged in as someone
    # else, who is then the real actor, while CreatedBy is the account that was impersonated.
    delegate = first(f("DelegateUser"), f("delegate_user"), f("DELEGATE_USER"))
    is_app_change = (
        f"({act} LIKE '%connectedapp%' OR {act} LIKE '%oauth%' OR {act} LIKE '%packagingapp%' "
        f"OR {act} LIKE '%package%install%')"
    )
    # The app's name as Display gives it: quoted, before "connected app is ...", after "package:".
    app_name = (
        "coalesce("
        f"nullif(regexp_extract({display}, '[\"“]([^\"”]+)[\"”]', 1), ''), "
        f"nullif(regexp_extract({display}, ':\\s*(.+?) connected app\\b', 1), ''), "
        f"nullif(regexp_extract({display}, 'package:\\s*(.+)$', 1), ''))"
    )
    return {
        "time": f"parse_ts({created})",
        "_time_raw": created,
        "_time_field": "'CreatedDate'",
        "source": f"'{SOURCE}'",
        "event_type": action,
        "category": "'admin_change'",
        "action": f"""CASE
            WHEN {is_app_change} THEN 'app_change'
            WHEN {act} LIKE 'deletetwofactor%' OR {act} LIKE 'deleteauthenticatorpairing%'
              OR {act} LIKE 'resettwofactor%' THEN 'mfa_reset'
            WHEN {act} LIKE 'inserttwofactor%' OR {act} LIKE 'insertauthenticatorpairing%' THEN 'factor_enroll'
            WHEN {act} LIKE 'permset%' OR {act} LIKE 'profile%'
              OR {act} LIKE '%permission%' THEN 'permission_change'
            WHEN {act} LIKE '%ip%range%' OR {act} LIKE '%loginip%' THEN 'network_change'
            WHEN {act} LIKE '%password%' THEN 'password_policy_change'
            ELSE 'admin_change' END""",
        "outcome": "'success'",
        "outcome_reason": display,
        "user_id": f"CASE WHEN {delegate} IS NULL THEN sf_id18({created_by_id}) END",
        "username": first(delegate, created_by),
        "target_user": f"CASE WHEN {delegate} IS NOT NULL THEN {first(created_by, f'sf_id18({created_by_id})')} END",
        "object": first(f("Section"), f("section"), f("SECTION")),
        "record_id": f"sf_id_or_null({first(f('Id'), f('record_id'), f('ID'))})",
        "app": f"CASE WHEN {is_app_change} THEN {app_name} END",
    }


MAPPING = SourceMapping(SOURCE, build)
