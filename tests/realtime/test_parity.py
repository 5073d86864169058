"""Parity: the alerts `watch` raises over a stream equal those one batch `detect` raises over the
same events, late arrivals included; and the window arithmetic behind it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from crmguard.engine.rules import load_rules
from crmguard.engine.run import Alert
from crmguard.lake import Lake
from crmguard.realtime import watch
from crmguard.realtime.compaction import CompactionPolicy
from crmguard.realtime.watch import Watcher, WatchOptions
from crmguard.realtime.window import StoredEpisode, floor_time, superseded, to_store, window_start
from tests.realtime.conftest import Stream, alert_set, differences, lake_counts, write_chunk

T = dt.datetime(2025, 3, 4, 10, 17, 23, tzinfo=dt.UTC)


def test_streamed_alerts_equal_batch_alerts(stream: Stream, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    watcher = Watcher(WatchOptions(lake=tmp_path / "lake", state=tmp_path / "state.db", spool=tmp_path / "spool",
                                   inbox=inbox))
    late = 0
    try:
        for i, chunk in enumerate(stream.chunks):
            write_chunk(inbox, i, chunk)
            record = watcher.step()
            assert record is not None and record.events == len(chunk)
            late += record.late
        assert watcher.step() is None  # nothing left
    finally:
        watcher.close()
    assert late > 0  # the stream really had late events
    assert lake_counts(tmp_path / "lake") == (stream.events, stream.events)
    streamed = alert_set(tmp_path / "state.db")
    assert len(stream.batch_alerts) >= 5
    assert streamed == stream.batch_alerts, differences(streamed, stream.batch_alerts)
    assert all(fired for *_, fired in streamed.values())  # every alert says when it fired, as detect does


def test_a_pruned_cache_gives_the_same_alerts(stream: Stream, tmp_path: Path) -> None:
    """The match cache drops every candidate no later run can read after each batch, with no late
    tolerance: late events make it rebuild from the lake, and the alerts are still the batch's."""
    inbox = tmp_path / "inbox"
    watcher = Watcher(WatchOptions(lake=tmp_path / "lake", state=tmp_path / "state.db", spool=tmp_path / "spool",
                                   inbox=inbox, late_tolerance_s=0, prune_growth=0))
    pruned = 0
    try:
        for i, chunk in enumerate(stream.chunks):
            write_chunk(inbox, i, chunk)
            record = watcher.step()
            assert record is not None
            pruned += record.detail.get("cache", {}).get("pruned", 0)
        rebuilds = watcher.cache.rebuilds
    finally:
        watcher.close()
    assert pruned > 0 and rebuilds > 0
    streamed = alert_set(tmp_path / "state.db")
    assert streamed == stream.batch_alerts, differences(streamed, stream.batch_alerts)


def test_compacting_the_lake_while_streaming_gives_the_same_alerts(stream: Stream, tmp_path: Path) -> None:
    """Every two evaluated files of a partition are merged and the replaced ones deleted at once,
    while a cache pruned after every batch rebuilds from the merged files: the lake still holds each
    event once, and the alerts are the batch's."""
    inbox, lake = tmp_path / "inbox", tmp_path / "lake"
    watcher = Watcher(WatchOptions(lake=lake, state=tmp_path / "state.db", spool=tmp_path / "spool", inbox=inbox,
                                   late_tolerance_s=0, prune_growth=0,
                                   compaction=CompactionPolicy(fanout=2, grace_s=0)))
    merged = []
    try:
        for i, chunk in enumerate(stream.chunks):
            write_chunk(inbox, i, chunk)
            record = watcher.step()
            assert record is not None and record.events == len(chunk)
            merged.append(watcher.compact(wait=True))
        assert watcher.step() is None
        rebuilds = watcher.cache.rebuilds
    finally:
        watcher.close()
    assert sum(m is not None for m in merged) >= 5 and rebuilds > 0
    Lake(lake).reap(grace_s=0)  # what close() switched in last
    files = Lake(lake).event_files()
    assert {str(p) for p in lake.glob("events/*/*/*.parquet")} == set(files)
    assert set(files) & set(filter(None, merged))
    partitions = {str(Path(f).parent) for f in files}
    assert len(files) < len(partitions) * 3  # at most fanout - 1 files per tier, and few tiers
    assert lake_counts(lake) == (stream.events, stream.events)
    streamed = alert_set(tmp_path / "state.db")
    assert streamed == stream.batch_alerts, differences(streamed, stream.batch_alerts)


