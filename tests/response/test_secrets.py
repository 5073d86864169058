"""Secret scanning of exposed record text: what it finds in realistic Case text, that it masks
every finding, marks the records the logs show as exposed, and feeds the rotation list."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crmguard.errors import ResponseError
from crmguard.response.secrets import scan_files

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
STRIPE = "sk_live_51HyT2bKx9QzR7mN3pL8vW4cD"
GITHUB = "ghp_R7mN3pL8vW4cDx9QzT2bKy51HaB6cE0fG1hJ"
SLACK = "xoxb-2048-1024-R7mN3pL8vW4cDx9Q"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzdmMtZXJwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
SF_SESSION = "00D5j0000000i98!AQ0AQH7x.Kp2mN9vB4cR8tY1wE6uI3oP5aS7dF0gH2jK4lZ"
PASSWORD_FR, PASSWORD_DE, PASSWORD_EN = "Soleil2024!", "Winter#Sonne7", "Valmont123"

CASES = [
    ("5005j00000AbCdEAAV", "Connexion impossible", f"Bonjour, je n'arrive plus à me connecter. Mon mot de passe : {PASSWORD_FR} ne marche plus. Merci"),
    ("5005j00000AbCdFAAV", "ERP sync failing",
     f"Integration logs attached. AWS creds in the script: {AWS_KEY} / aws_secret_access_key = {AWS_SECRET}. "
     f"Payments use {STRIPE}."),
    ("5005j00000AbCdGAAV", "Merci", "Merci pour votre aide, la commande est bien arrivée. Cordialement"),
    ("5005j00000AbCdHAAV", "Webhook 401", f"curl -H 'Authorization: Bearer {JWT}' https://erp.example.com/hook"),
    ("5005j00000AbCdIAAV", "Kundenkonto", f"Hallo, Passwort: {PASSWORD_DE} — bitte zurücksetzen."),
    ("5005j00000AbCdJAAV", "Deploy key", f"CI uses {GITHUB} and posts to Slack with {SLACK}.\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA"),
    ("5005j00000AbCdKAAV", "Session", f"Copied from the browser: sid={SF_SESSION}"),
    ("5005j00000AbCdLAAV", "Password policy", "What is the password policy? Password reset link expired."),  # no secret
]
SECRETS = [AWS_KEY, AWS_SECRET, STRIPE, GITHUB, SLACK, JWT, SF_SESSION, PASSWORD_FR, PASSWORD_DE, PASSWORD_EN]


def _cases(tmp_path: Path) -> Path:
    path = tmp_path / "cases.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Id", "Subject", "Description"])
        w.writerows(CASES)
    return path


def test_finds_each_kind_in_realistic_case_text(tmp_path: Path) -> None:
    found = scan_files([_cases(tmp_path)]).to_pylist()
    kinds = {(f["record_id"][-4:], f["kind"]) for f in found}
    assert kinds == {("EAAV", "password"), ("FAAV", "aws_access_key"), ("FAAV", "aws_secret_key"),
                     ("FAAV", "stripe_key"), ("HAAV", "jwt"), ("IAAV", "password"), ("JAAV", "github_token"),
                     ("JAAV", "slack_token"), ("JAAV", "private_key"), ("KAAV", "salesforce_session")}
    assert all(f["object"] == "Case" and f["field"] == "Description" and f["source"] == "cases.csv" for f in found)
    # the bearer header holding a JWT is one finding (reported as the more specific kind)
    assert sum(f["record_id"].endswith("HAAV") for f in found) == 1


def test_never_returns_a_secret_in_clear(tmp_path: Path) -> None:
    found = scan_files([_cases(tmp_path)]).to_pylist()
    text = json.dumps(found)
    for secret in SECRETS:
        assert secret not in text
    previews = {f["kind"]: f["preview"] for f in found}
    assert previews["aws_access_key"] == "AKIA…(20 chars)" and previews["stripe_key"] == f"sk_live_…({len(STRIPE)} chars)"
    assert previews["password"] in ("…(11 chars)", "…(13 chars)") and previews["aws_secret_key"] == "…(40 chars)"
    assert previews["private_key"] == "-----BEGIN OPENSSH PRIVATE KEY-----"
    assert all(f["fingerprint"] is None for f in found if f["kind"] == "password")
    assert all(len(f["fingerprint"]) == 12 for f in found if f["kind"] not in ("password", "private_key"))


def test_marks_exposed_records_and_reads_json_and_customers(tmp_path: Path) -> None:
    records = tmp_path / "cases.json"
    records.write_text(json.dumps([{"Id": i, "Subject": s, "Description": d} for i, s, d in CASES]))
    exposed = tmp_path / "exposed_records.parquet"
    pq.write_table(pa.table({"object": ["Case"], "record_id": ["5005j00000AbCdFAAV"]}), exposed)
    customers = tmp_path / "affected_customers.parquet"
    pq.write_table(pa.table({"incident_id": ["INC-0001"], "customer_id": ["0035j0000000APDAA2"], "first_name": ["Léa"],
                             "email": ["lea@example.com"], "phone": [f"pwd: {PASSWORD_EN}"]}), customers)
    found = scan_files([records], customers, exposed).to_pylist()
    by_record = {(f["record_id"], f["kind"]): f for f in found}
    assert by_record[("5005j00000AbCdFAAV", "aws_access_key")]["exposed"] is True
    assert by_record[("5005j00000AbCdEAAV", "password")]["exposed"] is False
    customer = by_record[("0035j0000000APDAA2", "password")]
    assert customer["object"] == "Customer" and customer["field"] == "phone" and customer["exposed"] is True
    assert PASSWORD_EN not in json.dumps(found)


def test_reads_a_saved_rest_query_answer(tmp_path: Path) -> None:
    answer = tmp_path / "case-query.json"
    answer.write_text(json.dumps({"totalSize": 2, "done": True, "records": [
        {"attributes": {"type": "Case", "url": f"/services/data/v62.0/sobjects/Case/{i}"}, "Id": i, "Subject": s, "Description": d}
        for i, s, d in CASES[:2]]}))
    found = scan_files([answer]).to_pylist()
    assert sorted(f["kind"] for f in found) == ["aws_access_key", "aws_secret_key", "password", "stripe_key"]


def test_nothing_to_scan_and_bad_input(tmp_path: Path) -> None:
    assert scan_files([]).num_rows == 0
    no_id = tmp_path / "notes.csv"
    no_id.write_text("Name,Body\nx,y\n")
    with pytest.raises(ResponseError, match="no Id column") as exc:
        scan_files([no_id])
    assert "notes.csv" in str(exc.value)
