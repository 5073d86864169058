"""The watcher's match cache drops candidates no later run can read, and rebuilds from the lake
when a run needs some it dropped (an event later than the late tolerance)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq

from crmguard.engine.rules import load_rules
from crmguard.engine.ruletest import events_table
from crmguard.lake import Lake
from crmguard.realtime.matches import MatchCache

RULE = """title: Customer list export
id: 11111111-2222-4333-8444-777777777777
name: list_export
logsource: {product: salesforce}
level: medium
detection:
  sel: {action: export}
  condition: sel
crmguard:
  dedup: {fields: [actor], period: 1h}
"""


def _file(lake: Lake, name: str, events: list[dict[str, object]]) -> str:
    folder = lake.events_dir / "source=salesforce_elf" / "date=2025-03-04"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{name}.parquet"
    pq.write_table(events_table(events, prefix=name), path)
    return str(path)


def _export(hh: int, mm: int) -> dict[str, object]:
    return {"source": "salesforce_elf", "action": "export", "username": "ana@example.com",
            "user_id": "005000000000001AAA", "time": f"2025-03-04T{hh:02d}:{mm:02d}:00Z"}


def _t(hh: int) -> dt.datetime:
    return dt.datetime(2025, 3, 4, hh, tzinfo=dt.UTC)


def test_prune_drops_old_candidates_and_a_late_run_rebuilds(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yml").write_text(RULE)
    rules = load_rules([tmp_path / "rules"], include_builtin=False)
    lake = Lake(tmp_path / "lake")
    cache = MatchCache(lake, rules)
    try:
        cache.add([_file(lake, "a", [_export(10, 5), _export(10, 20), {**_export(10, 30), "action": "view"}])])
        cache.add([_file(lake, "b", [_export(12, 0)])])
        assert cache.size()[0] == 3  # the view is no candidate
        assert cache.prune({"list_export": _t(12)}) == 2
        assert cache.size()[0] == 1 and cache.kept == {"list_export": _t(12)}
        # A run from 12:00 needs nothing dropped.
        [noon] = cache.run(_t(12), starts={"list_export": _t(12)})
        assert (noon.event_count, cache.rebuilds) == (1, 0)
        # A late event in the 10:00 bucket: its run reads from 10:00, which the prune dropped.
        alerts = cache.run(_t(10), starts={"list_export": _t(10)})
        assert cache.rebuilds == 1 and cache.size()[0] == 3
        assert sorted((a.first_seen.hour, a.event_count) for a in alerts) == [(10, 2), (12, 1)]
    finally:
        cache.close()


RAW_RULE = """title: Export naming e-mail columns
id: 11111111-2222-4333-8444-888888888888
name: email_export
logsource: {product: salesforce}
level: high
detection:
  sel: {action: export}
  cols: {raw|re: '"ColumnHeaders":"[^"]*Email'}
  condition: sel and cols
crmguard:
  dedup: {fields: [actor], period: 1h}
"""


def test_each_condition_is_tested_once_and_raw_kept_only_where_a_rule_reading_it_holds(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yml").write_text(RULE)
    (tmp_path / "rules" / "raw.yml").write_text(RAW_RULE)
    rules = load_rules([tmp_path / "rules"], include_builtin=False)
    lake = Lake(tmp_path / "lake")
    cache = MatchCache(lake, rules)
    try:
        with_email = {**_export(10, 5), "raw": '{"ColumnHeaders":"Name,Email"}'}
        plain = {**_export(10, 20), "raw": '{"ColumnHeaders":"Name"}'}
        new = cache.add([_file(lake, "a", [with_email, plain, {**_export(10, 30), "action": "view"}])])
        assert new.matched == {"list_export", "email_export"}
        held = cache.con.execute("SELECT event_id, list_sort(__hits), raw IS NOT NULL FROM cand ORDER BY event_id").fetchall()
        assert held == [("a-0", ["email_export", "list_export"], True), ("a-1", ["list_export"], False)]
        # Runs read the stored hits: the e-mail export still alerts without its raw record re-read.
        by_name = {a.rule_id: a for a in cache.run(_t(10))}
        assert {r.name: by_name[r.id].event_count for r in rules} == {"list_export": 2, "email_export": 1}
    finally:
        cache.close()


def test_a_restart_reads_candidates_only_from_the_files_a_later_run_can_need(tmp_path: Path, monkeypatch) -> None:
    """Loading at start-up with horizons skips the files wholly before them (their names carry
    their time range), still names actors from every file, and a late run rebuilds what it needs."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yml").write_text(RULE)
    rules = load_rules([tmp_path / "rules"], include_builtin=False)
    lake = Lake(tmp_path / "lake")
    old = _file(lake, "a", [_export(10, 5), _export(10, 20)])
    # The user's name is only in the old file; the noon export names the user id alone.
    noon = _file(lake, "b", [{**_export(12, 0), "username": None}])
    first, last = (int(_t(10).timestamp() * 1e6), int(_t(11).timestamp() * 1e6))
    old = str(Path(old).rename(Path(old).with_name(f"part-{first}_{last}-{'a' * 32}.parquet")))
    full, cache = MatchCache(lake, rules), MatchCache(lake, rules)
    read: list[list[str]] = []
    real = cache._fresh_view
    monkeypatch.setattr(cache, "_fresh_view", lambda files: (read.append(list(files)), real(files))[1])
    try:
        full.load([old, noon])
        cache.load([old, noon], {"list_export": _t(12)})
        assert read == [[noon]] and cache.size() == (1, 1) and cache.kept == {"list_export": _t(12)}
        [alert] = cache.run(_t(12), starts={"list_export": _t(12)})
        assert (alert.actor, alert.event_count, cache.rebuilds) == ("ana@example.com", 1, 0)
        # A late event in the 10:00 bucket: the run needs what the load left out.
        late = cache.run(_t(10), starts={"list_export": _t(10)})
        assert cache.rebuilds == 1
        assert late == full.run(_t(10), starts={"list_export": _t(10)})
        assert sorted((a.first_seen.hour, a.event_count) for a in late) == [(10, 2), (12, 1)]
    finally:
        cache.close()
        full.close()
