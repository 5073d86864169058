"""Incidents: clocks, journal (append-only), observables, tasks, timeline, incident.json / CSV export,
and opening from a stored alert through the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from crmguard.alerts.store import Store
from crmguard.cli import EXIT_OK, main
from crmguard.errors import ResponseError
from crmguard.response.incidents import PLACEHOLDER, Controller, IncidentStore, Observables

T0 = dt.datetime(2025, 3, 4, 8, 0, tzinfo=dt.UTC)
CONTRACT_KEYS = {"id", "title", "status", "breach_start", "breach_end", "detected_at", "aware_at", "deadline",
                 "controller", "observables"}


def _store(tmp_path: Path, now: dt.datetime = T0) -> IncidentStore:
    return IncidentStore(tmp_path / "state.db", tmp_path / "incidents", now=now)


def _open(store: IncidentStore) -> str:
    inc = store.open(title="Bulk read", who="alice", observables=Observables(users=["ana@example.com"], ips=["185.220.101.1"]),
                     breach_start=T0 - dt.timedelta(hours=5), breach_end=T0 - dt.timedelta(hours=1),
                     detected_at=T0 - dt.timedelta(minutes=30), controller=Controller(name="Valmont & Fils SA"))
    return inc.id


def test_clocks_deadline_and_awareness_is_recorded_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    iid = _open(store)
    inc = store.require(iid)
    assert iid == "INC-0001" and inc.aware_at is None and inc.deadline is None
    assert inc.breach_start == "2025-03-04T03:00:00Z" and inc.detected_at == "2025-03-04T07:30:00Z"
    aware = dt.datetime(2025, 3, 4, 10, 15, tzinfo=dt.UTC)
    inc = store.aware(iid, "DPO Jane", aware)
    assert inc.aware_at == "2025-03-04T10:15:00Z" and inc.aware_by == "DPO Jane"
    assert inc.deadline == "2025-03-07T10:15:00Z"  # aware + 72 h
    assert not inc.late(dt.datetime(2025, 3, 7, 10, 15, tzinfo=dt.UTC))
    assert inc.late(dt.datetime(2025, 3, 7, 10, 16, tzinfo=dt.UTC))
    with pytest.raises(ResponseError, match="already recorded"):
        store.aware(iid, "someone else")
    journal = store.require(iid).journal
    assert [(j.action, j.who, j.result) for j in journal] == [("open", "alice", "ok"), ("aware", "DPO Jane", "ok"),
                                                               ("aware", "someone else", "refused")]
    assert any("72 h clock starts" in t.what for t in store.require(iid).timeline)


def test_journal_is_append_only(tmp_path: Path) -> None:
    store = _store(tmp_path)
    iid = _open(store)
    store.journal(iid, "notify.send", "notifier", "ok", {"sent": 3})
    db = sqlite3.connect(tmp_path / "state.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE incident_journal SET who = 'mallory'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM incident_journal")
    db.close()
    assert [j.action for j in store.require(iid).journal] == ["open", "notify.send"]


def test_observables_tasks_notes_and_exports(tmp_path: Path) -> None:
    store = _store(tmp_path)
    iid = _open(store)
    store.observe(iid, "bob", Observables(ips=["95.216.30.179"], apps=["Data Loader"]), Observables(ips=["185.220.101.1"]))
    task = store.add_task(iid, "bob", "Revoke the app's tokens", owner="carol")
    store.set_task(iid, "carol", task.number, "done")
    with pytest.raises(ResponseError, match="no task 9"):
        store.set_task(iid, "carol", 9, "done")
    store.note(iid, "bob", "Attacker app removed", T0)
    paths = store.export(iid, csv_tables=True)
    assert {p.name for p in paths} == {"incident.json", "observables.csv", "tasks.csv", "timeline.csv", "journal.csv"}
    doc = json.loads((tmp_path / "incidents" / iid / "incident.json").read_text())
    assert CONTRACT_KEYS <= set(doc)
    assert doc["observables"] == {"users": ["ana@example.com"], "ips": ["95.216.30.179"], "apps": ["Data Loader"],
                                  "tokens": []}
    assert doc["controller"] == {"name": "Valmont & Fils SA", "contact_email": PLACEHOLDER, "dpo_email": PLACEHOLDER,
                                 "phone": PLACEHOLDER}
    assert doc["tasks"][0]["status"] == "done" and doc["tasks"][0]["owner"] == "carol"
    journal = list(csv.DictReader((tmp_path / "incidents" / iid / "journal.csv").read_text().splitlines()))
    assert [j["action"] for j in journal] == ["open", "observe", "task_add", "task_done", "note"]
    assert json.loads(journal[1]["detail"])["removed"]["ips"] == ["185.220.101.1"]
    timeline = list(csv.DictReader((tmp_path / "incidents" / iid / "timeline.csv").read_text().splitlines()))
    assert timeline[0]["what"].startswith("breach start") and any(t["what"] == "Attacker app removed" for t in timeline)


def test_open_from_alert_takes_actor_window_ips_apps_and_detection_time(tmp_path: Path, capsys) -> None:
    home = str(tmp_path / "home")
    log = tmp_path / "ApiEvent.ndjson"
    base = {"attributes": {"type": "ApiEvent"}, "Username": "ana@example.com", "UserId": "0055j000000utlPAAQ",
            "Operation": "Query", "SourceIp": "81.2.69.142", "QueriedEntities": "Contact", "RowsProcessed": 2,
            "ConnectedAppId": "0H45j00000000zBCAQ", "Query": "SELECT Id, Email FROM Contact"}
    log.write_text("\n".join(json.dumps({**base, "EventDate": f"2025-03-04T08:0{i}:00.000+0000", "EventIdentifier": f"x{i}"})
                             for i in range(3)) + "\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yml").write_text("""title: Contact query
