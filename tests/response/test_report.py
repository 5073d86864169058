"""The GDPR Art. 33 report (snapshots of Markdown and HTML, fixed clock and data), its phases and
late filing, and the append-only Art. 33(5) breach register with decisions not to notify.

Refresh the snapshots after an intended change with:
    CRMGUARD_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/response/test_report.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from pathlib import Path

import pytest

from crmguard.cli import EXIT_OK, main
from crmguard.errors import ResponseError
from crmguard.ingest import ingest
from crmguard.lake import Lake
from crmguard.response.incidents import Controller, IncidentStore, Observables
from crmguard.response.register import BreachRegister
from crmguard.response.report import decide, file_report
from crmguard.response.scope import scope_incident

SNAPSHOTS = Path(__file__).parent / "snapshots"
T0 = dt.datetime(2025, 3, 4, 12, 0, tzinfo=dt.UTC)
USER = "0055j000000utlPAAQ"
CUSTOMERS = """Id,FirstName,LastName,Email,Phone,MailingStreet,MailingCity,MailingPostalCode,MailingCountry,Brand,Language,TotalSpend
0035j0000000APCAA2,Claire,Martin,claire.martin@example.fr,+33 6 12 34 56 78,12 rue de Rivoli,Paris,75001,France,Maison Darcy,FR,86000.00
0035j0000000APFAA2,Yuki,Sato,yuki.sato@example.jp,+81 90 1234 5678,1-2-3 Ginza,Tokyo,104-0061,Japan,Sable et Or,ja,12500.50
0035j0000000APGAA2,John,Smith,john.smith@example.com,+1 212 555 0100,5 Fifth Avenue,New York,10001,United States,Belmonte,en,980.00
0035j0000000APHAA2,Giulia,Rossi,giulia.rossi@example.it,+39 333 123 4567,Via Montenapoleone 8,Milano,20121,Italy,Belmonte,it,450.00
0035j0000000APIAA2,Paul,Durand,paul.durand@example.fr,+33 6 98 76 54 32,3 avenue Montaigne,Paris,75008,France,Maison Darcy,fr,300.00
"""


def _records(*ids: str) -> str:
    return json.dumps({"totalSize": len(ids), "done": True,
                       "records": [{"attributes": {"type": "Contact"}, "Id": i} for i in ids]})


def _world(tmp_path: Path) -> tuple[Path, Path]:
    """Two SOQL pages returning three named customers (ApiEvent Records) and a Bulk API job over
    Account that logs only a row count: exact ids plus a bracketed estimate."""
    logs = tmp_path / "logs"
    logs.mkdir()
    base = {"attributes": {"type": "ApiEvent"}, "Username": "ana@example.com", "UserId": USER, "SessionKey": "s1",
            "SourceIp": "185.220.101.1", "QueriedEntities": "Contact", "ConnectedAppId": "0H45j00000000zBCAQ",
            "Query": "SELECT Id, FirstName, LastName, Email, Phone, Total_Spend__c FROM Contact"}
    pages = [("2025-03-04T02:10:00.000+0000", "e1", "Query", ["0035j0000000APCAA2", "0035j0000000APFAA2"]),
             ("2025-03-04T02:11:00.000+0000", "e2", "QueryMore", ["0035j0000000APGAA2"])]
    (logs / "ApiEvent.ndjson").write_text("".join(json.dumps({
        **base, "EventDate": at, "EventIdentifier": eid, "Operation": op, "RowsProcessed": len(ids),
        "Records": _records(*ids)}) + "\n" for at, eid, op, ids in pages))
    (logs / "BulkApi2.csv").write_text(
        '"EVENT_TYPE","TIMESTAMP","REQUEST_ID","ORGANIZATION_ID","USER_ID","URI","SESSION_KEY","JOB_ID","ENTITY_TYPE",'
        '"OPERATION_TYPE","ROWS_PROCESSED","CLIENT_IP","USER_ID_DERIVED","TIMESTAMP_DERIVED"\n'
        '"BulkApi2","20250304021500.000","r1","00D5j0000000i98","0055j000000utlP",'
        '"/services/data/v60.0/jobs/query/7505j0000008OI4/results?maxRecords=50000","s2","7505j0000008OI4","Account",'
        f'"query","2","185.220.101.1","{USER}","2025-03-04T02:15:00.000Z"\n')
    summary = ingest([str(logs / "ApiEvent.ndjson"), str(logs / "BulkApi2.csv")], Lake(tmp_path / "lake"))
    assert summary.total.stored == 3 and not summary.failed
    (tmp_path / "customers.csv").write_text(CUSTOMERS)
    return tmp_path / "lake", tmp_path / "customers.csv"


def _incident(tmp_path: Path, now: dt.datetime) -> tuple[IncidentStore, BreachRegister, str]:
    lake, customers = _world(tmp_path)
    store = IncidentStore(tmp_path / "state.db", tmp_path / "incidents", now=now)
    register = BreachRegister(tmp_path / "state.db", now=now)
    inc = store.open(title="Customer records read through a stolen session", who="alice",
                     observables=Observables(users=["ana@example.com"], ips=["185.220.101.1"], apps=["0H45j00000000zBCAQ"]),
                     breach_start=dt.datetime(2025, 3, 4, 2, 10, tzinfo=dt.UTC),
                     breach_end=dt.datetime(2025, 3, 4, 2, 15, tzinfo=dt.UTC),
                     detected_at=dt.datetime(2025, 3, 4, 3, 0, tzinfo=dt.UTC),
                     controller=Controller(name="Valmont & Fils SA", contact_email="privacy@valmont.example",
                                           dpo_email="dpo@valmont.example", phone="+33 1 23 45 67 89"))
    store.aware(inc.id, "DPO Jane Roe", dt.datetime(2025, 3, 4, 9, 0, tzinfo=dt.UTC))
    store.add_task(inc.id, "bob", "Revoke the connected app's tokens", owner="bob")
    store.add_task(inc.id, "bob", "Reset ana's password and MFA factors", owner="carol")
    store.set_task(inc.id, "carol", 2, "done")
    result = scope_incident(store.require(inc.id), Lake(lake), customers, store.folder(inc.id), now)
    store.journal(inc.id, "scope", "alice", "ok", {"customers": result.summary["customers"]})
    return store, register, inc.id


def _snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("CRMGUARD_UPDATE_SNAPSHOTS"):
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_report_snapshots_initial_md_and_complementary_html(tmp_path: Path) -> None:
    store, register, iid = _incident(tmp_path, T0)
    path, ctx, entry = file_report(store, register, iid, "initial", "md", "DPO Jane Roe")
    assert entry is not None and entry.phase == "initial" and not entry.late
    _snapshot("report-initial.md", path.read_text())
    # Scope: 3 customers by id, the bulk job's 2 Account rows could be anyone else: 3–5 customers.
    assert ctx["scope"]["customers"] | {"estimate_reasons": []} == {
        "export_customers": 5, "exact": 3, "lower": 3, "upper": 5, "candidates": 2, "unmapped_account_ids": 0,
        "is_estimate": True, "estimate_reasons": []}
    later = IncidentStore(tmp_path / "state.db", tmp_path / "incidents", now=T0 + dt.timedelta(days=2))
    path, ctx, entry = file_report(later, BreachRegister(tmp_path / "state.db", now=T0 + dt.timedelta(days=2)), iid,
                                   "complementary", "html", "DPO Jane Roe", proposed=["Offer affected customers a dedicated hotline."])
    assert entry is not None and entry.seq == 2
    html = path.read_text()
    _snapshot("report-complementary.html", html)
    assert "@page" in html and "@media print" in html  # print-ready
    assert "http://" not in html and "https://" not in html and "<link" not in html and "<script" not in html  # no external assets
    assert "claire.martin@example.fr" not in html and "Claire" not in html  # counts only, no customer PII


def test_late_initial_report_needs_its_reasons(tmp_path: Path) -> None:
    late = T0 + dt.timedelta(hours=80)  # aware 2025-03-04T09:00Z + 72 h = 2025-03-07T09:00Z; this is past it
    store, register, iid = _incident(tmp_path, late)
    with pytest.raises(ResponseError, match="file the initial report of INC-0001 first"):
        file_report(store, register, iid, "complementary", "md", "DPO Jane Roe")
    with pytest.raises(ResponseError, match="72 h deadline"):
        file_report(store, register, iid, "initial", "md", "DPO Jane Roe")
    assert register.entries(iid) == []
    path, ctx, entry = file_report(store, register, iid, "initial", "md", "DPO Jane Roe",
                                   late_reason="The bulk job's scope needed the CRM export, received on day 3.")
    assert entry is not None and entry.late and entry.late_reason.startswith("The bulk job")  # type: ignore[union-attr]
    text = path.read_text()
    assert "**Late notification.**" in text and "received on day 3" in text
    journal = [(j.action, j.result) for j in store.require(iid).journal]
    assert ("report", "refused") in journal and journal[-1] == ("report", "ok")
    # A complementary report is not held to the 72 h clock.
    assert file_report(store, register, iid, "complementary", "md", "DPO Jane Roe")[2] is not None


def test_register_is_append_only_and_records_decisions_not_to_notify(tmp_path: Path) -> None:
    store, register, iid = _incident(tmp_path, T0)
    with pytest.raises(ResponseError, match="needs its reason"):
        decide(store, register, iid, "DPO Jane Roe", notify=False, reason=None, audience="subjects")
    entry = decide(store, register, iid, "DPO Jane Roe", notify=False, audience="subjects",
                   reason="Only names and spend of 3 customers; Art. 34(3)(b) measures make a high risk unlikely.")
    assert entry.kind == "decision" and entry.decision == "no-notify-subjects" and entry.effects["customers"]["exact"] == 3
    db = sqlite3.connect(tmp_path / "state.db")
    for sql in ("UPDATE breach_register SET reason = 'x'", "DELETE FROM breach_register"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(sql)
    db.close()
    assert [e.seq for e in register.entries()] == [entry.seq]
    assert [j.action for j in store.require(iid).journal][-2:] == ["decide", "decide"]  # refused, then ok


def test_cli_report_decide_register(tmp_path: Path, capsys) -> None:
    _store, _register, iid = _incident(tmp_path, T0)
    home, state = str(tmp_path), str(tmp_path / "state.db")
    out = tmp_path / "out" / "initial.html"
    assert main(["incident", "report", iid, "--home", home, "--state", state, "--phase", "initial", "--format", "html",
                 "--out", str(out), "--by", "dpo"]) != EXIT_OK  # the real clock is long past the 2025 deadline
    assert "--late-reason" in " ".join(capsys.readouterr().err.split())
    assert main(["incident", "report", iid, "--home", home, "--state", state, "--phase", "initial", "--format", "html",
                 "--out", str(out), "--by", "dpo", "--late-reason", "test data from 2025"]) == EXIT_OK
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["incident", "report", iid, "--home", home, "--state", state, "--phase", "initial", "--draft"]) == EXIT_OK
    assert (tmp_path / "incidents" / iid / "report-initial-draft.md").is_file()
    assert main(["incident", "decide", iid, "--home", home, "--state", state, "--no-notify"]) != EXIT_OK
    assert main(["incident", "decide", iid, "--home", home, "--state", state, "--no-notify", "--audience", "subjects",
                 "--reason", "low risk", "--by", "dpo"]) == EXIT_OK
    capsys.readouterr()
    assert main(["incident", "register", "--home", home, "--state", state, "--json"]) == EXIT_OK
    entries = json.loads(capsys.readouterr().out)
    assert [(e["kind"], e["phase"], e["decision"]) for e in entries] == [("report", "initial", None),
                                                                          ("decision", None, "no-notify-subjects")]
    assert entries[0]["document"] == str(out) and len(entries[0]["document_sha256"]) == 64
    assert main(["incident", "register", "--home", home, "--state", state]) == EXIT_OK
    assert "breach register: 2 entries" in capsys.readouterr().out


def test_report_before_awareness_and_scope(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "state.db", tmp_path / "incidents", now=T0)
    register = BreachRegister(tmp_path / "state.db", now=T0)
    inc = store.open(title="Suspicious export", who="alice", observables=Observables(users=["ana@example.com"]),
                     breach_start=None, breach_end=None, detected_at=T0, controller=Controller())
    with pytest.raises(ResponseError, match="record awareness first"):
        file_report(store, register, inc.id, "initial", "md", "alice")
    path, ctx, entry = file_report(store, register, inc.id, "initial", "md", "alice", draft=True)
    text = path.read_text()
    assert entry is None and register.entries() == [] and path.name == "report-initial-draft.md"
    assert "have not been scoped yet" in text and "To be determined." in text and "not yet recorded" in text
    assert "**Contact point incomplete:** name, contact_email, dpo_email, phone" in text
    assert [(j.action, j.result) for j in store.require(inc.id).journal] == [("open", "ok"), ("report", "refused"),
                                                                             ("report_draft", "ok")]
