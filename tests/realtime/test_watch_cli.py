"""`crmguard watch` from the command line: --once drains the inbox, unreadable inputs are set aside
without stopping anything, option errors are clear; the spool's claim and crash clean-up."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from crmguard.cli import EXIT_ERROR, EXIT_OK, main
from crmguard.realtime import watch
from crmguard.realtime.spool import Spool
from crmguard.realtime.watch import Watcher, WatchOptions
from tests.realtime.conftest import Stream, lake_counts, write_chunk
from tests.sources.test_large_json_records import api_event


def test_once_drains_the_inbox_and_sets_bad_files_aside(stream: Stream, tmp_path: Path, capsys) -> None:
    home, inbox = tmp_path / "home", tmp_path / "inbox"
    write_chunk(inbox, 0, stream.chunks[0][:300])
    (inbox / "notes.csv").write_text("when,what\n2025-03-03,hello\n")  # not a log format
    (inbox / "half.ndjson.part").write_text("{}")  # still being written: left alone
    assert main(["watch", "--home", str(home), "--inbox", str(inbox), "--once"]) == EXIT_OK
    err = capsys.readouterr().err
    assert "watch: inbox" in err and "could not ingest notes.csv" in err and "stopped after 1 batches" in err
    assert lake_counts(home / "lake") == (300, 300)
    assert [p.name for p in inbox.iterdir()] == ["half.ndjson.part"]
    assert [p.name.split(".", 1)[1] for p in (home / "spool" / "failed").iterdir()] == ["notes.csv"]
    assert not any((home / "spool" / "ready").iterdir())
    db = sqlite3.connect(home / "state.db")
    assert db.execute("SELECT count(*), sum(events) FROM watch_batches").fetchall()[0] == (1, 300)
    db.close()

    # Run again with nothing new: nothing to do.
    assert main(["watch", "--home", str(home), "--inbox", str(inbox), "--once"]) == EXIT_OK
    assert "stopped after 0 batches" in capsys.readouterr().err


def test_option_errors_are_clear(tmp_path: Path, capsys, monkeypatch) -> None:
    home = str(tmp_path / "home")
    assert main(["watch", "--home", home, "--listen", "0.0.0.0:8787", "--once"]) == EXIT_ERROR
    assert "needs a bearer token" in capsys.readouterr().err
    monkeypatch.delenv("NO_SUCH_TOKEN_VAR", raising=False)
    assert main(["watch", "--home", home, "--listen", "127.0.0.1:0", "--token-env", "NO_SUCH_TOKEN_VAR"]) == EXIT_ERROR
    assert "NO_SUCH_TOKEN_VAR is not set" in capsys.readouterr().err
    assert main(["watch", "--home", home, "--listen", "8787"]) == EXIT_ERROR
    assert "HOST:PORT" in capsys.readouterr().err
    (tmp_path / "empty").write_text("\n")
    assert main(["watch", "--home", home, "--token-file", str(tmp_path / "empty")]) == EXIT_ERROR
    assert "token file is empty" in capsys.readouterr().err


def test_spool_orders_by_arrival_and_forgets_unacknowledged_bodies(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    first = spool.put(b'{"a": 1}', "ndjson")
    second = spool.put(b'{"a": 2}\n', "ndjson")
    assert [f.receipt for f in spool.pending()] == [first.receipt, second.receipt]
    assert first.path.read_bytes() == b'{"a": 1}\n' and first.kind == "ndjson"
    (spool.tmp / "half-written").write_bytes(b'{"a"')  # a crash mid-write, never acknowledged
    assert spool.clean() == 1 and not any(spool.tmp.iterdir())
    assert len(spool.pending(limit_bytes=1)) == 1  # at least one, then only what fits
    assert spool.depth() == (2, first.size + 1 + second.size)
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "sub" / "Login.csv").write_text("EVENT_TYPE\n")
    (inbox / ".hidden").write_text("x")
    [claimed] = spool.claim(inbox)
    assert claimed.path.name.endswith("-" + claimed.receipt + ".Login.csv") and claimed.kind == "file"
    assert not (inbox / "sub" / "Login.csv").exists() and (inbox / ".hidden").exists()
    spool.remove(spool.pending())
    assert spool.depth() == (0, 0)


def test_bodies_that_run_out_of_memory_are_set_aside(stream: Stream, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP bodies whose parse needs more than the ingest memory limit, parsed ahead or with their
    batch, are moved to `<spool>/failed` with the reason logged; the watcher goes on."""
    monkeypatch.setenv("CRMGUARD_INGEST_MEMORY_LIMIT", "60MB")
    monkeypatch.setattr(watch, "AHEAD_MIN_BYTES", 0)
    lines: list[str] = []
    watcher = Watcher(WatchOptions(lake=tmp_path / "lake", state=tmp_path / "state.db", spool=tmp_path / "spool"),
                      log=lines.append)
    big = "".join(json.dumps(api_event(i, 500)) + "\n" for i in range(600)).encode()  # 23 MB
    try:
        small = watcher.spool.put(("\n".join(stream.chunks[0][:200]) + "\n").encode(), "ndjson")
        record = watcher.step()
        assert record is not None and record.detail["ingest"]["stored"] == 200 and not record.detail["failed"]
        ahead = watcher.spool.put(big, "ndjson")
        assert watcher.stage_ahead() == 1
        record = watcher.step()
        assert record is not None and record.detail["ingest"]["read"] == 0 and len(record.detail["failed"]) == 1
        later = watcher.spool.put(big, "ndjson")
        record = watcher.step()
        assert record is not None and record.detail["ingest"]["read"] == 0 and len(record.detail["failed"]) == 1
    finally:
        watcher.close()
    assert sorted(p.name for p in (tmp_path / "spool" / "failed").iterdir()) == sorted([ahead.path.name, later.path.name])
    assert not watcher.spool.pending() and not small.path.exists()
    oom = [line for line in lines if "out of memory" in line]
    said = (f"watch: could not ingest 1 HTTP body (moved to {tmp_path / 'spool' / 'failed'}): out of memory: "
            "parsing reached DuckDB's ingest limit of 60MB")
    assert len(oom) == 2 and all(line.startswith(said) and "CRMGUARD_INGEST_MEMORY_LIMIT" in line for line in oom)
    assert lake_counts(tmp_path / "lake") == (200, 200)


