"""`crmguard detect` / `alerts list` / `alerts show` end to end: JSON fields, dedup on re-run, masking."""

from __future__ import annotations

import json
import re
from pathlib import Path

from crmguard.cli import EXIT_ERROR, EXIT_OK, main

RULE = """title: Customer export with an e-mail in the query
id: 3f1c8a52-1b7e-4c3d-9e55-7a2b4c6d8e01
name: export_with_email
logsource: {product: salesforce}
level: high
detection:
  sel: {action: query, query|contains: '@'}
  condition: sel
"""


def test_detect_json_alerts_list_and_show(tmp_path: Path, capsys, monkeypatch) -> None:
    home = str(tmp_path / "home")
    log = tmp_path / "ApiEvent.ndjson"
    log.write_text(json.dumps({
        "attributes": {"type": "ApiEvent"}, "EventDate": "2025-03-04T08:00:00.000+0000", "EventIdentifier": "x1",
        "Username": "ana@example.com", "UserId": "0055j000000utlPAAQ", "Operation": "Query", "SourceIp": "81.2.69.142",
        "Query": "SELECT Id FROM Contact WHERE Email = 'jane.customer@gmail.com'", "QueriedEntities": "Contact",
        "RowsProcessed": 1}) + "\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yml").write_text(RULE)
    assert main(["ingest", "--home", home, str(log)]) == EXIT_OK
    capsys.readouterr()
    assert main(["detect", "--home", home, "--rules", str(rules), "--json"]) == EXIT_OK
    alerts = [a for a in json.loads(capsys.readouterr().out) if a["rule_id"] == "3f1c8a52-1b7e-4c3d-9e55-7a2b4c6d8e01"]
    [alert] = alerts
    for key in ("id", "rule_id", "title", "severity", "actor", "first_seen", "last_seen", "event_count"):
        assert key in alert
    assert alert["actor"] == "ana@example.com" and alert["event_count"] == 1 and alert["severity"] == "high"
    assert re.fullmatch(r"2025-03-04T08:00:00(\.0+)?Z", alert["first_seen"])

    assert main(["detect", "--home", home, "--rules", str(rules)]) == EXIT_OK
    assert "0 new, 0 updated, 1 already known" in " ".join(capsys.readouterr().out.split())  # re-run: nothing new

    assert main(["alerts", "list", "--home", home, "--json"]) == EXIT_OK
    listed = json.loads(capsys.readouterr().out)
    assert alert["id"] in {a["id"] for a in listed}

    assert main(["alerts", "show", "--home", home, alert["id"][:10], "--json"]) == EXIT_OK
    [shown] = json.loads(capsys.readouterr().out)
    evidence = json.dumps(shown["evidence"])
    assert "jane.customer@gmail.com" not in evidence and "j***@gmail.com" in evidence
    assert "ana@example.com" in evidence  # the staff actor is not customer PII
    assert main(["alerts", "show", "--home", home, alert["id"], "--json", "--unmask"]) == EXIT_OK
    assert "jane.customer@gmail.com" in capsys.readouterr().out
    assert main(["alerts", "show", "--home", home, "nosuchid"]) == EXIT_ERROR
    capsys.readouterr()

    # The table: one line per evidence event at a usual width, its time in ISO 8601 UTC, PII masked.
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["alerts", "show", "--home", home, alert["id"]]) == EXIT_OK
    shown_text = capsys.readouterr().out
    [row] = [line for line in shown_text.splitlines() if "salesforce_rtem" in line]
    assert "2025-03-04T08:00:00Z" in row and "jane.customer" not in shown_text


METRIC_RULES = """title: Customer query
name: customer_query
logsource: {product: salesforce}
detection:
  sel: {action: query, object: Contact}
  condition: sel
---
title: Many customer rows read in a day
id: 5b0e2f7c-9d1a-4e8b-a6c3-2f4d8e1b7a90
correlation:
  type: value_sum
  rules: [customer_query]
  group-by: [actor]
  timespan: 1d
  condition: {gte: 100000, field: rows}
level: high
"""


def test_detect_raises_a_value_sum_correlation_with_the_sum_explained(tmp_path: Path, capsys) -> None:
    """Low-and-slow extraction: no single query is large, their sum over a day is."""
    home = str(tmp_path / "home")
    log = tmp_path / "ApiEvent.ndjson"

    def event(i: int, user: str, hour: int) -> str:
        return json.dumps({
            "attributes": {"type": "ApiEvent"}, "EventDate": f"2025-03-04T{hour:02d}:00:00.000+0000",
            "EventIdentifier": f"m{i}", "Username": user, "Operation": "Query", "SourceIp": "81.2.69.142",
            "Query": "SELECT Id, Email FROM Contact", "QueriedEntities": "Contact", "RowsProcessed": 30000})

    # ana reads 4 × 30,000 rows in four hours; bob reads 2 × 30,000.
    log.write_text("\n".join([event(i, "ana@example.com", 8 + i) for i in range(4)]
                             + [event(10 + i, "bob@example.com", 8 + i) for i in range(2)]) + "\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yml").write_text(METRIC_RULES)
    # A rule for other logs beside it (as in a Sigma checkout) is skipped, and said so on stderr.
    (rules / "win.yml").write_text("title: w\nlogsource: {product: windows}\ndetection:\n  s: {Image: x}\n  condition: s\n")
    assert main(["ingest", "--home", home, str(log)]) == EXIT_OK
    capsys.readouterr()
    assert main(["detect", "--home", home, "--rules", str(rules), "--json"]) == EXIT_OK
    printed = capsys.readouterr()
    assert "skipped 1 rule written for logs crmguard does not read: windows (1)" in " ".join(printed.err.split())
    [alert] = [a for a in json.loads(printed.out) if a["rule_id"] == "5b0e2f7c-9d1a-4e8b-a6c3-2f4d8e1b7a90"]
    assert alert["actor"] == "ana@example.com" and alert["event_count"] == 4
    assert "value_sum of rows over customer_query within 1d (gte 100000): reached 120,000" in alert["explanation"]
    assert "120,000 rows read" in alert["explanation"]
