"""From simulated logs to a contained org: simulate a vishing campaign, ingest, detect, open the
incident from the alert, print the containment plan (nothing sent), then ``--execute`` it against a
fake Salesforce seeded with the simulated org (its users, OAuth grants and the victim's sessions)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from crmguard.cli import EXIT_OK, main
from tests.response.fake_salesforce import TOKEN, FakeSalesforce, org_from_snapshot

pytestmark = pytest.mark.integration

AWS_KEY = "AKIAJ7Q2RS4TUV6WXY3Z"


def test_simulated_vishing_is_contained(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    logs, home = tmp_path / "logs", tmp_path / "home"
    assert main(["simulate", "--out", str(logs), "--users", "40", "--days", "2", "--seed", "3", "--campaign", "vishing"]) == EXIT_OK
    assert main(["ingest", "--home", str(home), str(logs / "salesforce"), str(logs / "okta")]) == EXIT_OK
    assert main(["detect", "--home", str(home)]) == EXIT_OK
    [campaign] = json.loads((logs / "labels.json").read_text())["campaigns"]
    victim = next(a for a in campaign["actors"] if a["kind"] == "compromised_user")
    attacker_app = campaign["attacker"]["apps"][0]
    capsys.readouterr()
    assert main(["alerts", "list", "--home", str(home), "--json"]) == EXIT_OK
    alerts = json.loads(capsys.readouterr().out)
    alert = next(a for a in alerts if a["actor"] == victim["username"]
                 and any(str(x)[:15] == attacker_app["id"][:15] for x in (a.get("context") or {}).get("apps") or []))
    assert main(["incident", "open", "--from-alert", alert["id"], "--home", str(home), "--json", "--by", "analyst"]) == EXIT_OK
    incident = json.loads(capsys.readouterr().out)
    iid = incident["id"]
    # The analyst keeps only the attacker's app: other apps in the alert are the victim's everyday tools,
    # whose grants of other users must not be revoked org-wide.
    for app in incident["observables"]["apps"]:
        if app[:15] != attacker_app["id"][:15] and app != attacker_app["name"]:
            assert main(["incident", "observe", iid, "--home", str(home), "--remove", "--app", app]) == EXIT_OK
    assert main(["incident", "observe", iid, "--home", str(home), "--app", attacker_app["name"]]) == EXIT_OK

    # exported Case text the attacker read, one with an access key pasted in by an agent
    cases = tmp_path / "cases.csv"
    case_ids = campaign["touched_record_ids"]["Case"][:2]
    with open(cases, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Id", "Subject", "Description"])
        w.writerow([case_ids[0], "Retour commande", "La cliente demande un retour, colis reçu abîmé."])
        w.writerow([case_ids[1], "Sync ERP", f"Clé d'accès du script de synchro : {AWS_KEY} (à changer)"])

    snapshot = json.loads((logs / "org" / "snapshot.json").read_text())
    org = org_from_snapshot(snapshot, sessions_per_user=1)
    for n, ip in enumerate(campaign["attacker"]["ips"]):
        org.sessions[f"0Ak5j0000000Att{n:03d}"] = {"Id": f"0Ak5j0000000Att{n:03d}", "UsersId": victim["user_id"],
                                                   "SourceIp": ip, "LoginType": "Remote Access 2.0", "SessionType": "Oauth2"}
    bystander_grants = [t for t in org.tokens if t["UserId"] != victim["user_id"] and t["AppName"] != attacker_app["name"]]
    with FakeSalesforce(org) as fake:
        capsys.readouterr()
        assert main(["incident", "contain", iid, "--home", str(home), "--instance-url", fake.url, "--records", str(cases)]) == EXIT_OK
        dry = capsys.readouterr().out
        assert fake.requests == [] and "DRY RUN" in dry
        monkeypatch.setenv("SF_ADMIN_TOKEN", TOKEN)
        assert main(["incident", "contain", iid, "--home", str(home), "--instance-url", fake.url, "--execute",
                     "--token-env", "SF_ADMIN_TOKEN", "--records", str(cases), "--by", "responder"]) == EXIT_OK
        out = capsys.readouterr()

        assert not [t for t in org.tokens if t["UserId"] == victim["user_id"] or t["AppName"] == attacker_app["name"]]
        assert org.tokens == bystander_grants  # nobody else's grants touched
        assert not [s for s in org.sessions.values() if s["UsersId"] == victim["user_id"]]
        assert len(org.sessions) == len(snapshot["users"]) - 1
        assert [v["UserId"] for v in org.user_logins.values() if v["IsFrozen"]] == [victim["user_id"]]
        assert not any(r.method in ("DELETE", "PATCH") and "OauthToken" in r.path for r in fake.requests)

    assert AWS_KEY not in out.out + out.err
    capsys.readouterr()
    assert main(["incident", "show", iid, "--home", str(home), "--json"]) == EXIT_OK
    journal = json.loads(capsys.readouterr().out)["journal"]
    contain = [(j["action"], j["result"], j["who"]) for j in journal if j["action"].startswith("contain.")]
    assert [c[:2] for c in contain] == [
        ("contain.plan", "dry-run"), ("contain.evidence", "verified"), ("contain.block_app", "pending"),
        ("contain.revoke_tokens", "verified"), ("contain.end_sessions", "verified"), ("contain.freeze_users", "verified"),
        ("contain.rotate_credentials", "listed")]
    assert all(c[2] == "responder" for c in contain[1:])
    rotation_text = (home / "incidents" / iid / "rotation.json").read_text()
    assert AWS_KEY not in rotation_text and AWS_KEY not in json.dumps(journal)
    rotation = json.loads(rotation_text)
    assert {"what": "password", "owner": victim["username"],
            "why": "account used in the incident; reset after unfreezing"} in rotation
    assert any(r["what"] == "consumer secret" and r["owner"] == attacker_app["name"] for r in rotation)
    [found] = [r for r in rotation if r["what"].startswith("secret in record")]
    assert found["owner"] == f"Case {case_ids[1]} Description" and "AKIA…(20 chars)" in found["why"]