id: 5e0c0a52-1b7e-4c3d-9e55-7a2b4c6d8e02
name: contact_query
logsource: {product: salesforce}
level: high
detection:
  sel: {action: query, object: Contact}
  condition: sel
""")
    assert main(["ingest", "--home", home, str(log)]) == EXIT_OK
    capsys.readouterr()
    assert main(["detect", "--home", home, "--rules", str(rules), "--json"]) == EXIT_OK
    [alert] = [a for a in json.loads(capsys.readouterr().out) if a["rule_id"] == "5e0c0a52-1b7e-4c3d-9e55-7a2b4c6d8e02"]
    assert main(["incident", "open", "--home", home, "--from-alert", alert["id"][:10], "--by", "alice", "--json"]) == EXIT_OK
    inc = json.loads(capsys.readouterr().out)
    assert inc["title"] == "Contact query" and inc["source_alert"] == alert["id"]
    assert inc["observables"]["users"] == ["ana@example.com"] and inc["observables"]["ips"] == ["81.2.69.142"]
    assert "0H45j00000000zBCAQ" in inc["observables"]["apps"]
    assert inc["breach_start"] == "2025-03-04T08:00:00Z" and inc["breach_end"] == "2025-03-04T08:02:00Z"
    stored = Store(Path(home) / "state.db")
    created = stored.get(alert["id"])["created_at"]  # type: ignore[index]
    stored.close()
    assert inc["detected_at"] == created
    assert inc["aware_at"] is None and inc["journal"][0]["who"] == "alice"
    assert json.loads((Path(home) / "incidents" / inc["id"] / "incident.json").read_text())["id"] == inc["id"]
    assert main(["incident", "aware", inc["id"], "--home", home, "--by", "DPO", "--at", "2025-03-05T09:00:00Z"]) == EXIT_OK
    assert "regulator deadline" in capsys.readouterr().out
    assert main(["incident", "show", inc["id"], "--home", home, "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["deadline"] == "2025-03-08T09:00:00Z"
    assert main(["incident", "list", "--home", home, "--json"]) == EXIT_OK
    assert [i["id"] for i in json.loads(capsys.readouterr().out)] == [inc["id"]]
    assert main(["incident", "show", "INC-9999", "--home", home]) != EXIT_OK
    assert main(["incident", "open", "--home", home, "--from-alert", "nosuch"]) != EXIT_OK


def test_cli_case_commands_journal_who_acted(tmp_path: Path, capsys) -> None:
    home = str(tmp_path)
    assert main(["incident", "open", "--home", home, "--actor", "ana@example.com", "--since", "2025-03-04",
                 "--until", "2025-03-05", "--ip", "185.220.101.1", "--by", "alice", "--controller-name", "Valmont SA"]) == EXIT_OK
    assert "no events of these actors" in " ".join(capsys.readouterr().err.split())  # empty lake: window unknown, said so
    for args in (["observe", "INC-0001", "--ip", "95.216.30.179", "--app", "Data Loader"],
                 ["observe", "INC-0001", "--ip", "185.220.101.1", "--remove"],
                 ["controller", "INC-0001", "--contact-email", "privacy@valmont.example"],
                 ["task", "add", "INC-0001", "Revoke tokens", "--owner", "bob"],
                 ["task", "done", "INC-0001", "1"],
                 ["note", "INC-0001", "App removed", "--at", "2025-03-05T10:00:00Z"],
                 ["export", "INC-0001", "--csv"],
                 ["close", "INC-0001", "--reason", "false positive"]):
        by = [] if args[0] == "export" else ["--by", "bob"]  # export only writes files: not an action on the case
        assert main(["incident", *args, "--home", home, *by]) == EXIT_OK, args
    assert main(["incident", "scope", "INC-0001", "--home", home, "--customers", str(tmp_path / "none.csv"),
                 "--by", "bob"]) != EXIT_OK
    doc = json.loads((tmp_path / "incidents" / "INC-0001" / "incident.json").read_text())
    assert doc["status"] == "closed" and doc["observables"]["ips"] == ["95.216.30.179"]
    assert doc["controller"] == {"name": "Valmont SA", "contact_email": "privacy@valmont.example",
                                 "dpo_email": PLACEHOLDER, "phone": PLACEHOLDER}
    assert [(j["action"], j["who"]) for j in doc["journal"]] == [
        ("open", "alice"), ("observe", "bob"), ("observe", "bob"), ("controller", "bob"), ("task_add", "bob"),
        ("task_done", "bob"), ("note", "bob"), ("close", "bob"), ("scope", "bob")]
    assert doc["journal"][-1]["result"] == "failed" and "customer export not found" in doc["journal"][-1]["detail"]["error"]
    assert (tmp_path / "incidents" / "INC-0001" / "journal.csv").is_file()
