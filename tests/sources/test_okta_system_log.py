"""Okta System Log events (raw API shape and Panther's lower-case variant) mapped to the event
schema, checked field by field on named records of the public samples."""

from __future__ import annotations

import json
from datetime import UTC, datetime

APPOMNI = "okta/system-log-appomni.ndjson"
ELASTIC = "okta/system-log-elastic-integrations.ndjson"
PANTHER = "okta/system-log-panther-rule-tests.ndjson"
SCENARIOS = "okta/system-log-panther-scenarios.ndjson"


def ts(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_api_token_creation_with_security_context(events, one) -> None:
    row = one(events(APPOMNI), event_type="system.api_token.create")
    assert (row["source"], row["category"], row["action"], row["outcome"]) == ("okta", "admin_change", "system_api_token_create", "success")
    assert row["time"] == ts(2023, 9, 14, 15, 0, 54, 589000)
    assert (row["user_id"], row["username"]) == ("00ua1aaaa1abc0A0B123", "alice@example.com")
    assert (row["src_ip"], row["src_country"], row["src_city"]) == ("198.51.100.1", "US", "San Francisco")
    assert (row["src_asn"], row["src_isp"], row["is_anonymizer"]) == (14618, "amazon.com inc", False)
    assert row["session_id"] == "10234ABC123abc1234abc1234"
    assert row["uri"] == "/api/internal/tokens"
    assert row["record_id"] == "11111111-2222-3333-4444-abcdef111111111111"  # uuid


def test_duplicate_security_context_key_keeps_the_first_object(events, one) -> None:
    row = one(events(APPOMNI), event_type="workflows.user.flow.delete")
    # The line holds "securityContext":{...asNumber 14618...} and then "securityContext":null.
    assert row["raw"].count('"securityContext"') == 2
    assert (row["src_asn"], row["src_isp"], row["is_anonymizer"]) == (14618, "amazon.com inc", False)
    assert row["app"] == "Okta Workflows"


def test_appomni_sign_in_mfa_and_admin_events(events, one) -> None:
    rows = events(APPOMNI)
    assert len(rows) == 34
    failed = one(rows, event_type="user.session.start", outcome="failure")
    assert (failed["action"], failed["outcome_reason"]) == ("login", "INVALID_CREDENTIALS")
    assert failed["session_id"] is None  # externalSessionId 'unknown'
    assert one(rows, event_type="user.session.start", outcome="success")["session_id"] == "10234ABC123abc1234abc1234"
    reset = one(rows, event_type="user.mfa.factor.deactivate")
    assert (reset["action"], reset["target_user"], reset["outcome_reason"]) == ("mfa_reset", "john@example.com", "User reset OKTA_SOFT_TOKEN factor")
    export = one(rows, event_type="analytics.reports.export.download")
    assert (export["action"], export["category"]) == ("export", "data_export")
    assert one(rows, event_type="group.application_assignment.add")["app"] == "Salesforce.com"
    assert one(rows, event_type="iam.role.create")["category"] == "admin_change"
    ad = one(rows, event_type="user.authentication.auth_via_AD_agent", outcome="failure")
    assert (ad["app"], ad["outcome_reason"]) == ("Active Directory", "Authentication failed: bad username or password")


def test_ip_address_null_string_falls_back_to_the_ip_chain(events, one) -> None:
    row = one(events(ELASTIC), time=ts(2020, 2, 14, 20, 18, 57, 718000))
    assert json.loads(row["raw"])["client"]["ipAddress"] == "null"
    assert row["src_ip"] == "175.16.199.1"  # request.ipChain[0].ip
    assert (row["action"], row["operation"], row["uri"]) == ("login", "core.user_auth.login_success", "/api/v1/authn")
    assert row["src_asn"] is None and row["is_anonymizer"] is None  # securityContext all null


def test_system_principal_with_an_all_null_client(events, one) -> None:
    row = one(events(ELASTIC), event_type="app.user_management")
    assert (row["username"], row["user_id"]) == ("system@okta.com", "spr294puarJOdUsWD1t7")
    for column in ("src_ip", "src_country", "src_city", "user_agent", "src_asn", "src_isp", "is_anonymizer"):
        assert row[column] is None, column
    assert (row["app"], row["target_user"]) == ("Google Workspace", "domain.user@test.com")
    assert row["time"] == ts(2023, 4, 27, 0, 56, 17, 750000)


def test_risk_and_behaviors_strings(events, one) -> None:
    row = one(events(ELASTIC), username="Snipped_User@domain.com")
    assert row["risk"].startswith("{reasons=Anomalous Device, Anomalous Location, level=HIGH}; {")
    assert "Velocity=POSITIVE" in row["risk"]
    assert (row["action"], row["src_asn"]) == ("mfa_verify", 1828)


def test_panther_lower_case_keys(events, one) -> None:
    rows = events(PANTHER)
    assert len(rows) == 58  # 66 lines, 8 without a usable timestamp (see the ingest test)
    for row in rows:
        raw = json.loads(row["raw"])
        assert row["event_type"] == raw.get("eventType", raw.get("eventtype"))
    oauth = one(rows, event_type="app.oauth2.authorize.code")
    raw = json.loads(oauth["raw"])
    assert {"eventtype", "authenticationcontext", "debugcontext", "securitycontext"} <= raw.keys()
    assert (oauth["action"], oauth["category"]) == ("app_authorize", "authentication")
    assert oauth["session_id"] == "123456789"  # authenticationcontext.externalSessionId
    assert (oauth["src_asn"], oauth["src_isp"]) == (701, "verizon")  # securitycontext
    assert oauth["uri"] == "/login/token/redirect"  # debugcontext.debugData.requestUri
    assert oauth["risk"].startswith("{level=LOW}; {New Geo-Location=NEGATIVE")
    assert oauth["app"] == "Okta User"  # the PublicClientApp actor is the OAuth client
    assert oauth["time"] == ts(2022, 12, 13, 15, 22, 58, 759000)  # 'YYYY-MM-DD HH:MM:SS.fff'
    rate = one(rows, event_type="system.org.rate_limit.warning", username="jim.kalafut@panther.com")
    assert rate["time"] == ts(2024, 5, 2, 18, 46, 21, 121000)  # nanosecond digits truncated


def test_panther_outcome_results(events, one) -> None:
    expected = {"SUCCESS": "success", "ALLOW": "success", "FAILURE": "failure", "DENY": "failure",
                "CHALLENGE": "unknown", None: "unknown"}
    seen = set()
    for row in events(PANTHER) + events(ELASTIC):
        result = (json.loads(row["raw"]).get("outcome") or {}).get("result")
        seen.add(result)
        assert row["outcome"] == expected[result], row["raw"][:200]
    assert seen == set(expected)
    threat = one(events(PANTHER), event_type="security.threat.detected", outcome="failure")
    # The actor of this event is the IP ('IP address', alternateId 'unknown'), not a user.
    assert (threat["user_id"], threat["username"], threat["category"]) == (None, None, "security_finding")
    assert threat["outcome_reason"].startswith("Password Spray")


def test_sso_event_names_the_app(events, sample_line, write_ndjson) -> None:
    # Panther's SSO cases (lines 50, 51) have no `published`, so they are quarantined as they are;
    # given a time, they show what the mapping makes of an SSO event.
    sso, app_user_only = sample_line(PANTHER, 50), sample_line(PANTHER, 51)
    for record in (sso, app_user_only):
        record["published"] = "2024-06-04T10:00:00.000Z"
    rows = events(write_ndjson([sso, app_user_only]))
    by_app = {r["app"]: r for r in rows}
    assert set(by_app) == {"AWS IAM Identity Center", None}  # AppInstance displayName; AppUser is no app
    assert (by_app["AWS IAM Identity Center"]["action"], by_app["AWS IAM Identity Center"]["outcome"]) == ("sso", "success")


def test_brute_force_then_success_then_admin_grant(events, one) -> None:
    rows = events(SCENARIOS)
    assert len(rows) == 20
    attack = sorted(
        (r for r in rows if r["username"] == "jack.naglieri@runpanther.io" and r["event_type"] == "user.session.start"
         and r["time"].date() == ts(2021, 6, 25).date()),
        key=lambda r: r["time"],
    )
    assert [r["outcome"] for r in attack] == ["failure"] * 9 + ["success"]
    assert {r["outcome_reason"] for r in attack[:-1]} == {"VERIFICATION_ERROR"}
    assert {r["src_country"] for r in attack[:-1]} == {"AR", "JP", "IT", "FR"}
    assert attack[0]["time"] == ts(2021, 6, 25, 21, 27, 3, 490000)  # '...03.49Z'
    success = attack[-1]
    assert (success["src_ip"], success["src_country"], success["time"]) == ("194.88.246.242", "FR", ts(2021, 6, 25, 21, 41, 3, 490000))
    created = one(rows, event_type="user.lifecycle.create")
    assert (created["target_user"], created["src_ip"]) == ("thomas12223391@gmail.com", "194.88.246.242")
    granted = one(rows, event_type="user.account.privilege.grant")
    assert (granted["target_user"], granted["username"]) == ("thomas12223391@gmail.com", "jack.naglieri@runpanther.io")


def test_look_alike_username_failures_keep_the_username(events) -> None:
    tries = [r for r in events(SCENARIOS) if r["username"] == "tracey_stone@acme.io"]
    assert [(r["outcome"], r["src_country"]) for r in tries] == [("failure", "RO")] * 2
    assert {r["user_id"] for r in tries} == {None}  # actor.id 'unknown': no such user


def test_countries_are_iso_codes_and_unknown_names_stay(events) -> None:
    rows = [r for path in (APPOMNI, ELASTIC, PANTHER, SCENARIOS) for r in events(path)]
    named = {json.loads(r["raw"]).get("client", {}).get("geographicalContext", {}).get("country"): r["src_country"]
             for r in rows if r["src_country"] is not None}
    assert named == {"United States": "US", "France": "FR", "Germany": "DE", "Iceland": "IS",
                     "Argentina": "AR", "Japan": "JP", "Italy": "IT", "Romania": "RO", "Switzerland": "CH",
                     # Elastic's snipped record has the placeholder "Country": no country, kept as written.
                     "Country": "Country"}


def test_any_country_name_okta_writes_becomes_its_code(events, sample_line, write_ndjson) -> None:
    # A real sign-in (AppOmni line 7) and a Panther lower-case record (line 5), re-written with the
    # country names Okta's geolocation uses; unknown names and placeholders pass through.
    names = {"United States": "US", "South Korea": "KR", "Russia": "RU", "Vietnam": "VN", "Hong Kong": "HK",
             "United Kingdom": "GB", "Czechia": "CZ", "Ivory Coast": "CI", "Türkiye": "TR", "Kosovo": "XK",
             "Netherlands": "NL", "Réunion": "RE", "Atlantis": "Atlantis", "": None}
    records = []
    for i, name in enumerate(names):
        for line, path in ((7, APPOMNI), (5, PANTHER)):
            record = sample_line(path, line)
            record["uuid"] = f"country-{i}-{line}"
            record.setdefault("client", {}).setdefault("geographicalContext", {})["country"] = name
            records.append(record)
    rows = events(write_ndjson(records))
    assert len(rows) == 2 * len(names)
    got = {(r["record_id"], r["src_country"]) for r in rows}
    assert got == {(f"country-{i}-{line}", code) for i, code in enumerate(names.values()) for line in (7, 5)}
