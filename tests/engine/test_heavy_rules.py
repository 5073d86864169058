"""Heavy threshold rules (threshold above 1, used by no correlation) are counted without
materialising their matches: the alerts must be exactly those of materialising every match."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
from hypothesis import given
from hypothesis import strategies as st

from crmguard.engine.rules import Rule, load_rules
from crmguard.engine.ruletest import events_table
from crmguard.engine.run import Alert, _detection_alerts, heavy_rules, hot_spans, prepare_matches, run_rules
from crmguard.sources.sql import connect

RULES = """title: Many record pages
id: 11111111-2222-4333-8444-555555555555
name: many_pages
logsource: {product: salesforce}
level: medium
detection:
  sel: {action: view, object: Contact}
  condition: sel
crmguard:
  threshold: 3
  dedup: {fields: [actor], period: 1h}
---
title: Export
id: 11111111-2222-4333-8444-666666666666
name: any_export
logsource: {product: salesforce}
level: low
detection:
  sel: {action: export}
  condition: sel
"""


def _events() -> list[dict[str, object]]:
    def view(user: str, minute: int, hour: int = 10) -> dict[str, object]:
        return {"source": "salesforce_elf", "action": "view", "object": "Contact", "username": user,
                "time": f"2025-03-04T{hour:02d}:{minute:02d}:00Z", "record_id": f"003{user[:3]}{hour}{minute:02d}"}

    return ([view("ana@x.com", m) for m in (1, 2, 3, 4)]         # 4 in one hour: alert
            + [view("bo@x.com", m) for m in (5, 6)]              # 2: below the threshold
            + [view("ana@x.com", m, 12) for m in (1, 2)]          # 2 in another hour: no alert
            + [view("cy@x.com", m, 9) for m in (10, 20, 30)]      # exactly 3: alert
            + [{"source": "salesforce_elf", "action": "export", "object": "Report", "username": "bo@x.com",
                "time": "2025-03-04T11:00:00Z"}])


def test_counted_alerts_equal_materialised_alerts(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(RULES)
    rules = load_rules([tmp_path], include_builtin=False)
    assert [r.name for r in heavy_rules(rules)] == ["many_pages"]
    con: duckdb.DuckDBPyConnection = connect()
    con.register("events", events_table(_events()))
    counted, heavy = _counted_as_materialised(con, rules)
    assert sorted((a.actor, a.event_count) for a in heavy) == [("ana@x.com", 4), ("cy@x.com", 3)]
    # The other rule is untouched by the heavy path.
    export = next(r for r in rules if r.name == "any_export")
    assert [(a.actor, a.event_count) for a in counted if a.rule_id == export.id] == [("bo@x.com", 1)]


def test_a_threshold_alert_says_when_its_group_reached_the_threshold(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(RULES)
    rules = load_rules([tmp_path], include_builtin=False)
    con: duckdb.DuckDBPyConnection = connect()
    con.register("events", events_table(_events()))
    fired = {(a.actor, a.rule_id[-1]): a.context["fired_at"] for a in run_rules(con, rules)}
    # The third view fires many_pages (whatever follows), a single export fires any_export.
    assert fired == {("ana@x.com", "5"): "2025-03-04T10:03:00Z", ("cy@x.com", "5"): "2025-03-04T09:30:00Z",
                     ("bo@x.com", "6"): "2025-03-04T11:00:00Z"}


def _counted_as_materialised(con: duckdb.DuckDBPyConnection, rules: list[Rule]) -> tuple[list[Alert], list[Alert]]:
    """Run ``rules`` over ``con``'s ``events``; check that ``many_pages``'s alerts, counted the heavy
    way, are those of keeping every match; return all the alerts and ``many_pages``'s."""
    counted = run_rules(con, rules)
    prepare_matches(con, rules, None, None, count_heavy=False)
    by_name = {r.name: r for r in rules}
    materialised = _detection_alerts(con, [by_name["many_pages"]], by_name)
    heavy = [a for a in counted if a.rule_id == by_name["many_pages"].id]
    assert sorted((a.actor, a.event_count, a.first_seen, a.event_ids) for a in heavy) == sorted(
        (a.actor, a.event_count, a.first_seen, a.event_ids) for a in materialised)
    return counted, heavy


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 50)), max_size=40), st.integers(1, 8))
def test_hot_spans_cover_every_interval_in_at_most_limit_spans(raw: list[tuple[int, int]], limit: int) -> None:
    """The spans the third scan reads again hold every instant of every hot group's interval, are
    sorted and disjoint, and are at most ``limit``: the matches of a hot group are never missed."""
    t0 = dt.datetime(2025, 3, 4, tzinfo=dt.UTC)
    intervals = sorted((t0 + dt.timedelta(minutes=a), t0 + dt.timedelta(minutes=a + n)) for a, n in raw)
    spans = hot_spans(intervals, limit)
    assert len(spans) <= limit and (spans or not intervals)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))
    for lo, hi in intervals:
        assert any(a <= lo and hi <= b for a, b in spans)
    if limit >= len(intervals):
        # No gap is closed: the spans cover no instant outside the intervals.
        covered = sum((b - a).total_seconds() for a, b in spans)
        assert covered <= sum((hi - lo).total_seconds() for lo, hi in intervals)


def test_hot_groups_on_several_days_of_a_partitioned_lake(tmp_path: Path) -> None:
    """Over a lake partitioned by day the matches of hot groups are read again from their days'
    partitions only: hot groups on two days both alert, exactly as when every match is kept."""
    (tmp_path / "r.yml").write_text(RULES)
    rules = load_rules([tmp_path], include_builtin=False)
    later = [{**e, "time": str(e["time"]).replace("2025-03-04", day), "record_id": f"{e.get('record_id')}{day[-1]}"}
             for day in ("2025-03-06", "2025-03-09") for e in _events() if e["action"] == "view"]
    con: duckdb.DuckDBPyConnection = connect()
    con.register("staged", events_table(_events() + later))
    con.execute(f"COPY (SELECT *, CAST(time AS DATE) AS date FROM staged) TO '{tmp_path / 'lake'}' "
                "(FORMAT parquet, PARTITION_BY (date))")
    con.execute(f"CREATE TEMP VIEW events AS SELECT * FROM read_parquet('{tmp_path / 'lake'}/**/*.parquet', "
                "hive_partitioning=true, hive_types={'date': DATE})")
    _, heavy = _counted_as_materialised(con, rules)
    assert sorted((a.first_seen.date().isoformat(), a.actor) for a in heavy) == [
        (day, who) for day in ("2025-03-04", "2025-03-06", "2025-03-09") for who in ("ana@x.com", "cy@x.com")]
