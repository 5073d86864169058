"""Detection sees intel enrichment: a sign-in from a TOR exit the log itself does not flag is
caught by a rule on `is_anonymizer`, once `crmguard intel update` has fetched the lists."""

from __future__ import annotations

import json
from pathlib import Path

from crmguard.cli import EXIT_OK, main
from crmguard.detect import detect
from crmguard.intel import update
from crmguard.lake import Lake
from tests.intel.conftest import fake_fetch

RULE = """title: Sign-in from an anonymizer
id: 6d8f9a52-3c1e-4d7b-9a0e-5b2c1f3e4d01
name: anon_sign_in
logsource: {category: any}
level: high
detection:
  sel: {action: [login, sso], is_anonymizer: true}
  condition: sel
"""


def test_detect_uses_intel_to_flag_tor_sign_in(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    log = tmp_path / "okta.ndjson"
    log.write_text("".join(json.dumps({
        "uuid": f"u{i}", "published": f"2025-03-04T08:0{i}:00Z", "eventType": "user.session.start",
        "actor": {"alternateId": "ana@example.com"}, "client": {"ipAddress": ip}, "outcome": {"result": "SUCCESS"},
        "securityContext": {"isProxy": None}}) + "\n" for i, ip in enumerate(["185.220.101.1", "1.0.0.7"])))
    assert main(["ingest", "--home", str(home), str(log)]) == EXIT_OK
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "anon.yml").write_text(RULE)
    lake = Lake(home / "lake")
    from crmguard.engine.rules import load_rules

    pack = load_rules([rules], include_builtin=False)
    assert detect(lake, home / "state.db", rules=pack, intel_dir=home / "intel").alerts == []
    update(home / "intel", fetch=fake_fetch())
    [alert] = detect(lake, home / "state.db", rules=pack, intel_dir=home / "intel").alerts
    assert alert.actor == "ana@example.com" and alert.event_count == 1
    assert alert.context["src_ips"] == ["185.220.101.1"]
