"""Alerts in SQLite: insert with a dedup key, list, show.

An alert's id is a hash of its rule, dedup key and period (or correlation episode start), so
re-running detection over the same window finds the same ids and creates nothing new; an alert
whose period gained events since is updated in place (counts, last_seen, evidence).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from crmguard.engine.run import Alert
from crmguard.utc import iso_z

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    title TEXT NOT NULL,
    severity TEXT NOT NULL,
    actor TEXT,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    event_count INTEGER NOT NULL,
    dedup_key TEXT NOT NULL,
    event_ids TEXT NOT NULL,
    record_ids TEXT NOT NULL,
    explanation TEXT NOT NULL,
    context TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (first_seen);
CREATE INDEX IF NOT EXISTS alerts_by_rule ON alerts (rule_id, dedup_key);
"""


@dataclass(frozen=True)
class StoreResult:
    """What :meth:`Store.save` did: alerts created, updated (grew), unchanged; and the ids of the
    created and updated ones (e.g. for the delivery outbox)."""

    created: int
    updated: int
    unchanged: int
    created_ids: tuple[str, ...] = ()
    updated_ids: tuple[str, ...] = ()


class Store:
    """The SQLite state database holding alerts (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def save(self, alerts: list[Alert]) -> StoreResult:
        """Insert new alerts and update grown ones in one transaction; returns the counts and ids."""
        now = iso_z(dt.datetime.now(dt.UTC))
        created_ids: list[str] = []
        updated_ids: list[str] = []
        with self.db:
            for a in alerts:
                row = self.db.execute("SELECT event_count, last_seen FROM alerts WHERE id = ?", (a.id,)).fetchone()
                values = (a.rule_id, a.title, a.severity, a.actor, iso_z(a.first_seen), iso_z(a.last_seen), a.event_count,
                          a.dedup_key, json.dumps(list(a.event_ids)), json.dumps(list(a.record_ids)), a.explanation,
                          json.dumps(a.context, default=str))
                if row is None:
                    self.db.execute(
                        "INSERT INTO alerts (rule_id, title, severity, actor, first_seen, last_seen, event_count, dedup_key, "
                        "event_ids, record_ids, explanation, context, id, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*values, a.id, now, now))
                    created_ids.append(a.id)
                elif row["event_count"] != a.event_count or row["last_seen"] != iso_z(a.last_seen):
                    self.db.execute(
                        "UPDATE alerts SET rule_id=?, title=?, severity=?, actor=?, first_seen=?, last_seen=?, event_count=?, "
                        "dedup_key=?, event_ids=?, record_ids=?, explanation=?, context=?, updated_at=? WHERE id=?",
                        (*values, now, a.id))
                    updated_ids.append(a.id)
        created, updated = len(created_ids), len(updated_ids)
        return StoreResult(created, updated, len(alerts) - created - updated, tuple(created_ids), tuple(updated_ids))

    def list(self, rule_id: str | None = None, severity: str | None = None, limit: int | None = None) -> list[dict]:
        """Return alerts (newest first) as dicts with JSON fields decoded."""
        sql, args = "SELECT * FROM alerts WHERE 1=1", []
        if rule_id:
            sql, args = sql + " AND rule_id = ?", [*args, rule_id]
        if severity:
            sql, args = sql + " AND severity = ?", [*args, severity]
        sql += " ORDER BY first_seen DESC, id" + (f" LIMIT {int(limit)}" if limit else "")
        return [_decode(r) for r in self.db.execute(sql, args).fetchall()]

    def get(self, alert_id: str) -> dict | None:
        """Return one alert by id (or unique id prefix), or None."""
        rows = self.db.execute("SELECT * FROM alerts WHERE id LIKE ? || '%'", (alert_id,)).fetchall()
        return _decode(rows[0]) if len(rows) == 1 else None

    def close(self) -> None:
        """Close the database."""
        self.db.close()


def _decode(row: sqlite3.Row) -> dict:
    d = dict(row)
    for key in ("event_ids", "record_ids", "context"):
        d[key] = json.loads(d[key])
    return d
