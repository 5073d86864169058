"""The simulated files look exactly like real exports: ELF headers, quoting and value formats,
RTEM / Okta / SetupAuditTrail JSON shapes, and every file ingests with nothing quarantined."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
from pathlib import Path

import pytest
from shared_samples import MISSING, shared_data_dir

from crmguard.simulate import SimulationSummary
from crmguard.sources.salesforce.elf_fields import ELF_FIELDS

REQUIRED_ELF = ("Login", "Logout", "API", "RestApi", "ApiTotalUsage", "BulkApi2", "Report", "ReportExport", "URI")
RTEM_OBJECTS = ("LoginEvent", "ApiEvent", "BulkApiResultEvent", "ReportEvent", "ListViewEvent", "LoginAsEvent")


def sf18(id15: str) -> str:
    """Reference 15 -> 18 character Salesforce id conversion (the documented checksum)."""
    suffix = ""
    for i in range(3):
        bits = sum(1 << j for j, ch in enumerate(id15[i * 5 : i * 5 + 5]) if "A" <= ch <= "Z")
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return id15 + suffix


def elf_files(out: Path) -> list[Path]:
    return sorted((out / "salesforce" / "elf").rglob("*.csv"))


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, [dict(zip(header, row, strict=True)) for row in reader]


def test_every_required_elf_type_is_written_one_file_per_day(run: tuple[Path, SimulationSummary]) -> None:
    out, summary = run
    days = sorted(p.name for p in (out / "salesforce" / "elf").iterdir())
    assert len(days) == summary.days
    written = {p.stem for p in elf_files(out)}
    assert set(REQUIRED_ELF) <= written
    for p in elf_files(out):
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.parent.name) and p.stem in ELF_FIELDS


def test_elf_headers_are_the_documented_columns_in_order(run: tuple[Path, SimulationSummary]) -> None:
    for path in elf_files(run[0]):
        header, _ = read_csv(path)
        assert tuple(header) == ELF_FIELDS[path.stem], path


def test_login_and_logout_headers_equal_the_public_samples(run: tuple[Path, SimulationSummary]) -> None:
    shared = shared_data_dir()
    if shared is None:
        pytest.skip(MISSING)
    samples = {"Login": "Login-newrelic-exporter.csv", "Logout": "Logout-elastic-integrations-mock.csv"}
    for event_type, sample in samples.items():
        expected = (shared / "salesforce" / "elf" / sample).read_text(encoding="utf-8").splitlines()[0]
        ours = next((run[0] / "salesforce" / "elf").rglob(f"{event_type}.csv")).read_text().splitlines()[0]
        assert ours == expected, event_type


def test_every_elf_value_is_double_quoted_with_unix_newlines(run: tuple[Path, SimulationSummary]) -> None:
    for path in elf_files(run[0]):
        raw = path.read_bytes()
        assert b"\r" not in raw and raw.endswith(b"\n")
        for line in raw.decode().splitlines()[:200]:
            fields = next(csv.reader([line]))
            buf = io.StringIO()
            csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="").writerow(fields)
            assert buf.getvalue() == line, f"{path}: not fully quoted: {line[:120]}"


def test_elf_values_have_salesforce_formats(run: tuple[Path, SimulationSummary]) -> None:
    first = run[1].start.isoformat().replace("-", "")
    for path in elf_files(run[0]):
        _, rows = read_csv(path)
        day = path.parent.name
        for row in rows:
            assert row["EVENT_TYPE"] == path.stem
            assert re.fullmatch(r"\d{14}\.\d{3}", row["TIMESTAMP"])
            assert row["TIMESTAMP"][:8] == day.replace("-", "") >= first
            ts = row["TIMESTAMP"]
            iso = f"{ts[:4]}-{ts[4:6]}-{ts[6:8]}T{ts[8:10]}:{ts[10:12]}:{ts[12:18]}Z"
            assert row["TIMESTAMP_DERIVED"] == iso
            assert re.fullmatch(r"00D[0-9A-Za-z]{12}", row["ORGANIZATION_ID"])
            assert re.fullmatch(r"005[0-9A-Za-z]{12}", row["USER_ID"])
            assert row["USER_ID_DERIVED"] == sf18(row["USER_ID"])
            ip = row.get("CLIENT_IP", "")
            if ip and ip != "Salesforce.com IP":
                assert not ipaddress.ip_address(ip).is_private
        if path.stem == "Login":
            assert {r["LOGIN_STATUS"] for r in rows} <= {"LOGIN_NO_ERROR", "LOGIN_ERROR_INVALID_PASSWORD"}
            assert all(r["USER_NAME"] and r["SOURCE_IP"] and r["LOGIN_TYPE"] for r in rows)
        if path.stem == "RestApi":
            assert {r["METHOD"] for r in rows} <= {"GET", "POST", "PATCH", "DELETE"}
            assert all(r["URI"].startswith("/services/data/v60.0/") for r in rows)
        if path.stem == "API":
            assert {r["METHOD_NAME"] for r in rows} <= {"query", "queryMore", "describeSObject", "update", "insert",
                                                       "retrieve"}


def test_server_side_calls_show_salesforce_ip(run: tuple[Path, SimulationSummary]) -> None:
    ips = {r["CLIENT_IP"] for p in (run[0] / "salesforce" / "elf").rglob("RestApi.csv") for r in read_csv(p)[1]}
    assert "Salesforce.com IP" in ips


def test_rtem_files_are_ndjson_soql_records(run: tuple[Path, SimulationSummary]) -> None:
    seen = set()
    for path in sorted((run[0] / "salesforce" / "rtem").rglob("*.json")):
        assert path.stem in RTEM_OBJECTS
        seen.add(path.stem)
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            assert rec["attributes"]["type"] == path.stem
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000", rec["EventDate"])
            assert rec["EventDate"][:10] == path.parent.name
            assert len(rec["UserId"]) == 18 and "@" in rec["Username"]
            if "Records" in rec and "COUNT()" not in rec.get("Query", ""):
                records = json.loads(rec["Records"])
                ids = [r["Id"] for r in records["records"]] if "records" in records else \
                    [c for row in records["rows"] for c in row["datacells"]]
                assert len(ids) == records["totalSize"]
    assert {"LoginEvent", "ApiEvent", "ReportEvent", "ListViewEvent"} <= seen


def test_okta_files_are_system_log_arrays(run: tuple[Path, SimulationSummary]) -> None:
    files = sorted((run[0] / "okta").glob("*.json"))
    assert len(files) == run[1].days
    types = set()
    for path in files:
        events = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(events, list) and events
        published = [e["published"] for e in events]
        assert published == sorted(published) and all(p.startswith(path.stem) for p in published)
        for e in events:
            types.add(e["eventType"])
            assert e["outcome"]["result"] in ("SUCCESS", "FAILURE", "ALLOW", "DENY")
            assert {"uuid", "actor", "client", "securityContext", "authenticationContext", "debugContext",
                    "request", "target", "transaction", "severity", "displayMessage"} <= set(e)
            ipaddress.ip_address(e["client"]["ipAddress"])
    assert {"user.session.start", "user.authentication.sso", "user.authentication.auth_via_mfa",
            "policy.evaluate_sign_on", "user.mfa.factor.activate", "user.session.end"} <= types
    assert types & {"user.mfa.factor.reset_all", "user.mfa.factor.deactivate"}


def test_vishing_sign_in_comes_from_an_anonymising_hosting_network(run: tuple[Path, SimulationSummary],
                                                                    labels: dict) -> None:
    vishing = next(c for c in labels["campaigns"] if c["name"] == "vishing")
    ips = set(vishing["attacker"]["ips"])
    events = [e for p in (run[0] / "okta").glob("*.json") for e in json.loads(p.read_text())]
    starts = [e for e in events if e["client"]["ipAddress"] in ips and e["eventType"] == "user.session.start"]
    assert starts and all(e["securityContext"]["isProxy"] for e in starts)


def test_audit_trail_has_the_connected_app_install(run: tuple[Path, SimulationSummary], labels: dict) -> None:
    records = [json.loads(line) for p in (run[0] / "salesforce" / "audit").glob("*.json")
               for line in p.read_text().splitlines()]
    assert all(r["attributes"]["type"] == "SetupAuditTrail" and r["Action"] and r["Section"] for r in records)
    app = next(c for c in labels["campaigns"] if c["name"] == "vishing")["attacker"]["apps"][0]["name"]
    installs = [r for r in records if r["Action"] == "insertConnectedApplication" and app in r["Display"]]
    assert len(installs) == 1 and installs[0]["Section"] == "Connected Apps"


def test_every_file_ingests_with_nothing_quarantined(run: tuple[Path, SimulationSummary], tmp_path: Path) -> None:
    from crmguard.ingest import ingest
    from crmguard.lake import Lake

    out, summary = run
    result = ingest([str(out / "salesforce"), str(out / "okta")], Lake(tmp_path / "lake")).as_dict()
    assert result["quarantined"] == 0 and result["files_failed"] == 0
    assert result["read"] == result["stored"] == summary.total_events
