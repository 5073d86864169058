"""SetupAuditTrail records, in the raw SOQL shape and AppOmni's snake_case shape, mapped to the
event schema and checked field by field on named records of the public samples."""

from __future__ import annotations

from datetime import UTC, datetime

APPOMNI = "salesforce/other/SetupAuditTrail-appomni.ndjson"
ELASTIC = "salesforce/other/SetupAuditTrail-elastic-integrations.ndjson"


def test_soql_shape_connected_app_insert(events) -> None:
    [row] = events(ELASTIC)
    assert (row["source"], row["category"]) == ("salesforce_audit", "admin_change")
    assert (row["event_type"], row["action"]) == ("insertConnectedApplication", "app_change")
    assert row["time"] == datetime(2022, 8, 16, 9, 26, 38, tzinfo=UTC)
    assert row["object"] == "Connected Apps"  # Section
    assert row["record_id"] == "0Ym5j000019nwonCAA"
    assert row["outcome_reason"] == "For user user@elastic.co, the User Verified Email status changed to verified"
    # DelegateUser is "the Login-As user who executed the action": the actor. CreatedById is the
    # account that was logged in as.
    assert (row["username"], row["user_id"], row["target_user"]) == ("user1", None, "0055j000000utlPAAQ")
    assert row["app"] is None  # this Display names no app (it used to give '')


def test_soql_shape_15_char_creator_id_is_converted(events, sample_line, write_ndjson) -> None:
    record = sample_line(ELASTIC, 1)
    record["CreatedById"] = "0055j000000utlP"
    record["DelegateUser"] = None
    [row] = events(write_ndjson([record]))
    assert (row["user_id"], row["username"], row["target_user"]) == ("0055j000000utlPAAQ", None, None)


def test_appomni_shape_permission_set_changes(events, one) -> None:
    rows = events(APPOMNI)
    assert len(rows) == 20
    assert len({r["event_id"] for r in rows}) == 19  # one groupMembership line appears twice
    enable = one(rows, event_type="PermSetEnableUserPerm")
    assert (enable["action"], enable["username"], enable["user_id"]) == ("permission_change", "bob@example.com", "000000000000123AbC")
    assert "View All Users permission was changed from disabled to enabled" in enable["outcome_reason"]
    assert enable["time"] == datetime(2023, 3, 8, 18, 43, tzinfo=UTC)
    assert enable["object"] == "Manage Users"
    disable = one(rows, event_type="PermSetDisableUserPerm")
    assert (disable["action"], disable["username"]) == ("permission_change", "alice@example.com")
    assert one(rows, event_type="profileClonedStandard")["action"] == "permission_change"


def test_appomni_shape_app_changes_name_the_app(events, one) -> None:
    rows = events(APPOMNI)
    seam = one(rows, event_type="SetupEntityAccessAudit_Profile_ConnectedApplication_EnabledStandard")
    assert (seam["action"], seam["app"]) == ("app_change", "SEAM")  # "...: SEAM connected app is enabled"
    for action, app in [("installedpackagingapp", "AppName"), ("upgradedpackagingapp", "Vendor_App"),
                        ("uninstalledpackagingapp", "Sales_App_Name")]:
        row = one(rows, event_type=action)
        assert (row["action"], row["app"]) == ("app_change", app)
    assert {r["app"] for r in rows if r["action"] != "app_change"} == {None}


def test_appomni_shape_mfa_network_and_password_policy(events, one) -> None:
    rows = events(APPOMNI)
    assert one(rows, event_type="deleteTwoFactorInfo2")["action"] == "mfa_reset"  # TOTP token removed
    assert one(rows, event_type="insertAuthenticatorPairing")["action"] == "factor_enroll"
    ip_range = one(rows, event_type="deletedLoginIpRange_withProfile")
    assert (ip_range["action"], ip_range["object"]) == ("network_change", None)  # section is null
    assert one(rows, event_type="passwordexpiry")["action"] == "password_policy_change"
    assert one(rows, event_type="createduser")["action"] == "admin_change"


def test_appomni_shape_change_made_while_logged_in_as_another_user(events, one) -> None:
    row = one(events(APPOMNI), event_type="updatedgroup")
    assert (row["username"], row["target_user"], row["user_id"]) == ("john@example.com", "alice@example.com", None)
    others = [r for r in events(APPOMNI) if r["event_type"] != "updatedgroup"]
    assert {r["target_user"] for r in others} == {None}
    assert {len(r["user_id"]) for r in others} == {18}
