"""Every built-in rule agrees with the example events it ships with, and carries what a triager needs
(examples both ways, ATT&CK tags, level, false positives); plus the behaviour of the example checker
itself (``crmguard.engine.ruletest``). Test ids are the rule names.

Run: ``.venv/bin/python -m pytest tests/engine/test_rule_examples.py``; the same check from the CLI is
``crmguard rules test [--rules DIR]``.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

from crmguard.engine.rules import Rule, load_rules
from crmguard.engine.ruletest import ExampleError, engine_connection, events_table, rules_test_command, scenario_events
from crmguard.engine.ruletest import test_rule as check_rule
from crmguard.engine.ruletest import test_rules as check_rules

RULES = load_rules()
BY_NAME = {r.name: r for r in RULES}
TECHNIQUE = re.compile(r"^attack\.t\d{4}(\.\d{3})?$")
TACTICS = {
    "reconnaissance",
    "resource_development",
    "initial_access",
    "execution",
    "persistence",
    "privilege_escalation",
    "defense_evasion",
    "credential_access",
    "discovery",
    "lateral_movement",
    "collection",
    "command_and_control",
    "exfiltration",
    "impact",
}


def test_pack_has_at_least_15_alerting_rules() -> None:
    alerting = [r.name for r in RULES if not r.hidden]
    assert len(alerting) >= 15, alerting


def test_rule_names_and_ids_are_unique_and_stable() -> None:
    names = [r.name for r in RULES]
    assert len(names) == len(set(names))
    for r in RULES:
        assert str(uuid.UUID(r.id)) == r.id, r.name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", r.name), r.name


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = engine_connection()
    yield connection
    connection.close()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_examples_agree_with_rule(rule: Rule, con: duckdb.DuckDBPyConnection) -> None:
    result = check_rule(rule, BY_NAME, con)
    assert result.status == "pass", "\n".join(result.reasons)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_rule_is_documented(rule: Rule) -> None:
    assert rule.examples.get("match"), "no match examples"
    assert rule.examples.get("nomatch"), "no nomatch examples"
    assert rule.level in {"informational", "low", "medium", "high", "critical"}
    assert rule.falsepositives and all(fp.strip() for fp in rule.falsepositives), "no falsepositives"
    assert len(rule.description) > 40, "description too short to explain the behaviour"
    assert any(TECHNIQUE.match(t) for t in rule.tags), f"no ATT&CK technique tag in {rule.tags}"
    assert any(t.removeprefix("attack.") in TACTICS for t in rule.tags), f"no ATT&CK tactic tag in {rule.tags}"
    if rule.hidden:
        assert rule.level == "informational", "building blocks of correlations are informational"


def test_every_base_rule_feeds_a_correlation() -> None:
    used = {n for r in RULES if r.correlation for n in r.correlation.rules}
    assert {r.name for r in RULES if r.hidden} <= used


# --- the example checker itself ----------------------------------------------------------------------

BAD_RULE = """
title: Wrong examples
name: wrong_examples
id: 0a6f2a8e-41a4-4d42-9a57-0f9a4d3c2b11
status: experimental
description: A rule whose examples contradict it, to see the checker complain.
tags: [attack.collection, attack.t1213]
logsource: {product: salesforce}
detection:
  selection: {action: export, rows|gte: 1000}
  condition: selection
falsepositives: [none]
level: low
crmguard:
  examples:
    match:
      - {source: salesforce_rtem, action: export, rows: 10}
    nomatch:
      - {source: salesforce_rtem, action: export, rows: 5000}
      - {source: salesforce_rtem, action: export, colour: red}
"""


def test_checker_reports_disagreeing_and_invalid_examples(tmp_path: Path) -> None:
    (tmp_path / "wrong.yml").write_text(BAD_RULE)
    rules = load_rules([tmp_path], include_builtin=False)
    [result] = check_rules(rules)
    assert result.status == "fail" and result.checked == 3
    assert any(r.startswith("match[0] should fire") for r in result.reasons)
    assert any(r.startswith("nomatch[0] should not fire") for r in result.reasons)
    assert any("nomatch[1] is invalid" in r and "colour" in r for r in result.reasons)


def test_cli_command_exit_codes(tmp_path: Path) -> None:
    # Exit status 0 for the built-in pack alone is covered rule by rule above.
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "wrong.yml").write_text(BAD_RULE)
    out = io.StringIO()
    assert rules_test_command([tmp_path / "rules"], Console(file=out, width=200)) == 1
    text = out.getvalue()
    assert "wrong_examples" in text and "1 failed" in text and "anonymizer_sign_in" in text


def test_scenario_expansion() -> None:
    events, scenario = scenario_events(
        {"username": "u{i}@x.com", "time": "2025-03-03T10:00:00Z", "_repeat": 3, "_step": 30}
    )
    assert scenario and [e["username"] for e in events] == ["u0@x.com", "u1@x.com", "u2@x.com"]
    assert (events[2]["time"] - events[0]["time"]).total_seconds() == 60
    single, scenario = scenario_events({"action": "login"})
    assert not scenario and single == [{"action": "login"}]
    table = events_table(single)
    assert table.column("action").to_pylist() == ["login"] and table.column("rows").null_count == 1
    with pytest.raises(ExampleError):
        scenario_events([])
    with pytest.raises(ExampleError):
        events_table([{"time": "yesterday"}])
    with pytest.raises(ExampleError):
        scenario_events({"action": "login", "_times": 2})
