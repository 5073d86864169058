"""Crash safety: `crmguard watch` killed with SIGKILL at several points of a stream (after the lake
commit, after the alert store commit, after the progress commit, and at a moment the test picks),
restarted each time, ends with every event stored once and exactly the batch run's alerts."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from crmguard.realtime.watch import KILL_AT_ENV
from tests.realtime.conftest import Stream, alert_set, differences, lake_counts, write_chunk

CLI = str(Path(sys.executable).parent / "crmguard")
TOKEN = "s3cret-test-token"
DEADLINE_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Watch:
    """One `crmguard watch` subprocess at a time, restarted after each kill."""

    def __init__(self, home: Path, inbox: Path, port: int) -> None:
        self.home, self.inbox, self.port = home, inbox, port
        self.proc: subprocess.Popen | None = None
        self.kills = 0
        # Kill points of successive starts; batches count from each start, so "stored:1" kills the
        # replay of the batch the previous kill cut short.
        self.plan = ["ingested:2", "compacting:1", "stored:1", "compacted:1", "committed:2"]
        self.log_path = home.parent / "watch.log"
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (closed by close())
        self.armed: str | None = None
        self.hit: list[str] = []

    def close(self) -> None:
        if self.alive():
            self.kill()
        self.log.close()

    def start(self) -> None:
        """Start the watcher, armed with the next planned kill point, if any; wait until it serves."""
        kill_at = self.armed = self.plan.pop(0) if self.plan else None
        env = {**os.environ, "WATCH_TOKEN": TOKEN}
        env.pop(KILL_AT_ENV, None)
        if kill_at:
            env[KILL_AT_ENV] = kill_at
        self.proc = subprocess.Popen(
            [CLI, "watch", "--home", str(self.home), "--inbox", str(self.inbox), "--listen", f"127.0.0.1:{self.port}",
             "--token-env", "WATCH_TOKEN", "--interval", "0.2", "--status-every", "5",
             # Every two evaluated files of a partition merged, the replaced ones deleted at once.
             "--compact-fanout", "2", "--compact-grace", "0"],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("watch did not start")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def died_by_kill(self) -> bool:
        """True when the process killed itself (or was killed); notes the kill point it was armed with."""
        died = self.proc is not None and self.proc.poll() == -signal.SIGKILL
        if died and self.armed:
            self.hit.append(self.armed)
            self.armed = None
        return died

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.kills += 1
        self.armed = None  # killed by the test, not at its kill point

    def post(self, lines: list[str]) -> None:
        """POST until acknowledged (a client retries when the watcher is down), restarting it if needed."""
        body = ("\n".join(lines) + "\n").encode()
        for _ in range(5):
            if not self.alive():
                self.kills += self.died_by_kill()
                self.start()
            try:
                r = httpx.post(f"http://127.0.0.1:{self.port}/v1/events", content=body, timeout=30,
                               headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"})
            except httpx.TransportError:
                continue
            assert r.status_code == 202, r.text
            return
        raise AssertionError("the body was never acknowledged")

    def wait_idle(self, state: Path) -> None:
        """Poll until the inbox and spool are empty and the lake is evaluated, or the process died."""
        deadline = time.monotonic() + DEADLINE_S
        ready = self.home / "spool" / "ready"
        while time.monotonic() < deadline:
            if not self.alive():
                return
            if not any(self.inbox.iterdir()) and ready.exists() and not any(ready.iterdir()) and _evaluated(state):
                return
            time.sleep(0.05)
        raise AssertionError("watch did not catch up")


def _evaluated(state: Path) -> bool:
    if not state.exists():
        return False
    db = sqlite3.connect(state)
    try:
        done = {r[0] for r in db.execute("SELECT path FROM watch_files")}
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()
    lake = state.parent / "lake" / "events"
    return {str(p) for p in lake.glob("source=*/date=*/*.parquet")} <= done


@pytest.mark.integration
def test_kill_9_at_any_point_loses_nothing_and_repeats_nothing(stream: Stream, tmp_path: Path) -> None:
    home, inbox = tmp_path / "home", tmp_path / "inbox"
    inbox.mkdir()
    state = home / "state.db"
    watch = Watch(home, inbox, _free_port())
    try:
        _stream_with_kills(watch, stream, home, inbox)
    finally:
        watch.close()
    assert watch.kills >= 4, watch.log_path.read_text()
    assert {"compacting:1", "compacted:1"} <= set(watch.hit), (watch.hit, watch.log_path.read_text())
    assert lake_counts(home / "lake") == (stream.events, stream.events)
    streamed = alert_set(state)
    assert streamed == stream.batch_alerts, differences(streamed, stream.batch_alerts)
    db = sqlite3.connect(state)
    assert db.execute("SELECT count(*) - count(DISTINCT id) FROM alerts").fetchall()[0][0] == 0
    db.close()


def _stream_with_kills(watch: Watch, stream: Stream, home: Path, inbox: Path) -> None:
    state = home / "state.db"
    # The watcher kills itself at each commit boundary (see Watch.plan); then the test kills it
    # right after a 202 and while a batch writes the lake.
    watch.start()
    for i, chunk in enumerate(stream.chunks):
        if not watch.alive():
            assert watch.died_by_kill(), watch.log_path.read_text()
            watch.kills += 1
            watch.start()
        if i % 2:
            watch.post(chunk)
        else:
            write_chunk(inbox, i, chunk)
        if i == 7 and watch.alive():
            watch.kill()  # the body was acknowledged, not yet ingested
            watch.start()
        if i == 8:
            deadline = time.monotonic() + DEADLINE_S
            while watch.alive() and not any((home / "lake").glob("_staging/*")) and any(inbox.iterdir()) \
                    and time.monotonic() < deadline:
                time.sleep(0.005)
            if watch.alive():
                watch.kill()
                watch.start()
        watch.wait_idle(state)
    if not watch.alive():
        watch.kills += watch.died_by_kill()
        watch.start()
    watch.wait_idle(state)
    watch.proc.send_signal(signal.SIGINT)  # type: ignore[union-attr]
    assert watch.proc.wait(timeout=60) == 0  # type: ignore[union-attr]  (Ctrl-C: clean stop)
