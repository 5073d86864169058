"""From simulated logs to customers' inboxes: simulate, ingest, open an incident from a labelled
campaign, set the controller, scope it against the CRM export (the incidents module's real
``affected_customers.parquet``), then `crmguard notify send` to a real SMTP server on localhost."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from notify_fixtures import SUBJECT_MARKER, smtp_server

from crmguard.cli import EXIT_OK, main
from crmguard.response.notices import NoticeRenderer, choose_language

pytestmark = pytest.mark.integration


def test_scoped_customers_each_get_one_notice_naming_their_exposed_fields(tmp_path: Path, capsys) -> None:
    logs, home = tmp_path / "logs", tmp_path / "home"
    assert main(["simulate", "--out", str(logs), "--users", "40", "--days", "2", "--seed", "3",
                 "--campaign", "insider"]) == EXIT_OK
    assert main(["ingest", "--home", str(home), str(logs / "salesforce"), str(logs / "okta")]) == EXIT_OK
    [campaign] = json.loads((logs / "labels.json").read_text())["campaigns"]
    args = ["incident", "open", "--home", str(home), "--by", "tester", "--json", "--title", "insider export",
            "--since", campaign["start"], "--until", campaign["end"]]
    for actor in campaign["actors"]:
        args += ["--actor", actor["username"]]
    capsys.readouterr()
    assert main(args) == EXIT_OK
    incident_id = json.loads(capsys.readouterr().out)["id"]
    assert main(["incident", "controller", incident_id, "--home", str(home), "--name", "Maison Exemple SA",
                 "--contact-email", "privacy@maison-exemple.com", "--dpo-email", "dpo@maison-exemple.com",
                 "--phone", "+33 1 40 00 00 00"]) == EXIT_OK
    assert main(["incident", "scope", incident_id, "--home", str(home), "--customers",
                 str(logs / "crm" / "customers.csv")]) == EXIT_OK
    assert main(["incident", "decide", incident_id, "--home", str(home), "--notify", "--audience", "subjects",
                 "--by", "dpo"]) == EXIT_OK
    affected = pq.read_table(home / "incidents" / incident_id / "affected_customers.parquet").to_pylist()
    reachable = {r["email"].lower(): r for r in affected if r["email"]}
    assert reachable, "the campaign touched customers with an e-mail address"

    with smtp_server(tmp_path) as (server, port):
        assert main(["notify", "send", incident_id, "--home", str(home), "--smtp", f"127.0.0.1:{port}",
                     "--rate", "0"]) == EXIT_OK  # From: the controller's contact point
        got = server.received
    assert sorted(r.lower() for r in got.recipients) == sorted(reachable)
    renderer = NoticeRenderer()
    for i, rcpt in enumerate(got.recipients):
        customer = reachable[rcpt.lower()]
        msg = got.parsed(i)
        want = choose_language(customer["language"], customer["country"], renderer.languages)
        assert msg["Content-Language"] == want and SUBJECT_MARKER[want] in msg["Subject"]
        assert msg["From"] == "privacy@maison-exemple.com"
        body = msg.get_body(("plain",)).get_content()
        for label in renderer.fields(customer["fields_exposed"], want):
            assert label in body, (want, label)

    capsys.readouterr()
    assert main(["incident", "show", incident_id, "--home", str(home), "--json"]) == EXIT_OK
    journal = json.loads(capsys.readouterr().out)["journal"]
    finished = [j for j in journal if j["action"] == "notify send finished"]
    assert finished and finished[-1]["result"] == "complete"
    assert finished[-1]["detail"]["delivered"] == len(reachable)
