"""Parity: the alerts `watch` raises over a stream equal those one batch `detect` raises over the
same events, late arrivals included; and the window arithmetic behind it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from crmguard.engine.rules import load_rules
from crmguard.engine.run import Alert
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
