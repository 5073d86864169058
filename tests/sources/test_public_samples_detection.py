"""The built-in pack on Panther's labelled Okta test cases (``shared/data``, read in place): where a
Panther rule and a crmguard rule look for the same vendor signal, they agree line for line."""

from __future__ import annotations

import json
from pathlib import Path

from crmguard.detect import engine_connection
from crmguard.engine.rules import load_rules
from crmguard.engine.run import run_rules
from crmguard.ingest import ingest
from crmguard.lake import Lake

CASES = "okta/system-log-panther-rule-tests"
VENDOR_SIGNALS = {"Okta.ThreatInsight.Security.Threat.Detected", "Okta.Refresh.Access.Token.Reuse",
                  "Okta.User.Reported.Suspicious.Activity", "Okta.Phishing.Attempt.Blocked.FastPass"}


def test_vendor_threat_signals_alert_on_panthers_positive_cases_only(shared_data: Path, tmp_path: Path) -> None:
    log = shared_data / f"{CASES}.ndjson"
    cases = {c["line"]: c for c in json.loads((shared_data / f"{CASES}.index.json").read_text())["cases"]}
    lines = [json.loads(text) for text in log.read_text(encoding="utf-8").splitlines()]
    lake = Lake(tmp_path / "lake")
    ingest([str(log)], lake)
    con = engine_connection(lake)
    raw = dict(con.execute("SELECT event_id, raw FROM events").fetchall())
    [rule] = [r for r in load_rules() if r.name == "vendor_threat_signal"]
    alerted = {lines.index(json.loads(raw[e])) + 1 for a in run_rules(con, [rule]) for e in a.event_ids}
    expected = {n for n, c in cases.items() if c["rule_id"] in VENDOR_SIGNALS and c["expected_result"]}
    assert expected == {13, 40, 55, 56, 66}
    assert alerted == expected