def test_bodies_set_aside_are_stored_and_evaluated_once_ingested_by_hand(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The recovery the README gives for `<spool>/failed`: once the cause is fixed (here a higher
    memory limit), `crmguard ingest <spool>/failed` stores the bodies, and the running watcher
    evaluates the lake files that ingest wrote in its next batch: nothing is lost."""
    monkeypatch.setenv("CRMGUARD_INGEST_MEMORY_LIMIT", "60MB")
    options = WatchOptions(lake=tmp_path / "lake", state=tmp_path / "state.db", spool=tmp_path / "spool")
    watcher = Watcher(options, log=lambda line: None)
    try:
        watcher.spool.put("".join(json.dumps(api_event(i, 500)) + "\n" for i in range(600)).encode(), "ndjson")
        record = watcher.step()
        assert record is not None and len(record.detail["failed"]) == 1 and lake_counts(tmp_path / "lake") == (0, 0)
        monkeypatch.setenv("CRMGUARD_INGEST_MEMORY_LIMIT", "2GB")
        assert main(["ingest", "--lake", str(tmp_path / "lake"), "--json", str(tmp_path / "spool" / "failed")]) == EXIT_OK
        assert lake_counts(tmp_path / "lake") == (600, 600)
        record = watcher.step()
        assert record is not None and record.inputs == 0 and record.events == 600
        assert watcher.step() is None  # evaluated once
    finally:
        watcher.close()


def test_a_second_watcher_on_the_same_spool_or_state_is_refused(tmp_path: Path, capsys) -> None:
    """Two watchers on one spool would both take its inputs: the second is refused, naming the
    first's pid, until the first stops."""
    import os

    from crmguard.errors import ConfigError

    home = tmp_path / "home"
    options = WatchOptions(lake=home / "lake", state=home / "state.db", spool=home / "spool")
    first = Watcher(options)
    try:
        with pytest.raises(ConfigError, match=f"another crmguard watch \\(pid {os.getpid()}\\) is using this spool"):
            Watcher(options)
        # Another state DB on the same spool is refused too, and so is the same state DB with another spool.
        with pytest.raises(ConfigError, match="this spool"):
            Watcher(WatchOptions(lake=home / "lake", state=tmp_path / "other.db", spool=home / "spool"))
        with pytest.raises(ConfigError, match="this state DB"):
            Watcher(WatchOptions(lake=home / "lake", state=home / "state.db", spool=tmp_path / "other-spool"))
        assert main(["watch", "--home", str(home), "--once"]) == EXIT_ERROR
        assert "another crmguard watch" in " ".join(capsys.readouterr().err.split())
    finally:
        first.close()
    again = Watcher(options)  # released on close (and by the kernel when a watcher dies)
    again.close()
