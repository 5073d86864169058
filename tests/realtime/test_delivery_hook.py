"""The watcher hands the alerts it stores to the outbox and delivers them: each alert once, even
though later batches grow it in place, and never again on a replay."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from crmguard.realtime.watch import Watcher, WatchOptions
from crmguard.sinks.config import load_config
from tests.realtime.conftest import Stream, alert_set, write_chunk


def test_watch_delivers_each_stored_alert_once(stream: Stream, tmp_path: Path) -> None:
    (tmp_path / "sinks.yml").write_text("sinks:\n  - name: siem\n    type: file\n    path: findings.jsonl\n")
    inbox = tmp_path / "inbox"
    options = WatchOptions(lake=tmp_path / "lake", state=tmp_path / "state.db", spool=tmp_path / "spool", inbox=inbox,
                           sinks=load_config(tmp_path / "sinks.yml"))
    watcher = Watcher(options)
    try:
        for i, chunk in enumerate(stream.chunks[:6]):
            write_chunk(inbox, i, chunk)
            watcher.step()
        watcher.run(threading.Event(), once=True)  # delivers what is due before returning
    finally:
        watcher.close()
    stored = alert_set(tmp_path / "state.db")
    findings = [json.loads(x) for x in (tmp_path / "findings.jsonl").read_text().splitlines()]
    uids = [f["finding_info"]["uid"] for f in findings]
    assert stored and len(uids) == len(set(uids)) == len(stored)
    assert set(uids) == set(stored)

    replay = Watcher(options)  # a restart with nothing new delivers nothing again
    try:
        assert replay.run(threading.Event(), once=True) == 0
    finally:
        replay.close()
    assert len((tmp_path / "findings.jsonl").read_text().splitlines()) == len(stored)
