"""Containment against a fake Salesforce over real HTTP on localhost: the dry run sends nothing,
--execute runs the steps in order and verifies each, a failing step stops the run and a re-run
finishes without redoing verified steps, retries on 5xx/429, a refused token is a clear error."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmguard.cli import main
from crmguard.errors import SalesforceApiError
from crmguard.response import cli as response_cli
from crmguard.response.containment import build_plan, execute
from crmguard.response.incidents import Controller, IncidentStore, Observables
from crmguard.response.salesforce_api import SalesforceClient
from tests.response.fake_salesforce import TOKEN, FakeSalesforce, org_from_snapshot

pytestmark = pytest.mark.integration

T0 = dt.datetime(2025, 3, 4, 8, 0, tzinfo=dt.UTC)
VICTIM, VICTIM_ID = "francesco.rossi@valmontfils-group.com", "0055j00000003fXAAQ"
HELPDESK_ID = "0055j00000003g3AAA"
BYSTANDER_ID = "0055j00000003bvAAA"
APP, APP_ID = "Connect Assistant (EU)", "0H45j00000000zCCAQ"
ATTACKER_IP = "95.216.30.179"
HELD = "00D5j0000000i98!AQ0AQStolenAccessTokenXYZ0123456789"

SNAPSHOT = {
    "users": [{"Id": VICTIM_ID, "Username": VICTIM}, {"Id": HELPDESK_ID, "Username": "william.jones@valmontfils-group.com"},
              {"Id": BYSTANDER_ID, "Username": "celine.roux@valmontfils-group.com"}],
    "connected_apps": [{"Id": APP_ID, "Name": APP, "OptionsAllowAdminApprovedUsersOnly": False},
                       {"Id": "0H45j00000000uxCAA", "Name": "Salesforce for iOS", "OptionsAllowAdminApprovedUsersOnly": False}],
    "oauth_tokens": [
        {"Id": "0CQ1", "AppName": APP, "AppMenuItemId": APP_ID, "UserId": VICTIM_ID},
        {"Id": "0CQ2", "AppName": "Salesforce for iOS", "AppMenuItemId": "0H45j00000000uxCAA", "UserId": VICTIM_ID},
        # another user who authorised the look-alike app: revoked too (the app is the attacker's)
        {"Id": "0CQ3", "AppName": APP, "AppMenuItemId": APP_ID, "UserId": BYSTANDER_ID},
        # a bystander's legitimate grant: left alone
        {"Id": "0CQ4", "AppName": "Salesforce for iOS", "AppMenuItemId": "0H45j00000000uxCAA", "UserId": BYSTANDER_ID},
    ],
}


@pytest.fixture
def fake() -> Iterator[FakeSalesforce]:
    org = org_from_snapshot(SNAPSHOT, sessions_per_user=2, users=[VICTIM_ID, BYSTANDER_ID])
    # one bystander session comes from the attacker's IP: ended too
    next(s for s in org.sessions.values() if s["UsersId"] == BYSTANDER_ID)["SourceIp"] = ATTACKER_IP
    org.loose_tokens.add(HELD)
    with FakeSalesforce(org) as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IncidentStore]:
    s = IncidentStore(tmp_path / "state.db", tmp_path / "incidents", now=T0)
    s.open(title="Vishing", who="alice", observables=Observables(users=[VICTIM], ips=[ATTACKER_IP], apps=[APP], tokens=[HELD]),
           breach_start=T0 - dt.timedelta(hours=5), breach_end=T0, detected_at=T0, controller=Controller(name="Valmont & Fils"))
    yield s
    s.close()


def _client(fake: FakeSalesforce, token: str = TOKEN, **kw: object) -> SalesforceClient:
    return SalesforceClient(fake.url, token, backoff=0.0, **kw)  # type: ignore[arg-type]


def test_dry_run_sends_nothing_and_journals_the_plan(fake: FakeSalesforce, store: IncidentStore, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(response_cli.out, "width", 250)  # no folding inside the paths we look for
    code = main(["incident", "contain", "INC-0001", "--home", str(tmp_path), "--instance-url", fake.url, "--by", "alice"])
    assert code == 0
    assert fake.requests == []
    text = capsys.readouterr().out
    assert "DRY RUN" in text and "nothing was sent" in text
    for call in ("/services/oauth2/revoke", "sobjects/AuthSession/{Id}", "sobjects/UserLogin/{Id}", "OauthToken", "Block"):
        assert call in text
    assert HELD not in text  # a held token is never printed
    journal = store.require("INC-0001").journal
    plan = [j for j in journal if j.action == "contain.plan"]
    assert plan and plan[0].result == "dry-run" and plan[0].who == "alice"
    assert [s["key"] for s in plan[0].detail["plan"]["steps"]] == ["evidence", "block_app", "revoke_tokens", "end_sessions",
                                                                   "freeze_users", "rotate_credentials"]
    assert HELD not in json.dumps(plan[0].detail)


def test_plan_queries_app_names_and_ids_apart(store: IncidentStore) -> None:
    store.observe("INC-0001", "alice", Observables(apps=[APP_ID]), Observables())
    plan = build_plan(store.require("INC-0001"), "https://acme.my.salesforce.com", "v61.0")
    tokens_query = plan.steps[0].calls[1].body
    assert f"AppName IN ('{APP}')" in tokens_query and f"AppMenuItemId IN ('{APP_ID}')" in tokens_query
    assert plan.api_version == "61.0" and plan.steps[3].calls[0].path == "/services/data/v61.0/sobjects/AuthSession/{Id}"


def test_execute_runs_steps_in_order_verifies_and_journals(fake: FakeSalesforce, store: IncidentStore) -> None:
    inc = store.require("INC-0001")
    with _client(fake) as client:
        results = execute(build_plan(inc, fake.url, "62.0"), client, store, "alice")
    assert [(r.key, r.status) for r in results] == [
        ("evidence", "verified"), ("block_app", "pending"), ("revoke_tokens", "verified"), ("end_sessions", "verified"),
        ("freeze_users", "verified"), ("rotate_credentials", "listed")]
    calls = fake.calls()
    mutating = [c for c in calls if not c.startswith("GET")]
    # order: revoke (3 DeleteTokens: victim's two grants and the bystander's grant of the attacker app, then the
    # held token), then the sessions (victim's two and the bystander's one from the attacker's IP), then freeze
    assert mutating[:4] == ["POST /services/oauth2/revoke"] * 4
    assert [c.split("/")[2] if c.startswith("DELETE") else c for c in mutating[4:7]] == ["AuthSession"] * 3
    assert mutating[7:] == [f"PATCH /sobjects/UserLogin/{next(iter(k for k, v in fake.org.user_logins.items() if v['UserId'] == VICTIM_ID))}"]
    assert calls.index("GET query:User") < calls.index("GET query:ConnectedApplication") < calls.index("POST /services/oauth2/revoke")
    # each mutating step is followed by its verification query
    last_revoke = max(i for i, c in enumerate(calls) if c == "POST /services/oauth2/revoke")
    assert calls[last_revoke + 1] == "GET query:OauthToken"
    last_delete = max(i for i, c in enumerate(calls) if c.startswith("DELETE"))
    assert calls[last_delete + 1] == "GET query:AuthSession"
    assert calls[-1] == "GET query:UserLogin"
    revokes = [r.body for r in fake.requests if r.call == "POST /services/oauth2/revoke"]
    assert revokes[-1] == f"token={HELD.replace('!', '%21')}"
    # the org's state afterwards
    assert [t["UserId"] + " " + t["AppName"] for t in fake.org.tokens] == [f"{BYSTANDER_ID} Salesforce for iOS"]
    assert [s["UsersId"] for s in fake.org.sessions.values()] == [BYSTANDER_ID]
    assert {v["UserId"] for v in fake.org.user_logins.values() if v["IsFrozen"]} == {VICTIM_ID}
    # journal: one entry per step with calls and HTTP statuses; no secret in clear
    journal = [j for j in store.require("INC-0001").journal if j.action.startswith("contain.")]
    assert [(j.action, j.result) for j in journal] == [
        ("contain.evidence", "verified"), ("contain.block_app", "pending"), ("contain.revoke_tokens", "verified"),
        ("contain.end_sessions", "verified"), ("contain.freeze_users", "verified"), ("contain.rotate_credentials", "listed")]
    revoke = journal[2].detail
    assert revoke["revoked"] == 3 and revoke["left"] == 0 and {c["status"] for c in revoke["calls"]} == {200}
    assert all(c["status"] == 204 for c in journal[3].detail["calls"])
    dumped = json.dumps([j.detail for j in journal])
    assert HELD not in dumped and "dt-0CQ" not in dumped
    # evidence files with their SHA-256 in the journal; DeleteTokens hashed
    files = journal[0].detail["files"]
    assert {Path(p).name for p in files} >= {"oauth_tokens.json", "auth_sessions.json", "user_logins.json", "users.json",
                                             "connected_apps.json", "incident.json"}
    tokens_doc = json.loads(Path(next(p for p in files if p.endswith("oauth_tokens.json"))).read_text())
    assert len(tokens_doc["records"]) == 3 and all(t["DeleteToken"].startswith("sha256:") for t in tokens_doc["records"])
    rotation = json.loads((store.folder("INC-0001") / "rotation.json").read_text())
    assert {r["what"] for r in rotation} >= {"password", "consumer secret", "OAuth token"}
    assert journal[1].detail["instructions"] and "Connected Apps OAuth Usage" in journal[1].detail["instructions"][0]


def test_failed_step_stops_then_rerun_finishes_without_redoing(fake: FakeSalesforce, store: IncidentStore) -> None:
    fake.fail("DELETE", "AuthSession", 500, times=10)  # more than the retries: the step fails
    plan = build_plan(store.require("INC-0001"), fake.url, "62.0")
    with _client(fake, retries=2) as client:
        first = execute(plan, client, store, "alice")
    assert [(r.key, r.status) for r in first] == [
        ("evidence", "verified"), ("block_app", "pending"), ("revoke_tokens", "verified"), ("end_sessions", "failed"),
        ("freeze_users", "not run"), ("rotate_credentials", "not run")]
    assert "session(s) still open" in (first[3].error or "") and "HTTP 500" in (first[3].error or "")
    assert not any(c.startswith("PATCH") for c in fake.calls())
    failed = [j for j in store.require("INC-0001").journal if j.action == "contain.end_sessions"]
    assert failed[-1].result == "failed" and {c["status"] for c in failed[-1].detail["calls"]} == {500}

    fake.failures.clear()
    fake.requests.clear()
    # the admin blocks the app by hand in Setup meanwhile
    fake.org.apps[APP_ID]["OptionsAllowAdminApprovedUsersOnly"] = True
    with _client(fake) as client:
        second = execute(plan, client, store, "alice")
    assert [(r.key, r.status) for r in second] == [
        ("evidence", "skipped"), ("block_app", "verified"), ("revoke_tokens", "skipped"), ("end_sessions", "verified"),
        ("freeze_users", "verified"), ("rotate_credentials", "listed")]
    calls = fake.calls()
    assert "POST /services/oauth2/revoke" not in calls and "GET query:OauthToken" not in calls
    assert sum(c.startswith("DELETE") for c in calls) == 3 and sum(c.startswith("PATCH") for c in calls) == 1


def test_failed_call_but_target_state_reached_counts_as_done(fake: FakeSalesforce, store: IncidentStore) -> None:
    # the sessions are deleted but every answer is lost (502 from a proxy): the re-query decides
    fake.fail("DELETE", "AuthSession", 502, times=100, apply=True)
    with _client(fake, retries=1) as client:
        results = execute(build_plan(store.require("INC-0001"), fake.url, "62.0"), client, store, "alice")
    assert dict((r.key, r.status) for r in results)["end_sessions"] == "verified"
    assert dict((r.key, r.status) for r in results)["freeze_users"] == "verified"  # the run went on
    sessions = next(r for r in results if r.key == "end_sessions")
    assert {c["status"] for c in sessions.calls} == {502} and sessions.detail["left"] == 0
    assert not [s for s in fake.org.sessions.values() if s["UsersId"] == VICTIM_ID]


def test_users_already_frozen_are_not_patched(fake: FakeSalesforce, store: IncidentStore) -> None:
    plan = build_plan(store.require("INC-0001"), fake.url, "62.0")
    with _client(fake, retries=0) as client:
        execute(plan, client, store, "alice")
        fake.org.user_logins = {k: {**v, "IsFrozen": True} for k, v in fake.org.user_logins.items()}
        fake.fail("PATCH", "UserLogin", 500, times=5)
        # a new plan (other targets) re-runs everything; the users are already frozen: no PATCH, already done
        store.observe("INC-0001", "alice", Observables(users=[HELPDESK_ID]), Observables())
        fake.requests.clear()
        again = execute(build_plan(store.require("INC-0001"), fake.url, "62.0"), client, store, "alice")
    assert dict((r.key, r.status) for r in again)["freeze_users"] == "already done"
    assert dict((r.key, r.status) for r in again)["evidence"] == "verified"  # new targets: evidence taken again
    assert not [c for c in fake.calls() if c.startswith("PATCH")]


def test_retries_5xx_and_429_then_succeeds(fake: FakeSalesforce) -> None:
    slept: list[float] = []
    fake.fail("GET", "FROM User", 503, times=1)
    fake.fail("GET", "FROM User", 429, times=1, retry_after="2")
    with SalesforceClient(fake.url, TOKEN, backoff=0.5, retries=3, sleep=slept.append) as client:
        rows = client.query(f"SELECT Id, Username FROM User WHERE Username IN ('{VICTIM}')")
    assert rows == [{"Id": VICTIM_ID, "Username": VICTIM}]
    assert slept == [0.5, 2.0]  # backoff, then the server's Retry-After
    assert fake.calls() == ["GET query:User"] * 3


def test_refused_token_is_a_clear_error_naming_the_call(fake: FakeSalesforce, store: IncidentStore, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with _client(fake, token="expired") as client, pytest.raises(SalesforceApiError) as exc:
        client.query("SELECT Id FROM User")
    assert exc.value.status == 401 and "GET /services/data/v62.0/query" in str(exc.value)
    assert "access token was refused" in str(exc.value)
    monkeypatch.setenv("SF_TOKEN", "expired")
    code = main(["incident", "contain", "INC-0001", "--home", str(tmp_path), "--instance-url", fake.url, "--execute",
                 "--token-env", "SF_TOKEN"])
    assert code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "containment stopped" in err and "access token was refused" in err and "HTTP 401" in err
    assert fake.calls() == ["GET query:User", "GET query:User"]  # 401 is not retried
    journal = store.require("INC-0001").journal
    assert [(j.action, j.result) for j in journal if j.action.startswith("contain.")][0] == ("contain.evidence", "failed")


def test_missing_token_names_the_variable(fake: FakeSalesforce, store: IncidentStore, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("SF_NOPE", raising=False)
    code = main(["incident", "contain", "INC-0001", "--home", str(tmp_path), "--instance-url", fake.url, "--execute",
                 "--token-env", "SF_NOPE"])
    assert code == 1 and "SF_NOPE" in capsys.readouterr().err
    assert fake.requests == []


def test_execute_through_the_cli_with_a_token_file(fake: FakeSalesforce, store: IncidentStore, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    code = main(["incident", "contain", "INC-0001", "--home", str(tmp_path), "--instance-url", fake.url, "--execute",
                 "--token-file", str(token_file), "--json", "--by", "bob"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] is False and [s["status"] for s in doc["steps"]] == [
        "verified", "pending", "verified", "verified", "verified", "listed"]
    assert TOKEN not in json.dumps(doc)
