"""`crmguard watch` from the command line: --once drains the inbox, unreadable inputs are set aside
without stopping anything, option errors are clear; the spool's claim and crash clean-up."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from crmguard.cli import EXIT_ERROR, EXIT_OK, main
from crmguard.realtime.spool import Spool
from tests.realtime.conftest import Stream, lake_counts, write_chunk


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
