"""Compaction: many small files of a partition become one, readers always see each event once,
and a crash at any step leaves the lake whole."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from crmguard.errors import LakeError
from crmguard.ingest import ingest
from crmguard.lake import Lake
from crmguard.lake.store import time_range
from crmguard.realtime.compaction import CompactionPolicy, Compactor
from tests.lake.test_file_ranges import elf


def _events(lake: Lake) -> list[tuple]:
    con = lake.connect()
    try:
        return con.execute("SELECT event_id, time, action, raw FROM events ORDER BY event_id").fetchall()
    finally:
        con.close()


def small_files(tmp_path: Path, n: int = 4) -> Lake:
    """A lake with ``n`` files in one partition, six hours of events each."""
    lake = Lake(tmp_path / "lake")
    for i in range(n):
        ingest([str(elf(tmp_path / f"{i}.csv", range(6 * i, 6 * i + 6)))], lake)
    return lake


def test_a_switched_merge_replaces_its_files_for_readers(tmp_path: Path) -> None:
    lake = small_files(tmp_path)
    before, files = _events(lake), lake.event_files()
    assert len(files) == 4
    merge = lake.merge(files)
    assert merge.rows == len(before) == 24
    assert lake.event_files() == files  # nothing visible changes before the switch
    merged = lake.switch(merge)
    assert lake.event_files() == [merged]
    assert _events(lake) == before
    assert time_range(merged) == (time_range(files[0])[0], time_range(files[-1])[1])  # type: ignore[index]
    # Hidden, not deleted: a reader that listed them before the switch can still read them.
    assert all(Path(f).exists() for f in files)
    assert lake.reap(grace_s=3600) == []
    assert sorted(lake.reap(grace_s=0)) == files
    assert not any(Path(f).exists() for f in files) and not any(lake.journal_dir.iterdir())
    assert lake.event_files() == [merged] and _events(lake) == before


def test_replaying_into_a_compacted_partition_stores_nothing(tmp_path: Path) -> None:
    lake = small_files(tmp_path)
    lake.switch(lake.merge(lake.event_files()))
    replay = ingest([str(elf(tmp_path / "all.csv", range(0, 24)))], lake)
    assert (replay.total.stored, replay.total.duplicate) == (0, 24)
    lake.reap(grace_s=0)
    replay = ingest([str(elf(tmp_path / "all.csv", range(0, 24)))], lake)
    assert (replay.total.stored, replay.total.duplicate) == (0, 24)


def test_a_crash_before_the_rename_leaves_the_old_files_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = small_files(tmp_path)
    before, files = _events(lake), lake.event_files()
    merge = lake.merge(files)
    real = os.replace

    def crash_at_rename(src: str, dst: str) -> None:
        if str(src) == merge.staged:
            raise KeyboardInterrupt  # the process dies between the journal and the rename
        real(src, dst)

    monkeypatch.setattr(os, "replace", crash_at_rename)
    with pytest.raises(KeyboardInterrupt):
        lake.switch(merge)
    monkeypatch.undo()
    restarted = Lake(lake.root)
    assert any(restarted.journal_dir.iterdir())
    assert restarted.event_files() == files and _events(restarted) == before
    assert restarted.reap(grace_s=3600) == []  # undone at once, whatever the grace
    assert not Path(merge.staged).exists() and not any(restarted.journal_dir.iterdir())
    assert restarted.event_files() == files


def test_a_file_is_merged_once_and_partitions_are_not_mixed(tmp_path: Path) -> None:
    lake = small_files(tmp_path)
    files = lake.event_files()
    first, second = lake.merge(files[:3]), lake.merge(files[2:])
    lake.switch(first)
    with pytest.raises(LakeError, match="merged or deleted meanwhile"):
        lake.switch(second)
    other = Lake(tmp_path / "lake")
    (tmp_path / "okta.json").write_text(
        '{"uuid": "u1", "published": "2025-04-02T10:00:00.000Z", "eventType": "user.session.start", '
        '"actor": {"id": "00u1", "alternateId": "a@example.com"}, "outcome": {"result": "SUCCESS"}}\n')
    ingest([str(tmp_path / "okta.json")], other)
    with pytest.raises(LakeError, match="partitions"):
        other.merge(other.event_files())


def test_a_merge_of_merges_is_reaped_in_order(tmp_path: Path) -> None:
    """A merged file merged again: reaping both journals at once deletes every replaced file and
    leaves each event visible once, whatever order the journals are listed in."""
    lake = small_files(tmp_path, n=4)
    before, files = _events(lake), lake.event_files()
    first = lake.switch(lake.merge(files[:2]))
    second = lake.switch(lake.merge([first, *files[2:]]))
    assert lake.event_files() == [second] and _events(lake) == before
    deleted = Lake(lake.root).reap(grace_s=0)
    assert sorted(deleted) == sorted([*files, first])
    assert [str(p) for p in lake.events_dir.glob("*/*/*.parquet")] == [second]
    assert Lake(lake.root).event_files() == [second] and _events(lake) == before


@pytest.mark.skipif(not hasattr(os, "setpriority") or not os.path.exists("/proc/self/task"),
                    reason="per-thread priorities are a Linux feature")
def test_a_background_merge_runs_at_the_lowest_priority_and_the_batches_keep_theirs(tmp_path: Path) -> None:
    lake = small_files(tmp_path)
    seen: list[int] = []
    merge = lake.merge

    def observed(files: list[str], con: object = None) -> object:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return merge(files, con)

    lake.merge = observed  # type: ignore[method-assign]
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    compactor = Compactor(lake, CompactionPolicy(fanout=2))
    try:
        compactor.start(lake.event_files())
        done = compactor.take(wait=True)
    finally:
        compactor.close()
    assert done is not None and done.rows == 24
    assert seen == [19]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