def test_window_reaches_back_to_buckets_and_open_episodes() -> None:
    rules = load_rules()
    longest = max(r.correlation.timespan for r in rules if r.correlation)
    assert window_start(T, rules, []) == T - longest
    corr = next(r for r in rules if r.correlation)
    span = corr.correlation.timespan  # type: ignore[union-attr]
    old = T - 30 * longest
    open_ep = StoredEpisode("a", corr.id, "k", old, T - span + dt.timedelta(seconds=1))
    closed = StoredEpisode("b", corr.id, "k", old - longest, T - span - dt.timedelta(seconds=1))
    assert window_start(T, rules, [open_ep, closed]) == old - span
    only_detections = [r for r in rules if r.condition and not r.hidden]
    assert window_start(T, only_detections, []) == min(floor_time(T, r.dedup_period) for r in only_detections)
    assert floor_time(T, dt.timedelta(hours=1)) == dt.datetime(2025, 3, 4, 10, tzinfo=dt.UTC)


def _alert(id_: str, first: dt.datetime, last: dt.datetime) -> Alert:
    return Alert(id_, "r", "t", "high", "ana", first, last, 2, "ana", ())


def test_only_alerts_reaching_the_new_events_are_stored_and_merged_episodes_supersede() -> None:
    new = _alert("new", T - dt.timedelta(hours=2), T + dt.timedelta(minutes=1))
    old = _alert("old", T - dt.timedelta(days=1), T - dt.timedelta(hours=5))
    assert to_store([new, old], T) == [new]
    covered = StoredEpisode("was", "r", "ana", T - dt.timedelta(hours=1), T - dt.timedelta(minutes=30))
    other_group = StoredEpisode("x", "r", "bob", T - dt.timedelta(hours=1), T)
    itself = StoredEpisode("new", "r", "ana", new.first_seen, new.last_seen)
    assert superseded([new], [covered, other_group, itself]) == ["was"]


