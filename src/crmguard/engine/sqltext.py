"""The SQL a rule runs, as text a user can read, review and paste into `crmguard query`."""

from __future__ import annotations

from crmguard.engine.correlate import correlation_sql
from crmguard.engine.rules import ACTOR, Rule
from crmguard.engine.run import allowlist_sql


def detection_sql(rule: Rule) -> str:
    """The SELECT of a detection rule's matching events over the ``events`` view."""
    assert rule.condition is not None
    return (
        f"SELECT e.*, coalesce(e.username, e.user_id) AS {ACTOR}\nFROM events e\n"
        f"WHERE ({rule.condition}){allowlist_sql(rule)}"
    )


def rule_sql(rule: Rule, rules: list[Rule]) -> str:
    """A rule's full SQL: detections as one SELECT; correlations as the match table of their base
    rules (``mr``) followed by the correlation query over it."""
    if rule.condition:
        return detection_sql(rule) + ";"
    assert rule.correlation is not None
    bases = [r for r in rules if r.name in rule.correlation.rules]
    parts = [f"SELECT '{b.name}' AS rule, * FROM ({detection_sql(b)})" for b in bases]
    return f"CREATE TEMP TABLE mr AS\n{chr(10).join(' UNION ALL ' + p if i else p for i, p in enumerate(parts))};\n" + \
        correlation_sql(rule.correlation, where=allowlist_sql(rule)).strip() + ";"
