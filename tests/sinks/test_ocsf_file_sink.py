"""The file sink writes one valid OCSF 1.3.0 Detection Finding per line, with no customer records."""

from __future__ import annotations

import json
from pathlib import Path

from crmguard.sinks import deliver_due, enqueue
from crmguard.sinks.config import parse_config
from tests.sinks.conftest import T0, make_alert

REQUIRED = ("activity_id", "category_uid", "class_uid", "finding_info", "metadata", "severity_id", "time", "type_uid")
SEVERITY_IDS = {"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}


def test_file_sink_writes_ocsf_detection_findings(tmp_path: Path, state) -> None:
    alerts = [make_alert(i, severity=s) for i, s in enumerate(SEVERITY_IDS)] + [make_alert(9, actor=None)]
    db = state(*alerts)
    config = parse_config({"sinks": [{"name": "siem", "type": "file", "path": "siem/findings.jsonl"}]}, base=tmp_path)
    enqueue(db, [a.id for a in alerts], config)
    assert deliver_due(db, config, now=T0).delivered == len(alerts)
    text = (tmp_path / "siem" / "findings.jsonl").read_text()
    findings = {f["finding_info"]["uid"]: f for f in map(json.loads, text.splitlines())}
    assert len(findings) == len(alerts)
    for alert in alerts:
        f = findings[alert.id]
        assert all(k in f for k in REQUIRED), [k for k in REQUIRED if k not in f]
        assert (f["class_uid"], f["category_uid"], f["activity_id"], f["type_uid"]) == (2004, 2, 1, 200401)
        assert f["severity_id"] == SEVERITY_IDS[alert.severity]
        assert f["metadata"]["version"] == "1.3.0" and f["metadata"]["product"]["name"] == "crmguard"
        assert f["metadata"]["uid"] == f"{alert.id}-v1"
        info = f["finding_info"]
        assert info["title"] == alert.title and info["analytic"] == {
            "uid": alert.rule_id, "name": alert.title, "type_id": 1, "type": "Rule"}
        assert info["first_seen_time"] == int(alert.first_seen.timestamp() * 1000)
        assert info["last_seen_time"] == int(alert.last_seen.timestamp() * 1000)
        assert isinstance(f["time"], int) and f["count"] == alert.event_count
        assert [e["src_endpoint"]["ip"] for e in f["evidences"]] == ["81.2.69.142", "2001:db8::7"]
        assert {o["value"] for o in f["observables"] if o["type_id"] == 2} == {"81.2.69.142", "2001:db8::7"}
        assert f["unmapped"]["record_count"] == 2
    assert findings["alert0000"]["actor"] == {"user": {"name": "ana@example.com"}}
    assert "actor" not in findings["alert0009"]
    assert "003CUSTOMER" not in text and "secret_future_key" not in text  # record ids counted, never listed
