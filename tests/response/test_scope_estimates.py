"""Scoping on hand-made logs: each kind of row-count-only read becomes an estimate with its reason,
COUNT() queries expose nothing, other users and other IPs are left out, and an export with an
AccountId column maps Account ids to customers exactly."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow.parquet as pq

from crmguard.ingest import ingest
from crmguard.lake import Lake
from crmguard.response.incidents import Controller, IncidentStore, Observables
from crmguard.response.scope import ESTIMATE_REASONS, scope_incident

USER = "0055j000000utlPAAQ"
IP = "185.220.101.1"
C = ["0035j0000000APCAA2", "0035j0000000APFAA2", "0035j0000000APGAA2", "0035j0000000APHAA2"]
A = ["0015j0000000HdZAAU", "0015j0000000H5UAAU", "0015j0000000H6UAAU", "0015j0000000H7UAAU"]
HEADER = "Id,FirstName,LastName,Email,Phone,MailingStreet,MailingCity,MailingPostalCode,MailingCountry,Brand,Language,TotalSpend"


def _api(eid: str, minute: int, query: str, ids: list[str] | None, rows: int, user: str = "ana@example.com",
         ip: str = IP, session: str = "s1") -> str:
    doc = {"attributes": {"type": "ApiEvent"}, "EventDate": f"2025-03-04T02:{minute:02d}:00.000+0000",
           "EventIdentifier": eid, "Username": user, "UserId": USER if user == "ana@example.com" else "0055j000000utlQAAQ",
           "SessionKey": session, "SourceIp": ip, "Operation": "Query", "QueriedEntities": "Contact", "Query": query,
           "RowsProcessed": rows}
    if ids is not None:
        doc["Records"] = json.dumps({"totalSize": len(ids), "done": True,
                                     "records": [{"attributes": {"type": "Contact"}, "Id": i} for i in ids]})
    return json.dumps(doc) + "\n"


def _scope(tmp_path: Path, api_lines: list[str], elf_rows: list[str], export: str) -> dict:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "ApiEvent.ndjson").write_text("".join(api_lines))
    files = [str(logs / "ApiEvent.ndjson")]
    if elf_rows:
        (logs / "RestApi.csv").write_text(
            '"EVENT_TYPE","TIMESTAMP","REQUEST_ID","ORGANIZATION_ID","USER_ID","URI","SESSION_KEY","ENTITY_NAME","METHOD",'
            '"ROWS_PROCESSED","CLIENT_IP","USER_ID_DERIVED","TIMESTAMP_DERIVED"\n' + "".join(elf_rows))
        files.append(str(logs / "RestApi.csv"))
    assert not ingest(files, Lake(tmp_path / "lake")).failed
    (tmp_path / "customers.csv").write_text(export)
    now = dt.datetime(2025, 3, 5, tzinfo=dt.UTC)
    store = IncidentStore(tmp_path / "state.db", tmp_path / "incidents", now=now)
    inc = store.open(title="t", who="t", observables=Observables(users=["ana@example.com"], ips=[IP]),
                     breach_start=dt.datetime(2025, 3, 4, 2, 0, tzinfo=dt.UTC),
                     breach_end=dt.datetime(2025, 3, 4, 3, 0, tzinfo=dt.UTC), detected_at=now, controller=Controller())
    result = scope_incident(inc, Lake(tmp_path / "lake"), tmp_path / "customers.csv", store.folder(inc.id), now)
    store.close()
    rows = pq.read_table(result.parquet).to_pylist()
    return {"summary": result.summary, "rows": {r["customer_id"]: r for r in rows}}


def _export(with_account: bool) -> str:
    head = HEADER + (",AccountId" if with_account else "")
    lines = [f"{c},F{i},L{i},f{i}@example.com,+33 6 00 00 00 0{i},{i} rue X,Paris,7500{i},France,Maison Darcy,fr,{1000 * (i + 1)}.00"
             + (f",{A[i]}" if with_account else "") for i, c in enumerate(C)]
    return "\n".join([head, *lines]) + "\n"


def test_elf_only_queries_truncated_records_and_count_queries(tmp_path: Path) -> None:
    elf = ('"RestApi","20250304021000.000","r1","00D5j0000000i98","0055j000000utlP","/services/data/v60.0/query",'
           f'"s9","Contact","GET","3","{IP}","{USER}","2025-03-04T02:10:00.000Z"\n')
    got = _scope(tmp_path, [
        _api("e1", 5, "SELECT Id, Email FROM Contact", [C[0]], 3),           # Records lists 1 of 3 rows
        _api("e2", 6, "SELECT COUNT() FROM Contact", [], 4),                 # a count: rows are not records
        _api("e3", 7, "SELECT Id, Phone FROM Contact", [C[3]], 1, user="bob@example.com"),  # someone else
        _api("e4", 8, "SELECT Id, Phone FROM Contact", [C[2]], 1, ip="81.2.69.142"),      # not the attacker's IP
    ], [elf], _export(False))
    s = got["summary"]
    [contact] = s["tables"]["objects"]
    assert contact["records_exact"] == 1 and contact["records_lower"] == 3 and contact["records_upper"] == 4
    assert set(contact["estimate_reasons"]) == {ESTIMATE_REASONS["api_records"], ESTIMATE_REASONS["query"]}
    c = s["customers"]
    assert (c["exact"], c["lower"], c["upper"], c["candidates"]) == (1, 3, 4, 3) and c["is_estimate"]
    assert got["rows"][C[0]]["exact"] and got["rows"][C[0]]["fields_exposed"] == ["Email"]
    # Candidates: anyone else may be in the unnamed rows; an ELF-only read names no fields, so all are assumed.
    assert not got["rows"][C[1]]["exact"] and {"Email", "Phone", "MailingCity"} <= set(got["rows"][C[1]]["fields_exposed"])
    assert got["rows"][C[0]]["country"] == "FR" and got["rows"][C[0]]["language"] == "fr"


def test_export_with_account_ids_maps_account_reads_exactly(tmp_path: Path) -> None:
    account_query = json.dumps({"attributes": {"type": "ApiEvent"}, "EventDate": "2025-03-04T02:20:00.000+0000",
                                "EventIdentifier": "a1", "Username": "ana@example.com", "UserId": USER, "SessionKey": "s1",
                                "SourceIp": IP, "Operation": "Query", "QueriedEntities": "Account",
                                "Query": "SELECT Id, PersonEmail, BillingCity FROM Account", "RowsProcessed": 2,
                                "Records": json.dumps({"totalSize": 2, "done": True, "records": [
                                    {"attributes": {"type": "Account"}, "Id": A[1]},
                                    {"attributes": {"type": "Account"}, "Id": A[3]}]})}) + "\n"
    got = _scope(tmp_path, [_api("e1", 5, "SELECT Id, Email, Phone FROM Contact", [C[0], C[1]], 2), account_query],
                 [], _export(True))
    c = got["summary"]["customers"]
    assert (c["exact"], c["lower"], c["upper"], c["is_estimate"], c["unmapped_account_ids"]) == (3, 3, 3, False, 0)
    assert set(got["rows"]) == {C[0], C[1], C[3]} and all(r["exact"] for r in got["rows"].values())
    assert got["rows"][C[1]]["fields_exposed"] == ["Email", "MailingCity", "Phone"]  # Contact and Account reads combined
    assert got["rows"][C[3]]["fields_exposed"] == ["Email", "MailingCity"]
    tiers = {r["customer_id"]: r["spend_tier"] for r in got["rows"].values()}
    # Of 4 customers, the top 1% and the top 10% are both the one highest spender (ceil): C[3].
    assert tiers == {C[0]: "other", C[1]: "other", C[3]: "top-1%"}
