"""Fixtures for delivery tests: a state DB with alerts, a real HTTP receiver on localhost."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crmguard.alerts.store import Store
from crmguard.engine.run import Alert

T0 = dt.datetime(2025, 3, 4, 8, 0, tzinfo=dt.UTC)


def make_alert(n: int, *, actor: str | None = "ana@example.com", severity: str = "high", rule_id: str = "rule-export",
               title: str = "Bulk export of customer records", minutes: int = 0) -> Alert:
    """An alert like the detector's, with customer record ids (which must never reach a sink)."""
    first = T0 + dt.timedelta(minutes=minutes)
    return Alert(id=f"alert{n:04d}", rule_id=rule_id, title=title, severity=severity, actor=actor,
                 first_seen=first, last_seen=first + dt.timedelta(minutes=5), event_count=3 + n, dedup_key=str(actor),
                 event_ids=(f"ev{n}a", f"ev{n}b"), record_ids=("003CUSTOMER0001", "003CUSTOMER0002"),
                 explanation=f"{title}: {3 + n} matching events by {actor}; from 81.2.69.142",
                 context={"rows": 5000, "objects": ["Contact"], "src_ips": ["81.2.69.142", "2001:db8::7"],
                          "apps": ["Data Loader"], "user_agents": ["DataLoader/60.0"], "secret_future_key": "x"})


@pytest.fixture
def state(tmp_path: Path) -> Callable[..., Path]:
    """Return a function saving alerts into a fresh state DB and returning its path."""
    path = tmp_path / "state.db"

    def save(*alerts: Alert) -> Path:
        store = Store(path)
        try:
            store.save(list(alerts))
        finally:
            store.close()
        return path

    return save


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 recording every POST; ``status`` is what it answers;
    ``stop()``/``start()`` take it down and bring it back on the same port."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    port: int = 0
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "json": json.loads(body), "status": receiver.status})
                self.send_response(receiver.status)
                for k, v in receiver.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            assert self.thread is not None
            self.thread.join(timeout=10)
            self.server = None

    def delivered(self) -> list[dict]:
        """The requests answered with a 2xx."""
        return [r for r in self.requests if 200 <= r["status"] < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()
