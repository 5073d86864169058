"""Per-rule reads in the one scan: with ``starts`` (the incremental runs of ``watch``) a rule's
matches are left out before the earliest time any run needs them, and a correlation still sees
its base rules' matches from its own start."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from crmguard.engine.rules import load_rules
from crmguard.engine.run import match_reads, run_rules
from tests.engine.test_correlation_aliases import EVENTS, RULES

CORR = "33333333-3333-4333-8333-333333333333"


def _t(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2025, 3, 4, hour, minute, tzinfo=dt.UTC)


def test_a_base_rule_is_read_from_its_correlations_start(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(RULES)
    rules = load_rules([tmp_path], include_builtin=False)
    corr = next(r for r in rules if r.correlation)
    assert all(r.hidden for r in rules if r.condition)  # base rules of a correlation: no alerts of their own
    assert match_reads(rules, {corr.name: _t(7)}) == {"mfa_reset_of": _t(7), "bulk_read_by": _t(7)}
    # A run with no start reads from the window start: its rules have no read time.
    assert match_reads(rules, {}) == {}


def test_a_visible_rule_is_read_from_the_earliest_need(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(RULES.replace("  type: temporal_ordered\n", "  type: temporal_ordered\n  generate: true\n"))
    rules = load_rules([tmp_path], include_builtin=False)
    corr = next(r for r in rules if r.correlation)
    visible = [r.name for r in rules if r.condition and not r.hidden]
    assert sorted(visible) == ["bulk_read_by", "mfa_reset_of"]
    assert match_reads(rules, {"bulk_read_by": _t(9), corr.name: _t(7)})["bulk_read_by"] == _t(7)
    assert match_reads(rules, {"bulk_read_by": _t(6), corr.name: _t(7)})["bulk_read_by"] == _t(6)
    # Its own run has no start: it is read from the window start, whatever the correlation needs.
    assert "bulk_read_by" not in match_reads(rules, {corr.name: _t(7)})


def test_starts_give_the_correlation_its_look_back(tmp_path: Path, engine_con) -> None:
    """The reset (08:00) lies before the base rules' own starts (09:00) but within the
    correlation's: the one scan must keep it, or the episode is lost."""
    (tmp_path / "r.yml").write_text(RULES)
    rules = load_rules([tmp_path], include_builtin=False)
    corr = next(r for r in rules if r.correlation)
    con = engine_con.load(EVENTS)
    starts = {"mfa_reset_of": _t(9), "bulk_read_by": _t(9), corr.name: _t(7)}
    [alert] = [a for a in run_rules(con, rules, _t(7), None, starts) if a.rule_id == CORR]
    assert set(alert.event_ids) == {"reset", "read"}
    # From a later correlation start the reset is out of its look-back: no episode.
    later = run_rules(con, rules, _t(7), None, {**starts, corr.name: _t(8, 30)})
    assert not [a for a in later if a.rule_id == CORR]
