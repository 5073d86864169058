"""The alert outbox and delivery journal: two tables in the state DB, beside ``alerts``.

``alert_outbox`` holds one row per (alert, sink, version), UNIQUE, so enqueueing twice adds
nothing. A row is ``pending`` until it is ``delivered``, ``suppressed`` (actor window) or ``dead``
(the sink's ``max_attempts`` ran out, only when the user set one; or the alert is gone).
``alert_delivery_journal`` keeps one row per attempt or decision. Times are fixed-width ISO 8601 UTC strings, so text order is time order.

Version: an alert is delivered once, in its first version (``version`` = 1). When detection later
grows the alert in place (more events, later ``last_seen``), it is not sent again; the payload is
built when it is sent, so a delivery that waited carries the alert as it is then.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crmguard.alerts.store import SCHEMA as ALERTS_SCHEMA
from crmguard.sinks.config import SinksConfig, severity_rank

VERSION = 1
STATUSES = ("pending", "delivered", "suppressed", "dead")
DUE_NOW = "0001-01-01T00:00:00.000000Z"
"""``next_attempt_at`` of a row never tried: due at any clock (the watcher may pass event time)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_outbox (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    version INTEGER NOT NULL,
    actor TEXT,
    severity TEXT NOT NULL,
    rank INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'suppressed', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    enqueued_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    delivered_at TEXT,
    UNIQUE (alert_id, sink, version)
);
CREATE INDEX IF NOT EXISTS alert_outbox_due ON alert_outbox (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS alert_outbox_by_actor ON alert_outbox (sink, actor, status, delivered_at);
CREATE TABLE IF NOT EXISTS alert_delivery_journal (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    sink TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'failed', 'suppressed', 'dead')),
    detail TEXT,
    latency_ms REAL
);
CREATE INDEX IF NOT EXISTS alert_delivery_journal_by_alert ON alert_delivery_journal (alert_id, sink);
"""


def stamp(t: dt.datetime) -> str:
    """Fixed-width ISO 8601 UTC text for ``t`` (naive means UTC), e.g. ``2025-03-04T08:00:00.000000Z``."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def idempotency_key(alert_id: str, version: int = VERSION) -> str:
    """The key a receiver deduplicates on: same alert and version, same key, across retries."""
    return f"{alert_id}-v{version}"


def connect(db_path: str | Path) -> sqlite3.Connection:
    """Open the state DB in autocommit mode (transactions are explicit) with the alerts, outbox
    and journal tables created if missing; rows come back as ``sqlite3.Row``."""
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    # a commit lost to power failure only means a row is sent again: at-least-once either way
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(ALERTS_SCHEMA + SCHEMA)
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error): writers queue instead of failing
    half-way when the watcher and a CLI run deliver at the same time."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def journal(db: sqlite3.Connection, at: dt.datetime, row: sqlite3.Row, attempt: int, outcome: str,
            detail: str | None, latency_ms: float | None = None) -> None:
    """Append one journal row for the outbox ``row``."""
    db.execute("INSERT INTO alert_delivery_journal (at, sink, alert_id, version, attempt, outcome, detail, latency_ms) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (stamp(at), row["sink"], row["alert_id"], row["version"], attempt, outcome, detail, latency_ms))


def status_counts(db: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Return ``{sink: {status: count}}`` over the outbox (every status present, zeros included)."""
    counts: dict[str, dict[str, int]] = {}
    for sink, status, n in db.execute("SELECT sink, status, count(*) FROM alert_outbox GROUP BY 1, 2 ORDER BY 1"):
        counts.setdefault(sink, dict.fromkeys(STATUSES, 0))[status] = n
    return counts


def rows(db: sqlite3.Connection, status: str, limit: int = 100) -> list[dict]:
    """Return up to ``limit`` outbox rows with ``status`` (oldest first) as dicts, with the alert's title."""
    sql = ("SELECT o.*, a.title FROM alert_outbox o LEFT JOIN alerts a ON a.id = o.alert_id WHERE o.status = ? "
           "ORDER BY o.enqueued_at, o.id LIMIT ?")
    return [dict(r) for r in db.execute(sql, (status, limit)).fetchall()]


def journal_rows(db: sqlite3.Connection, alert_id: str | None = None) -> list[dict]:
    """Return the journal (for one alert, or all) in order, as dicts."""
    if alert_id is None:
        return [dict(r) for r in db.execute("SELECT * FROM alert_delivery_journal ORDER BY id").fetchall()]
    return [dict(r) for r in db.execute("SELECT * FROM alert_delivery_journal WHERE alert_id = ? ORDER BY id",
                                        (alert_id,)).fetchall()]


def enqueue(db_path: str | Path, alert_ids: list[str], config: SinksConfig, now: dt.datetime | None = None) -> int:
    """Add an outbox row for each stored alert in ``alert_ids`` and each sink of ``config`` that
    routes it (severity, rules); rows already there are left alone. Unknown ids are ignored.
    Returns the number of rows added."""
    if not alert_ids or not config.sinks:
        return 0
    at = stamp(now or dt.datetime.now(dt.UTC))
    db = connect(db_path)
    try:
        alerts = db.execute("SELECT id, rule_id, title, severity, actor, first_seen FROM alerts "
                            "WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(alert_ids),)).fetchall()
        values = [(a["id"], sink.name, VERSION, a["actor"], a["severity"], severity_rank(a["severity"]),
                   stamp(dt.datetime.fromisoformat(a["first_seen"].replace("Z", "+00:00"))), at, DUE_NOW)
                  for a in alerts for sink in config.sinks if sink.routes(a["rule_id"], a["title"], a["severity"])]
        with transaction(db):
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO alert_outbox (alert_id, sink, version, actor, severity, rank, first_seen, "
                           "enqueued_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
            return db.total_changes - before
    finally:
        db.close()


def stored_alert_ids(db_path: str | Path, since: dt.datetime | None = None) -> list[str]:
    """Return the ids of every stored alert (``last_seen`` at or after ``since``, when given)."""
    db = connect(db_path)
    try:
        if since is None:
            return [r[0] for r in db.execute("SELECT id FROM alerts ORDER BY first_seen, id").fetchall()]
        # alerts.last_seen is ISO text with a variable fraction; julianday compares it as time
        return [r[0] for r in db.execute("SELECT id FROM alerts WHERE julianday(last_seen) >= julianday(?) "
                                         "ORDER BY first_seen, id", (stamp(since),)).fetchall()]
    finally:
        db.close()


def due(db: sqlite3.Connection, now: dt.datetime) -> list[sqlite3.Row]:
    """Return the pending rows whose next attempt is at or before ``now``: most severe first, then
    oldest alert first (so an actor's worst alert is the one a suppression window lets through)."""
    return db.execute("SELECT * FROM alert_outbox WHERE status = 'pending' AND next_attempt_at <= ? "
                      "ORDER BY rank DESC, first_seen, id", (stamp(now),)).fetchall()


def retry_dead(db_path: str | Path, sink: str | None = None) -> int:
    """Put dead rows (of ``sink``, or all) back to pending, due now, attempts reset. Returns how many."""
    db = connect(db_path)
    try:
        with transaction(db):
            cur = db.execute("UPDATE alert_outbox SET status = 'pending', attempts = 0, next_attempt_at = ? "
                             "WHERE status = 'dead' AND (? IS NULL OR sink = ?)", (DUE_NOW, sink, sink))
            return cur.rowcount
    finally:
        db.close()
