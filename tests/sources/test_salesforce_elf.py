"""Event Log File rows (CSV as ``LogFile`` serves them, and ELF rows rendered as JSON objects)
mapped to the event schema, checked field by field on named records of the public samples."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmguard.sources.sql import connect

ELF = "salesforce/elf"
OTHER = "salesforce/other"


def ts(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- CSV ---------------------------------------------------------------------------------------

def test_login_mock_maps_every_identity_and_network_field(events, one) -> None:
    [row] = events(f"{ELF}/Login-elastic-integrations-mock.csv")
    assert row["source"] == "salesforce_elf"
    assert (row["event_type"], row["category"], row["action"]) == ("Login", "authentication", "login")
    assert row["time"] == ts(2022, 11, 22, 4, 46, 15, 591000)
    assert row["user_id"] == "0055j000000utlPAAQ"
    assert row["username"] == "user@elastic.co"
    assert row["org_id"] == "00D5j000000VI3nEAG"  # 15-char ORGANIZATION_ID, given its checksum
    assert row["src_ip"] == "81.2.69.142"
    assert (row["outcome"], row["outcome_reason"]) == ("success", "LOGIN_NO_ERROR")
    assert row["login_key"] == "QfNecrLXSII6fsBq"
    assert row["session_id"] is None  # SESSION_KEY is blank on Login rows
    assert row["user_agent"].startswith("Mozilla/5.0 (Windows NT 10.0; Win64; x64)")
    assert row["api_type"] == "Feed"  # API_TYPE 'f'
    assert row["uri"] == "/index.jsp"
    # URI_ID_DERIVED is 's4heK3WbH-lcJIL3-n' in this hand-edited sample: not a record id.
    assert row["record_id"] is None
    assert row["log_file"].endswith("Login-elastic-integrations-mock.csv")
    assert json.loads(row["raw"])["REQUEST_ID"] == "4ehU_U-nbQyAPFl1cJILm-"


def test_login_with_salesforce_internal_client_ip_takes_source_ip(events) -> None:
    [row] = events(f"{ELF}/Login-elastic-beats.csv")  # file ends with a newline: still one row
    assert json.loads(row["raw"])["CLIENT_IP"] == "Salesforce.com IP"
    assert row["src_ip"] == "103.108.207.58"
    assert row["user_id"] == "0055j00000AT6I1AAL"
    assert row["username"] == "salesforceinstance@devtest.in"
    assert row["org_id"] == "00D5j00000DgAYGEA3"
    assert row["auth_method"] == "Remote Access 2.0"  # LOGIN_TYPE 'i'
    assert row["user_agent"] == "Go-http-client/1.1"
    assert row["time"] == ts(2023, 12, 18, 5, 48, 31, 655000)


def test_newrelic_login_file_placeholders_do_not_pass_as_ips_or_ids(events, one) -> None:
    rows = events(f"{ELF}/Login-newrelic-exporter.csv")
    assert len(rows) == 9  # last line has no trailing newline
    assert {r["src_ip"] for r in rows} == {None}  # CLIENT_IP / SOURCE_IP are 'w.x.y.z'
    # USER_ID is the placeholder 'USER_ID': kept as given, not padded into a fake 18-char id.
    assert {r["user_id"] for r in rows} == {"USER_ID"}
    assert {r["org_id"] for r in rows} == {"MY_ORG_ID"}
    assert {(r["outcome"], r["outcome_reason"], r["src_country"]) for r in rows} == {("success", "LOGIN_NO_ERROR", "US")}
    # LOGIN_SUB_TYPE codes become Salesforce's labels (those RTEM LoginEvent carries).
    by_method: dict[str, int] = {}
    for r in rows:
        by_method[r["auth_method"]] = by_method.get(r["auth_method"], 0) + 1
    assert by_method == {"OAuth Username-Password": 6, "OAuth Refresh Token": 2, "Partner Product": 1}
    gearset = [r for r in rows if r["auth_method"] == "OAuth Refresh Token"]
    assert {r["user_agent"] for r in gearset} == {"Gearset/1.0"}
    soap = one(rows, auth_method="Partner Product")  # LOGIN_TYPE 'R', no LOGIN_SUB_TYPE
    assert (soap["api_type"], soap["session_id"], soap["uri"]) == ("SOAP", "SESSION_KEY", "Api")
    assert soap["time"] == ts(2025, 10, 1, 11, 0, 19, 849000)


@pytest.mark.parametrize(
    ("id15", "id18"),
    [
        ("0055j000000utlP", "0055j000000utlPAAQ"),  # Login/Logout/AuraRequest mock USER_ID -> USER_ID_DERIVED
        ("0055j00000AT6I1", "0055j00000AT6I1AAL"),  # Login-elastic-beats.csv
        ("0055f00000CyENt", "0055f00000CyENtAAN"),  # Login-LoginAs-panther-rule-tests line 1
        ("0054x000001L78a", "0054x000001L78aAAC"),  # same file, line 2: DELEGATED_USER_ID(_DERIVED)
    ],
)
def test_15_char_ids_get_the_checksum_salesforce_derives(id15: str, id18: str) -> None:
    con = connect()
    assert con.execute("SELECT sf_id18(?), sf_id18(?)", [id15, id18]).fetchone() == (id18, id18)
    assert con.execute("SELECT sf_id18('USER_ID'), sf_id18(''), sf_id_or_null('s4heK3WbH-lcJIL3-n')").fetchone() == (
        "USER_ID", None, None,
    )


def test_a_15_char_id_is_converted_where_the_row_has_no_18_char_one(events, one) -> None:
    rows = events(f"{ELF}/ApexCallout-newrelic-exporter.csv")
    first = one(rows, time=ts(2024, 3, 11, 16))
    assert json.loads(first["raw"])["USER_ID_DERIVED"] == "001122334455667"
    assert first["user_id"] == "001122334455667AAA"
    assert first["org_id"] == "001122334455667AAA"


def test_timestamp_derived_wins_over_timestamp(events, one, sample_line, write_ndjson) -> None:
    # The two disagree in these rows; TIMESTAMP_DERIVED (ISO, ms) is the documented event time.
    [login] = events(f"{OTHER}/Login-appomni.ndjson")  # TIMESTAMP 20230315013819.200
    assert login["time"] == ts(2023, 3, 15, 1, 38, 19, 151000)
    [logout] = events(f"{OTHER}/Logout-elastic-integrations.ndjson")  # TIMESTAMP 20211019050707.13
    assert logout["time"] == ts(2021, 10, 19, 5, 7, 7, 128000)
    # Without TIMESTAMP_DERIVED the compact ELF TIMESTAMP (yyyyMMddHHmmss.SSS) is used.
    record = sample_line(f"{OTHER}/Login-elastic-integrations.ndjson", 1)
    del record["TIMESTAMP_DERIVED"]
    [row] = events(write_ndjson([record]))
    assert row["time"] == ts(2022, 9, 13, 5, 22, 43, 429000)


def test_apex_callout_url_with_embedded_quotes_is_unescaped_once(events, one) -> None:
    rows = events(f"{ELF}/ApexCallout-newrelic-exporter.csv")
    assert len(rows) == 2
    second = one(rows, time=ts(2024, 3, 11, 17))
    # The CSV field """https://test.local.test""" is a URL wrapped in one pair of literal quotes.
    assert second["uri"] == '"https://test.local.test"'
    assert json.loads(second["raw"])["URL"] == '"https://test.local.test"'
    assert (second["operation"], second["bytes"], second["outcome"], second["outcome_reason"]) == ("POST", 4096, "success", "200")
    assert second["src_ip"] is None and second["session_id"] is None  # blank CLIENT_IP / SESSION_KEY
    [mock] = events(f"{ELF}/ApexCallout-elastic-integrations-mock.csv")
    assert mock["uri"] == "https://temp.sh/odata/Accounts"  # the endpoint called, not 'CALLOUT-LOG'
    assert mock["record_id"] is None  # URI_ID_DERIVED has 19 characters: not an id


