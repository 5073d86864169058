"""Real-Time Event Monitoring records (streaming envelopes, SOQL responses, bare object rows)
mapped to the event schema, checked field by field on named records of the public samples."""

from __future__ import annotations

import json
from datetime import UTC, datetime

RTEM = "salesforce/rtem"

QUERY = (
    "Select name, record, status__c, from Account where LastModifiedDate >= 2023-01-01T12:00:00Z "
    "ORDER BY LastModifiedDate ASC"
)


def ts(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_api_event_query_more_of_a_million_rows(events, one) -> None:
    rows = events(f"{RTEM}/ApiEventStream-appomni.ndjson")
    more = one(rows, operation="QueryMore")
    assert (more["source"], more["event_type"], more["category"], more["action"]) == (
        "salesforce_rtem", "ApiEvent", "api_activity", "query_more",
    )
    assert more["rows"] == 1000364  # RowsProcessed 1000364.0
    assert more["query"] == QUERY
    assert more["user_agent"] == "python-requests/2.28.2"
    assert (more["api_type"], more["object"]) == ("REST", "Customer_Account__c")
    assert more["time"] == ts(2023, 3, 21, 10, 4, 39, 747000)  # EventDate, not CreatedDate
    assert (more["username"], more["user_id"]) == ("john@example.com", "000000000000123AbC")
    assert (more["session_id"], more["login_key"], more["src_ip"]) == ("9870000000012300", "9870000000012300", "198.51.100.1")
    assert more["app"] is None  # Application 'N/A', no ConnectedAppId
    assert more["record_id"] is None  # Records lists two records: no single record id
    assert more["outcome"] == "unknown"  # ApiEvent carries no status
    query = one(rows, operation="Query")
    assert (query["action"], query["rows"], query["app"]) == ("query", 0, "567000000abc0004")
    assert query["user_agent"] == "Python-httplib2/0.19.0 (gzip)"


def test_records_naming_one_record_give_its_id(events, sample_line, write_ndjson) -> None:
    envelope = sample_line(f"{RTEM}/ApiEventStream-appomni.ndjson", 1)
    payload = envelope["data"]["payload"]
    records = json.loads(payload["Records"])
    records["records"] = records["records"][:1]
    payload["Records"] = json.dumps(records)
    [row] = events(write_ndjson([envelope]))
    assert row["record_id"] == "0000G000000000123"
    payload["Records"] = "not json"
    [row] = events(write_ndjson([envelope]))
    assert row["record_id"] is None


def test_report_exported_is_an_export_of_20680_rows(events, one) -> None:
    rows = events(f"{RTEM}/ReportEventStream-appomni.ndjson")
    export = one(rows, operation="ReportExported")
    assert (export["event_type"], export["category"], export["action"]) == ("ReportEvent", "data_export", "export")
    assert export["rows"] == 20680
    assert export["record_id"] == "987000000abc0004A"  # ReportId
    assert export["time"] == ts(2023, 3, 22, 13, 18, 46, 826000)
    run = one(rows, operation="ReportRunFromLightning")
    assert (run["category"], run["action"], run["rows"]) == ("api_activity", "report_run", 1050)


def test_list_view_event(events) -> None:
    [row] = events(f"{RTEM}/ListViewEventStream-appomni.ndjson")
    assert (row["event_type"], row["action"], row["category"]) == ("ListViewEvent", "list_view", "api_activity")
    assert (row["rows"], row["record_id"], row["object"]) == (1000, "00B440000000000000", "Customer_Account__c")
    assert row["time"] == ts(2023, 3, 20, 16, 25, 52, 850000)


def test_login_event_soql_responses(events) -> None:
    [beats] = events(f"{RTEM}/LoginEvent-elastic-beats-soql-response.json")
    assert (beats["event_type"], beats["action"]) == ("LoginEvent", "login")
    assert (beats["outcome"], beats["outcome_reason"]) == ("success", "Success")  # Status
    assert (beats["user_id"], beats["username"]) == ("0055j00000AT6I1AAL", "salesforceinstance@devtest.in")
    assert (beats["src_ip"], beats["src_country"], beats["src_city"]) == ("134.238.252.19", "IN", "Mumbai")
    assert (beats["app"], beats["auth_method"]) == ("salesforce_test", "Remote Access 2.0")
    assert beats["user_agent"] is None  # Browser 'Unknown'
    assert beats["time"] == ts(2023, 12, 6, 5, 44, 24, 973000)
    [mock] = events(f"{RTEM}/LoginEvent-elastic-integrations-mock-soql-response.json")
    assert (mock["event_type"], mock["outcome"], mock["outcome_reason"]) == ("LoginEvent", "success", "Success")
    assert (mock["auth_method"], mock["app"]) == ("OAuth Username-Password", "elastic integration")  # LoginSubType
    assert (mock["src_ip"], mock["src_city"]) == ("103.108.207.58", None)
    assert mock["user_id"] == "0055j000000utlPAAQ"


def test_login_event_rows_without_attributes(events, one) -> None:
    rows = events(f"{RTEM}/LoginEvent-elastic-integrations.ndjson")
    assert {r["event_type"] for r in rows} == {"LoginEvent"}  # recognised by LoginType / LoginGeoId
    failed = one(rows, username="salesforceinstance@devtest.in")
    assert (failed["outcome"], failed["outcome_reason"]) == ("failure", "Failed: Missing Consumer Key Parameter")
    assert failed["app"] == "testing_salesforce"
    ok = one(rows, username="user.name@email.com")
    assert (ok["outcome"], ok["user_agent"], ok["src_city"]) == ("success", "Chrome", "Surat")
    assert ok["time"] == ts(2021, 10, 19, 11, 47, 22)


def test_login_event_status_other_than_success_is_a_failure(events, one) -> None:
    rows = events(f"{RTEM}/LoginEventStream-appomni.ndjson")
    lockout = one(rows, username="alice@example.com")
    assert (lockout["outcome"], lockout["outcome_reason"]) == ("failure", "Password Lockout")
    assert (lockout["api_type"], lockout["auth_method"]) == ("SOAP", "Other Apex API")  # ApiType 'SOAP Partner'
    sso = one(rows, username="john@example.com")
    assert (sso["outcome"], sso["auth_method"]) == ("success", "SAML Sfdc Initiated SSO")
    assert (sso["user_agent"], sso["app"]) == ("Chrome 110", None)  # Application 'Browser' is not an app


def test_identity_verification_invalid_ip_and_statuses(events, one) -> None:
    rows = events(f"{RTEM}/IdentityVerificationEvent-appomni.ndjson")
    assert len(rows) == 3
    for row in rows:
        assert json.loads(row["raw"])["data"]["payload"]["SourceIp"] == "2001db8fffffffffffffffffffffffa"
        assert row["src_ip"] is None  # hex without colons: not an IPv6 address
        assert (row["action"], row["auth_method"], row["src_country"]) == ("mfa_verify", "Totp", "US")
    assert one(rows, username="john@example.com")["outcome"] == "success"  # Succeeded
    assert one(rows, username="bob@example.com")["outcome"] == "failure"  # FailedInvalidCode
    assert one(rows, username="alice@example.com")["outcome"] == "unknown"  # InProgress
    assert one(rows, username="bob@example.com")["src_city"] == "Lexington"


def test_logout_events_are_successful_session_ends(events) -> None:
    [bare] = events(f"{RTEM}/LogoutEvent-elastic-integrations.ndjson")
    assert (bare["event_type"], bare["action"], bare["outcome"]) == ("LogoutEvent", "logout", "success")
    assert bare["session_id"] == "6/HAElgoPCwskqBU"
    [stream] = events(f"{RTEM}/LogoutEventStream-appomni.ndjson")
    assert (stream["event_type"], stream["outcome"], stream["src_ip"]) == ("LogoutEvent", "success", "198.51.100.1")


def test_bulk_api_result_event(events) -> None:
    [row] = events(f"{RTEM}/BulkApiResultEventStore-appomni.ndjson")
    assert (row["event_type"], row["category"], row["action"]) == ("BulkApiResultEvent", "data_export", "export")
    assert row["query"] == QUERY
    assert row["time"] == ts(2023, 3, 22, 15, 7, 16, 240000)


def test_uri_events_operation_status(events, one) -> None:
    rows = events(f"{RTEM}/UriEventStream-appomni.ndjson")
    assert (one(rows, operation="Read")["outcome"], one(rows, operation="Read")["action"]) == ("success", "read")
    assert one(rows, operation="Delete")["outcome"] == "unknown"  # OperationStatus 'Initiated'
    assert {r["record_id"] for r in rows} == {"000000000000123AbC"}
    lightning = events(f"{RTEM}/LightningUriEventStream-appomni.ndjson")
    created = one(lightning, operation="Create")
    assert (created["event_type"], created["record_id"], created["uri"]) == (
        "LightningUriEvent", "120000033000123AbC", "/lightning/o/Case/new?count=1",
    )
