"""`crmguard alerts deliver` / `alerts outbox` end to end on the real detector's alerts: a simulated
vishing campaign is ingested and detected, then delivered to a webhook, Slack (with an actor
suppression window) and an OCSF file; nothing customer-identifying leaves, a re-run sends nothing."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import pytest

from crmguard.cli import EXIT_ERROR, EXIT_OK, main

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deliver_simulated_campaign_alerts_end_to_end(tmp_path: Path, receiver, capsys) -> None:
    home, sim = tmp_path / "home", tmp_path / "sim"
    assert main(["simulate", "--out", str(sim), "--users", "40", "--days", "1", "--seed", "3",
                 "--campaign", "vishing"]) == EXIT_OK
    assert main(["ingest", "--home", str(home), str(sim / "salesforce"), str(sim / "okta")]) == EXIT_OK
    assert main(["detect", "--home", str(home), "--json"]) == EXIT_OK
    capsys.readouterr()
    assert main(["alerts", "list", "--home", str(home), "--json"]) == EXIT_OK
    alerts = json.loads(capsys.readouterr().out)
    assert alerts, "the vishing campaign raises alerts"

    (home / "sinks.yml").write_text(f"""
sinks:
  - name: soc
    type: webhook
    url: {receiver.url}
  - name: slack
    type: slack
    url: {receiver.url.replace('/hook', '/slack')}
    suppress_actor_for: 30m
  - name: siem
    type: file
    path: findings.jsonl
""")
    assert main(["alerts", "deliver", "--home", str(home)]) == EXIT_OK
    summary = " ".join(capsys.readouterr().out.split())
    n = len(alerts)
    with_actor = [a for a in alerts if a["actor"]]
    actors = {a["actor"] for a in with_actor}
    suppressed = len(with_actor) - len(actors)
    assert f"enqueued {3 * n};" in summary
    assert f"delivered {3 * n - suppressed}, suppressed {suppressed}, failed 0" in summary
    assert "0 pending, 0 dead" in summary

    soc = [r for r in receiver.requests if r["path"] == "/hook"]
    slack = [r for r in receiver.requests if r["path"] == "/slack"]
    assert sorted(r["json"]["id"] for r in soc) == sorted(a["id"] for a in alerts)  # each exactly once
    assert all(r["headers"]["idempotency-key"] == f"{r['json']['id']}-v1" for r in soc)
    slack_actors = [r["json"]["blocks"][1]["fields"][1]["text"].split("\n")[1] for r in slack]
    assert sorted(a for a in slack_actors if a != "unknown identity") == sorted(actors)  # one per actor in 30 min
    findings = [json.loads(x) for x in (home / "findings.jsonl").read_text().splitlines()]
    assert sorted(f["finding_info"]["uid"] for f in findings) == sorted(a["id"] for a in alerts)
    assert all(f["class_uid"] == 2004 for f in findings)

    # customer PII and record ids never leave: not in any payload or finding
    sent = json.dumps([r["json"] for r in receiver.requests]) + (home / "findings.jsonl").read_text()
    with open(sim / "crm" / "customers.csv", newline="") as f:
        customers = list(csv.DictReader(f))
    for c in customers:
        for value in (c["Email"], c["Id"], c["Phone"]):
            assert not value or value not in sent
    assert any(a["record_ids"] for a in alerts)  # there were records to leak

    # a re-run finds nothing new to send
    assert main(["alerts", "deliver", "--home", str(home)]) == EXIT_OK
    assert "enqueued 0; delivered 0, suppressed 0" in " ".join(capsys.readouterr().out.split())
    assert main(["alerts", "outbox", "--home", str(home), "--json"]) == EXIT_OK
    counts = json.loads(capsys.readouterr().out)["counts"]
    assert counts["soc"] == {"pending": 0, "delivered": n, "suppressed": 0, "dead": 0}
    assert counts["slack"]["suppressed"] == suppressed

    # a sink that gives up: dead rows are listed loudly and can be requeued, never dropped
    (tmp_path / "down.yml").write_text(f"""
sinks:
  - name: down
    type: webhook
    url: http://127.0.0.1:{_closed_port()}/x
    retry: {{max_attempts: 1}}
""")
    assert main(["alerts", "deliver", "--home", str(home), "--sinks", str(tmp_path / "down.yml")]) == EXIT_ERROR
    captured = capsys.readouterr()
    assert "dead" in captured.err and "ConnectError" in captured.err
    assert main(["alerts", "outbox", "--home", str(home)]) == EXIT_ERROR
    out = " ".join(capsys.readouterr().out.split())
    assert "1 dead" in out and "ConnectError" in out
    assert main(["alerts", "outbox", "--home", str(home), "--retry-dead", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["counts"]["down"] == {"pending": n, "delivered": 0, "suppressed": 0, "dead": 0}


def test_deliver_without_sinks_file_says_where_to_look(tmp_path: Path, capsys) -> None:
    assert main(["alerts", "deliver", "--home", str(tmp_path)]) == EXIT_ERROR
    assert "sinks.yml" in capsys.readouterr().err