def test_aura_request_record_page_names_the_record_and_object(events, one) -> None:
    rows = events(f"{ELF}/AuraRequest-elastic-integrations-mock.csv")
    view = one(rows, uri="/lightning/r/Account/0015j00000AbCdEAAQ/view")
    assert (view["record_id"], view["object"]) == ("0015j00000AbCdEAAQ", "Account")
    assert view["outcome"] == "unknown"  # REQUEST_STATUS is blank
    assert view["time"] == ts(2026, 8, 3, 6, 18, 51, 204000)
    aura = one(rows, uri="/aura")
    assert (aura["outcome"], aura["outcome_reason"], aura["record_id"]) == ("success", "S", None)
    assert json.loads(aura["raw"])["ACTION_MESSAGE"].startswith("1$serviceComponent://ui.force.components")
    assert {r["category"] for r in rows} == {"web_resource"}
    assert {r["user_id"] for r in rows} == {"0055j000000utlPAAQ"}


def test_logout_is_a_successful_session_end(events) -> None:
    [row] = events(f"{ELF}/Logout-elastic-integrations-mock.csv")
    assert (row["action"], row["outcome"]) == ("logout", "success")
    assert (row["session_id"], row["login_key"]) == ("WvtsJ1235oW24EbH", "Obv9123BzbaxqCo1")
    assert (row["user_id"], row["src_ip"]) == ("0055j000000utlPAAQ", "81.2.69.142")
    assert row["time"] == ts(2022, 11, 22, 7, 37, 25, 779000)


