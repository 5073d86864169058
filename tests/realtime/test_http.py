"""HTTP ingest against a running watcher: every bad request gets a clear 4xx and changes nothing,
the watcher keeps running and still ingests the good requests that follow; /healthz and /metrics."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from crmguard.realtime.http import Server, create_app
from crmguard.realtime.watch import Watcher, WatchOptions
from tests.realtime.conftest import Stream, lake_counts

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 200_000


@dataclass
class Running:
    url: str
    watcher: Watcher
    home: Path


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    """A watcher loop in a thread with its HTTP server on a free loopback port."""
    watcher = Watcher(WatchOptions(lake=tmp_path / "lake", state=tmp_path / "state.db", spool=tmp_path / "spool",
                                   interval_s=0.05, status_every_s=60))
    watcher.recover()
    server = Server(create_app(watcher.spool, watcher.metrics, TOKEN, MAX_BODY, watcher.health), "127.0.0.1", 0)
    host, port = server.start()
    stop = threading.Event()
    loop = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    loop.start()
    try:
        yield Running(f"http://{host}:{port}", watcher, tmp_path)
    finally:
        stop.set()
        loop.join(timeout=60)
        server.stop()
        watcher.close()


def _wait_for_events(r: Running, n: int) -> None:
    deadline = time.monotonic() + 120
    while r.watcher.metrics.events < n:
        assert time.monotonic() < deadline, "the watcher did not ingest the accepted events"
        time.sleep(0.02)


@pytest.mark.integration
def test_bad_requests_are_refused_clearly_and_the_watcher_goes_on(running: Running, stream: Stream) -> None:
    good = stream.chunks[0][:40]
    ndjson = ("\n".join(good) + "\n").encode()
    post = f"{running.url}/v1/events"
    nd = {**AUTH, "Content-Type": "application/x-ndjson"}

    r = httpx.post(post, content=ndjson, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized" and "Bearer" in r.headers["WWW-Authenticate"]
    r = httpx.post(post, content=ndjson, headers={**nd, "Authorization": "Bearer wrong"})
    assert r.status_code == 401

    r = httpx.post(post, content=b"x" * (MAX_BODY + 1), headers=nd)
    assert r.status_code == 413 and r.json()["limit"] == MAX_BODY

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(30):
            yield ndjson

    r = httpx.post(post, content=chunked(), headers=nd)
    assert r.status_code == 413 and "more than" in r.json()["detail"]

    broken = ndjson + b'{"eventType": "user.session.start", oops}\n'
    r = httpx.post(post, content=broken, headers=nd)
    assert r.status_code == 400 and r.json()["error"] == "malformed JSON" and r.json()["line"] == len(good) + 1

    r = httpx.post(post, content=b'[\n{"eventType": "a"},\n{"eventType": }\n]', headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["line"] == 3 and "column" in r.json()

    r = httpx.post(post, content=b'[{"eventType": "a"}, 42]', headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["record"] == 2 and "not an object" in r.json()["detail"]

    r = httpx.post(post, content=b"  \n", headers=nd)
    assert r.status_code == 400 and r.json()["error"] == "empty body"

    r = httpx.post(f"{post}?format=csv", content=ndjson, headers=AUTH)
    assert r.status_code == 400 and "format must be" in r.json()["detail"]

    r = httpx.post(post, content=b"EVENT_TYPE,TIMESTAMP\nLogin,20250303\n", headers={**AUTH, "Content-Type": "text/csv"})
    assert r.status_code == 415 and "inbox" in r.json()["detail"]

    r = httpx.post(post, content=b'{"hello": "world", "when": "2025-03-03T10:00:00Z"}\n', headers=nd)
    assert r.status_code == 422 and r.json()["error"] == "unknown format" and r.json()["record"] == 1

    # Nothing was spooled or stored by any of those; the loop is alive and healthy.
    assert running.watcher.metrics.records_accepted == 0
    health = httpx.get(f"{running.url}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"

    r = httpx.post(post, content=ndjson, headers=nd)
    assert r.status_code == 202 and r.json()["records"] == len(good) and len(r.json()["receipt"]) == 32
    array = json.dumps([orjson.loads(x) for x in stream.chunks[0][40:60]]).encode()
    r = httpx.post(post, content=array, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 202 and r.json()["records"] == 20
    pretty = json.dumps(orjson.loads(stream.chunks[0][60]), indent=2).encode()  # one object over many lines
    r = httpx.post(post, content=pretty, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 202 and r.json()["records"] == 1
    _wait_for_events(running, 61)
    assert lake_counts(running.home / "lake") == (61, 61)

    # The same records again (a client retrying): accepted, stored once.
    r = httpx.post(post, content=ndjson, headers=nd)
    assert r.status_code == 202
    deadline = time.monotonic() + 120
    while running.watcher.metrics.duplicates < len(good):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert lake_counts(running.home / "lake") == (61, 61)

    metrics = httpx.get(f"{running.url}/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for line in ("crmguard_watch_events_ingested_total 61", 'crmguard_watch_http_requests_total{status="401"} 2',
                 'crmguard_watch_http_requests_total{status="413"} 2', 'crmguard_watch_http_requests_total{status="400"} 5',
                 'crmguard_watch_http_requests_total{status="415"} 1', 'crmguard_watch_http_requests_total{status="422"} 1',
                 'crmguard_watch_http_requests_total{status="202"} 4', "crmguard_watch_spool_files 0"):
        assert line in text.splitlines(), line
    for name in ("crmguard_watch_alerts_total", "crmguard_watch_batches_total", "crmguard_watch_lag_seconds",
                 "crmguard_watch_last_batch_seconds"):
        assert f"# TYPE {name} " in text


def test_health_turns_503_when_the_loop_is_stuck(tmp_path: Path) -> None:
    watcher = Watcher(WatchOptions(lake=tmp_path / "lake", state=tmp_path / "state.db", spool=tmp_path / "spool",
                                   stuck_after_s=5))
    try:
        assert watcher.health()[0]
        watcher.metrics.heartbeat -= 6
        ok, doc = watcher.health()
        assert not ok and doc["status"] == "stuck" and doc["loop_idle_s"] >= 6
    finally:
        watcher.close()