def test_pipelined_loop_raises_the_batch_alerts(stream: Stream, tmp_path: Path) -> None:
    """`run` (ingesting the next chunk while evaluating the last) ends with the batch run's alerts,
    each event evaluated once."""
    import threading
    import time

    inbox = tmp_path / "inbox"
    watcher = Watcher(WatchOptions(lake=tmp_path / "lake", state=tmp_path / "state.db", spool=tmp_path / "spool",
                                   inbox=inbox, interval_s=0.05))
    stop = threading.Event()
    loop = threading.Thread(target=watcher.run, args=(stop,))
    loop.start()
    try:
        for i, chunk in enumerate(stream.chunks):
            write_chunk(inbox, i, chunk)
            time.sleep(0.1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (any(inbox.iterdir()) or watcher.spool.depth()[0]
                                               or watcher.metrics.events < stream.events):
            time.sleep(0.05)
    finally:
        stop.set()
        loop.join(timeout=120)
        watcher.close()
    assert watcher.metrics.events == stream.events  # evaluated once each
    assert watcher.metrics.batch_errors == 0
    assert lake_counts(tmp_path / "lake") == (stream.events, stream.events)
    streamed = alert_set(tmp_path / "state.db")
    assert streamed == stream.batch_alerts, differences(streamed, stream.batch_alerts)


def test_a_failed_evaluation_is_retried_with_its_inputs(stream: Stream, tmp_path: Path, monkeypatch) -> None:
    """An engine error after the lake commit records nothing; the next step takes the same inputs
    again (their events now duplicates), evaluates the lake files the failed one wrote, and commits."""
    inbox = tmp_path / "inbox"
    watcher = Watcher(WatchOptions(lake=tmp_path / "lake", state=tmp_path / "state.db", spool=tmp_path / "spool",
                                   inbox=inbox))
    write_chunk(inbox, 0, stream.chunks[0])
    real = watcher.cache.run
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("engine down")
        return real(*args, **kwargs)

    monkeypatch.setattr(watcher.cache, "run", failing)
    try:
        with pytest.raises(RuntimeError, match="engine down"):
            watcher.step()
        assert watcher.spool.depth()[0] == 1  # the input is still spooled
        record = watcher.step()
        assert record is not None and record.events == len(stream.chunks[0])
        assert record.detail["ingest"]["duplicate"] == len(stream.chunks[0])
        assert watcher.spool.depth()[0] == 0
        assert watcher.step() is None
    finally:
        watcher.close()


def test_bodies_parsed_ahead_give_the_same_lake_and_alerts(stream: Stream, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP bodies parsed while their batch fills (`Watcher.stage_ahead`) are committed as if parsed
    with the batch: every event stored once, bad lines quarantined with their counts, the alerts
    the batch run's. A batch that takes only part of the bodies parsed ahead parses them again."""
    monkeypatch.setattr(watch, "AHEAD_MIN_BYTES", 0)
    parsed: list[int] = []

    def stage_file(path: Path, *args: object) -> object:
        parsed.append(path.stat().st_size)
        return real_stage_file(path, *args)

    real_stage_file = watch.stage_file
    monkeypatch.setattr(watch, "stage_file", stage_file)
    lake = tmp_path / "lake"
    sent = reparsed = 0
    watcher = Watcher(WatchOptions(lake=lake, state=tmp_path / "state.db", spool=tmp_path / "spool"))
    read = stored = duplicate = quarantined = ahead = 0
    try:
        for i, chunk in enumerate(stream.chunks):
            thirds = [chunk[j * len(chunk) // 3:(j + 1) * len(chunk) // 3] for j in range(3)]
            bodies = []
            for j, lines in enumerate(thirds):
                bad = ['{"not json'] if j == 1 else []
                # The second chunk's first body comes twice: the copy's events are duplicates.
                copies = 2 if (i, j) == (1, 0) else 1
                for _ in range(copies):
                    bodies.append(watcher.spool.put(("\n".join(lines + bad) + "\n").encode(), "ndjson"))
                    sent += bodies[-1].size
                if j < 2 and (i, j) != (3, 0):
                    ahead += watcher.stage_ahead()
            if i == 3:
                # The batch takes the first body only: the second, parsed ahead with it, is parsed again.
                reparsed = bodies[0].size + bodies[1].size
                watcher.options.max_batch_bytes = bodies[0].size
                record = watcher.step()
                assert record is not None and record.inputs == 1
                watcher.options.max_batch_bytes = 256 << 20
                counts = record.detail["ingest"]
                read, stored = read + counts["read"], stored + counts["stored"]
                duplicate, quarantined = duplicate + counts["duplicate"], quarantined + counts["quarantined"]
            record = watcher.step()
            assert record is not None
            counts = record.detail["ingest"]
            read, stored = read + counts["read"], stored + counts["stored"]
            duplicate, quarantined = duplicate + counts["duplicate"], quarantined + counts["quarantined"]
        assert watcher.step() is None
        assert not watcher._ahead
    finally:
        watcher.close()
    assert ahead == 2 * len(stream.chunks) + 1  # every first two bodies, and the copy
    assert sum(parsed) == sent + reparsed  # what was parsed ahead was not parsed again
    assert (stored, quarantined) == (stream.events, len(stream.chunks))
    assert duplicate == len(stream.chunks[1]) // 3
    assert read == stored + duplicate + quarantined
    assert lake_counts(lake) == (stream.events, stream.events)
    con = Lake(lake).connect()
    try:
        [(reasons,)] = con.execute("SELECT list(DISTINCT reason) FROM quarantine").fetchall()
    finally:
        con.close()
    assert reasons == ["invalid JSON"]
    streamed = alert_set(tmp_path / "state.db")
    assert streamed == stream.batch_alerts, differences(streamed, stream.batch_alerts)


METRIC_RULES = """title: Customer rows
name: customer_rows
logsource: {product: salesforce}
detection:
  sel: {object: [Contact, Account, Lead], rows|gte: 1}
  condition: sel
---
title: Okta sign-in
name: okta_sign_in
logsource: {product: okta}
detection:
  sel: {action: login, outcome: success}
  condition: sel
---
title: Many customer rows in an hour
id: 9a6f1c2e-0b7d-4e3a-8c5f-1d2e3f4a5b60
correlation: {type: value_sum, rules: [customer_rows], group-by: [actor], timespan: 1h, condition: {gte: 20000, field: rows}}
level: high
---
title: Large customer reads at the 90th percentile
id: 9a6f1c2e-0b7d-4e3a-8c5f-1d2e3f4a5b61
correlation: {type: value_percentile, rules: [customer_rows], group-by: [actor], timespan: 1h,
              condition: {gte: 1000, field: rows, percentile: 90}}
level: medium
---
title: Customer reads without an Okta sign-in in the half hour
id: 9a6f1c2e-0b7d-4e3a-8c5f-1d2e3f4a5b62
correlation: {type: temporal, group-by: [actor], timespan: 30m, condition: customer_rows and not okta_sign_in}
level: low
"""


def test_metric_and_extended_correlations_stream_as_they_batch(stream: Stream, tmp_path: Path) -> None:
    from crmguard.detect import detect

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "metrics.yml").write_text(METRIC_RULES)
    detect(Lake(stream.batch_lake), tmp_path / "batch.db", [rules])
    batch = alert_set(tmp_path / "batch.db")
    ours = {k: v for k, v in batch.items() if v[0].startswith("9a6f1c2e")}
    assert {v[0][-2:] for v in ours.values()} == {"60", "61", "62"}  # each kind fires on this stream
    inbox = tmp_path / "inbox"
    watcher = Watcher(WatchOptions(lake=tmp_path / "lake", state=tmp_path / "state.db", spool=tmp_path / "spool",
                                   inbox=inbox, rule_dirs=[rules]))
    try:
        for i, chunk in enumerate(stream.chunks):
            write_chunk(inbox, i, chunk)
            assert watcher.step() is not None
    finally:
        watcher.close()
    streamed = alert_set(tmp_path / "state.db")
    assert streamed == batch, differences(streamed, batch)