# --- ELF rows as JSON --------------------------------------------------------------------------

def test_api_query_all_of_100000_rows(events, one) -> None:
    rows = events(f"{OTHER}/API-appomni.ndjson")
    assert len(rows) == 5
    bulk = one(rows, operation="query_all")
    assert (bulk["action"], bulk["rows"], bulk["bytes"]) == ("query", 100000, 296630)
    assert (bulk["api_type"], bulk["app"], bulk["object"]) == ("SOAP", "vendor/integration_app", "Customer_Account__c")
    assert bulk["category"] == "api_activity"
    assert bulk["outcome"] == "success"  # EXCEPTION_MESSAGE is blank: the call completed
    assert bulk["time"] == ts(2023, 3, 17, 18, 4, 24, 293000)
    assert bulk["user_id"] == "000000000000123AbC"
    assert bulk["src_ip"] == "198.51.100.1"
    assert {r["action"] for r in rows} == {"create", "delete", "query", "update"}
    assert one(rows, operation="insert")["rows"] == 36


def test_login_as_actor_is_the_delegated_admin_and_target_the_user(events, one) -> None:
    rows = events(f"{OTHER}/Login-LoginAs-panther-rule-tests.ndjson")
    login_as = one(rows, event_type="LoginAs")
    # Salesforce: DELEGATED_USER_* is "the user who's doing the impersonation"; USER_ID the user
    # being impersonated (here the sample's placeholder 'fdokawnjf').
    assert (login_as["action"], login_as["category"]) == ("login_as", "authentication")
    assert login_as["username"] == "admin.user@yourcompany.io"
    assert login_as["user_id"] == "0054x000001L78aAAC"
    assert login_as["target_user"] == "fdokawnjf"
    assert login_as["time"] == ts(2021, 8, 19, 9, 5, 3, 392000)  # Panther's 'YYYY-MM-DD HH:MM:SS.fff'
    assert (login_as["src_ip"], login_as["session_id"]) == ("12.12.12.12", "f6wkL1crc62p7/Vj")
    login = one(rows, event_type="Login")
    assert (login["username"], login["user_id"], login["target_user"]) == ("user@yourcompany.io", "0055f00000CyENtAAN", None)
    assert login["src_ip"] == "12.12.12.12"  # SOURCE_IP over CLIENT_IP 13.13.13.13
    assert login["outcome"] == "success"


