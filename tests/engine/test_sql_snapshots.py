"""The SQL each rule compiles to is what users review (`crmguard rules show ID --sql`): pinned here.

Refresh after an intended change with:
    CRMGUARD_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/engine/test_sql_snapshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crmguard.engine.rules import load_rules
from crmguard.engine.sqltext import rule_sql

HERE = Path(__file__).parent
RULES = load_rules([HERE / "rules"], include_builtin=False)


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_rule_sql_snapshot(rule) -> None:
    snapshot = HERE / "snapshots" / f"{rule.name}.sql"
    sql = rule_sql(rule, RULES) + "\n"
    if os.environ.get("CRMGUARD_UPDATE_SNAPSHOTS"):
        snapshot.write_text(sql)
    assert sql == snapshot.read_text()


def test_cli_prints_the_same_sql(capsys) -> None:
    from crmguard.cli import main

    rule = RULES[0]
    assert main(["rules", "show", "--rules", str(HERE / "rules"), rule.name, "--sql"]) == 0
    assert capsys.readouterr().out == rule_sql(rule, load_rules([HERE / "rules"])) + "\n"


def test_cli_shows_a_correlation_in_words(capsys) -> None:
    from crmguard.cli import main

    assert main(["rules", "show", "--rules", str(HERE / "rules"), "daily_customer_rows"]) == 0
    assert ("correlation: value_sum of rows over bulk_pii_read within 1d (gte 250000), grouped by actor"
            in " ".join(capsys.readouterr().out.split()))
