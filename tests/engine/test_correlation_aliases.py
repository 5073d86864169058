"""Sigma correlation field aliases: one group-by name reading a different field in each base rule
(the help desk resets the MFA of ``target_user``; the same person then reads customers as ``username``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmguard.engine.rules import load_rules
from crmguard.engine.run import run_rules
from crmguard.errors import RuleError

RULES = """title: MFA reset for a user
name: mfa_reset_of
logsource: {product: okta}
detection:
  sel: {action: mfa_reset}
  condition: sel
---
title: Bulk read
name: bulk_read_by
logsource: {product: salesforce}
detection:
  sel: {action: query, rows|gte: 1000}
  condition: sel
---
title: MFA reset then bulk read by the same person
id: 33333333-3333-4333-8333-333333333333
correlation:
  type: temporal_ordered
  rules: [mfa_reset_of, bulk_read_by]
  aliases:
    person:
      mfa_reset_of: target_user
      bulk_read_by: username
  group-by: [person]
  timespan: 2h
level: high
"""

EVENTS = [
    # The help desk (actor helpdesk@) resets ana's MFA; ana then reads 5,000 contacts.
    {"event_id": "reset", "time": "2025-03-04T08:00:00Z", "source": "okta", "action": "mfa_reset",
     "username": "helpdesk@example.com", "target_user": "ana@example.com"},
    {"event_id": "read", "time": "2025-03-04T09:00:00Z", "source": "salesforce_elf", "action": "query", "rows": 5000,
     "username": "ana@example.com", "object": "Contact"},
    # bob reads too, but nobody reset bob's MFA.
    {"event_id": "other", "time": "2025-03-04T09:05:00Z", "source": "salesforce_elf", "action": "query", "rows": 5000,
     "username": "bob@example.com", "object": "Contact"},
]


def test_alias_groups_the_reset_victim_with_the_reader(tmp_path: Path, engine_con) -> None:
    (tmp_path / "r.yml").write_text(RULES)
    rules = load_rules([tmp_path], include_builtin=False)
    corr = next(r for r in rules if r.correlation)
    assert corr.correlation.alias("person") == {"mfa_reset_of": "target_user", "bulk_read_by": "username"}
    [alert] = [a for a in run_rules(engine_con.load(EVENTS), rules) if a.rule_id == corr.id]
    assert alert.actor == "ana@example.com"
    assert set(alert.event_ids) == {"reset", "read"}
    assert alert.context["group_by"] == {"person": "ana@example.com"}
    assert alert.context["fired_at"] == "2025-03-04T09:00:00Z"  # when the read completed the sequence
    assert "temporal_ordered of mfa_reset_of, bulk_read_by within 2h" in alert.explanation


def test_alias_without_the_reset_raises_nothing(tmp_path: Path, engine_con) -> None:
    (tmp_path / "r.yml").write_text(RULES)
    rules = load_rules([tmp_path], include_builtin=False)
    alerts = run_rules(engine_con.load(EVENTS[1:]), rules)
    assert not [a for a in alerts if a.rule_id == "33333333-3333-4333-8333-333333333333"]


def test_alias_to_an_unknown_field_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(RULES.replace("bulk_read_by: username", "bulk_read_by: victim_name"))
    with pytest.raises(RuleError, match="victim_name"):
        load_rules([tmp_path], include_builtin=False)