def test_failed_oauth_login_from_a_script(events) -> None:
    [row] = events(f"{OTHER}/Login-appomni.ndjson")
    assert (row["outcome"], row["outcome_reason"]) == ("failure", "LOGIN_OAUTH_NO_CONSUMER")
    assert row["src_ip"] == "198.51.100.1"  # CLIENT_IP is 'Salesforce.com IP'
    assert row["user_agent"] == "python-requests/2.28.2"
    assert row["auth_method"] == "Remote Access 2.0"


def test_logout_row_with_a_joined_header_key_still_parses(events) -> None:
    [row] = events(f"{OTHER}/Logout-appomni.ndjson")
    assert "API_VERSION,USER_INITIATED_LOGOUT" in json.loads(row["raw"])
    assert (row["event_type"], row["action"], row["outcome"]) == ("Logout", "logout", "success")
    assert (row["session_id"], row["src_ip"], row["user_id"]) == ("9870000000012300", "198.51.100.2", "000000000000123AbC")
    assert row["time"] == ts(2023, 3, 16, 21, 7, 47, 645000)


def test_search_and_unique_query_keep_their_query_text(events) -> None:
    [search] = events(f"{OTHER}/Search-appomni.ndjson")
    assert (search["query"], search["rows"]) == ('"""test_search_string_*"""', 0)
    [unique] = events(f"{OTHER}/UniqueQuery-appomni.ndjson")
    assert unique["query"].startswith("SELECT ReportsTo.LastModifiedById, ReportsTo.Name")
    assert unique["query"].endswith("FROM Contact USING SCOPE EVERYTHING WHERE id = :id")
    assert unique["user_id"] == "005Dn000001ab23IAA"


def test_apex_rows_as_json(events, one) -> None:
    rows = events(f"{OTHER}/Apex-elastic-integrations.ndjson")
    callout = one(rows, event_type="ApexCallout")
    assert (callout["uri"], callout["outcome"], callout["bytes"]) == ("https://temp.website.here.sh/odata/Random", "success", 61)
    execution = one(rows, event_type="ApexExecution")
    assert (execution["uri"], execution["outcome"], execution["record_id"]) == ("/home/home.jsp", "unknown", "AQB00530000009M943")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20250303153858.731", ts(2025, 3, 3, 15, 38, 58, 731000)),  # ELF TIMESTAMP
        (" 20250303153858 ", ts(2025, 3, 3, 15, 38, 58)),
        ("2025-03-03T15:38:58.731Z", ts(2025, 3, 3, 15, 38, 58, 731000)),  # TIMESTAMP_DERIVED
        ("2025-03-03 15:38:58.7", ts(2025, 3, 3, 15, 38, 58, 700000)),
        ("2025-03-03T15:38:58+02:00", ts(2025, 3, 3, 13, 38, 58)),
        ("2025-03-03T15:38:58.123+0530", ts(2025, 3, 3, 10, 8, 58, 123000)),
        ("2025-03-03", None),  # a date is not a moment
        ("2025-13-03T15:38:58Z", None),
        ("20251303153858.731", None),
        ("1700-01-01T00:00:00Z", None),  # outside 1990..2100: impossible
        ("garbage", None),
        ("", None),
    ],
)
def test_timestamps_parse_in_every_style_salesforce_writes(text: str, expected: datetime | None) -> None:
    assert connect().execute("SELECT parse_ts(?)", [text]).fetchall()[0][0] == expected


def _checksum(id15: str) -> str:
    """Salesforce's documented 15 -> 18 char suffix: per 5-char chunk, bit i set when its i-th
    character is an uppercase letter, the number indexing A-Z0-5."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    return id15 + "".join(alphabet[sum(1 << i for i, ch in enumerate(id15[k:k + 5]) if "A" <= ch <= "Z")]
                          for k in range(0, 15, 5))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet=string.ascii_letters + string.digits, min_size=15, max_size=15), min_size=1, max_size=200))
def test_every_15_char_id_gets_the_documented_checksum(ids: list[str]) -> None:
    con = connect()
    got = con.execute("SELECT list(sf_id18(x) ORDER BY i) FROM (SELECT unnest(?) AS x, generate_subscripts(?, 1) AS i)",
                      [ids, ids]).fetchone()[0]
    assert got == [_checksum(i) for i in ids]
