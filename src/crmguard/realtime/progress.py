"""The watcher's progress in the state DB, beside the alerts: what is done, recorded atomically.

- ``watch_files``: lake Parquet files whose events have been evaluated (and their alerts stored);
  any other file in the lake is new to the next batch, which is how events ingested just before a
  crash are still evaluated after it.
- ``watch_receipts``: spool inputs (HTTP bodies, inbox files) fully processed, with arrival and
  completion times; a restart deletes these from the spool instead of ingesting them again.
- ``watch_batches``: one row per batch (sizes, window, alerts, timings) for status and benchmarks.
- ``watch_state``: the watermark (latest event time evaluated) and other single values.

:meth:`Progress.commit` writes all of a batch in one transaction, after the lake commit and the
alert store commit, so a crash at any point leaves either the whole batch done or none of it recorded
(and a replay of an unrecorded batch stores no duplicate events and no new alerts).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from crmguard.alerts.store import SCHEMA as ALERTS_SCHEMA
from crmguard.realtime.spool import SpoolFile
from crmguard.realtime.window import StoredEpisode
from crmguard.utc import iso_z

SCHEMA = """
CREATE TABLE IF NOT EXISTS watch_files (path TEXT PRIMARY KEY, batch INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS watch_receipts (
    receipt TEXT PRIMARY KEY, name TEXT NOT NULL, arrived REAL NOT NULL, batch INTEGER NOT NULL, done REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_batches (
    id INTEGER PRIMARY KEY, started REAL NOT NULL, done REAL NOT NULL, inputs INTEGER NOT NULL,
    events INTEGER NOT NULL, late INTEGER NOT NULL, min_new TEXT, max_new TEXT, window_start TEXT,
    alerts INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL, superseded INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS watch_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

SUPERSEDED = "superseded"
"""Alert status of a correlation episode merged into a later-computed one."""


def parse_iso(text: str) -> dt.datetime:
    """Parse the alert store's ISO text back to an aware datetime."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class BatchRecord:
    """What one batch did (see ``watch_batches``)."""

    started: float
    done: float = 0.0
    inputs: int = 0
    events: int = 0
    late: int = 0
    min_new: dt.datetime | None = None
    max_new: dt.datetime | None = None
    window_start: dt.datetime | None = None
    alerts: int = 0
    created: int = 0
    updated: int = 0
    superseded: int = 0
    detail: dict[str, object] = field(default_factory=dict)


class Progress:
    """The watcher tables of the state DB ``path`` (created on first use, with the alerts table)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Opened by the thread that starts the watcher, used by the loop thread (one at a time).
        self.db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(ALERTS_SCHEMA + SCHEMA)

    def processed_files(self) -> set[str]:
        """Lake files already evaluated."""
        return {r[0] for r in self.db.execute("SELECT path FROM watch_files")}

    def add_files(self, files: list[str]) -> None:
        """Record lake ``files`` as evaluated (merges of files that were)."""
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO watch_files VALUES (?, 0)", [(f,) for f in files])

    def forget_files(self, files: list[str]) -> None:
        """Forget lake ``files`` (deleted by compaction)."""
        with self.db:
            self.db.executemany("DELETE FROM watch_files WHERE path = ?", [(f,) for f in files])

    def done_receipts(self) -> set[str]:
        """Receipts of spool inputs already processed."""
        return {r[0] for r in self.db.execute("SELECT receipt FROM watch_receipts")}

    def watermark(self) -> dt.datetime | None:
        """The latest event time evaluated so far, or None before the first batch."""
        rows = self.db.execute("SELECT value FROM watch_state WHERE key = 'watermark'").fetchall()
        return parse_iso(rows[0][0]) if rows else None

    def next_batch(self) -> int:
        """The id the next batch gets."""
        return int(self.db.execute("SELECT coalesce(max(id), 0) + 1 FROM watch_batches").fetchall()[0][0])

    def open_episodes(self, rule_ids: list[str], since: dt.datetime) -> list[StoredEpisode]:
        """Stored, not superseded correlation alerts of ``rule_ids`` whose last_seen >= ``since``."""
        rows = self.db.execute(
            "SELECT id, rule_id, dedup_key, first_seen, last_seen FROM alerts WHERE status <> ? AND rule_id IN "
            "(SELECT value FROM json_each(?)) AND julianday(last_seen) >= julianday(?)",
            (SUPERSEDED, json.dumps(rule_ids), iso_z(since)),
        ).fetchall()
        return [StoredEpisode(i, r, k, parse_iso(f), parse_iso(la)) for i, r, k, f, la in rows]

    def supersede(self, ids: list[str]) -> int:
        """Mark the alerts ``ids`` superseded; returns how many changed."""
        with self.db:
            cur = self.db.execute(
                "UPDATE alerts SET status = ? WHERE status <> ? AND id IN (SELECT value FROM json_each(?))",
                (SUPERSEDED, SUPERSEDED, json.dumps(ids)),
            )
        return cur.rowcount

    def baseline_pending(self) -> dt.date | None:
        """The earliest day with events the behavioural baselines have not scored yet, or None."""
        rows = self.db.execute("SELECT value FROM watch_state WHERE key = 'baseline_from'").fetchall()
        return dt.date.fromisoformat(rows[0][0]) if rows else None

    def baseline_done(self, since: dt.date) -> None:
        """Record that the baselines scored every day from ``since`` on (a later batch's pending day
        is kept)."""
        with self.db:
            self.db.execute("DELETE FROM watch_state WHERE key = 'baseline_from' AND value >= ?", (since.isoformat(),))

    def commit(self, batch_id: int, record: BatchRecord, files: list[str], inputs: list[SpoolFile],
               baseline_from: dt.date | None = None) -> None:
        """Record batch ``batch_id`` done: its lake files, its spool inputs, the new watermark, its
        statistics and (``baseline_from``) the earliest day the baselines must re-score, in one
        transaction."""
        with self.db:
            if baseline_from is not None:
                old = self.baseline_pending()
                day = baseline_from if old is None else min(old, baseline_from)
                self.db.execute("INSERT OR REPLACE INTO watch_state VALUES ('baseline_from', ?)", (day.isoformat(),))
            self.db.executemany("INSERT OR IGNORE INTO watch_files VALUES (?, ?)", [(f, batch_id) for f in files])
            self.db.executemany(
                "INSERT OR IGNORE INTO watch_receipts VALUES (?, ?, ?, ?, ?)",
                [(s.receipt, s.path.name, s.arrived, batch_id, record.done) for s in inputs],
            )
            if record.max_new is not None:
                old = self.watermark()
                mark = record.max_new if old is None else max(old, record.max_new)
                self.db.execute("INSERT OR REPLACE INTO watch_state VALUES ('watermark', ?)", (iso_z(mark),))
            r = record
            self.db.execute(
                "INSERT INTO watch_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (batch_id, r.started, r.done, r.inputs, r.events, r.late, r.min_new and iso_z(r.min_new),
                 r.max_new and iso_z(r.max_new), r.window_start and iso_z(r.window_start), r.alerts, r.created,
                 r.updated, r.superseded, json.dumps(r.detail, default=str)),
            )

    def totals(self) -> dict[str, float]:
        """Totals over every batch: batches, events, alerts created, and the open alert count."""
        b, ev, created = self.db.execute(
            "SELECT count(*), coalesce(sum(events), 0), coalesce(sum(created), 0) FROM watch_batches").fetchall()[0]
        alerts = self.db.execute("SELECT count(*) FROM alerts WHERE status <> ?", (SUPERSEDED,)).fetchall()[0][0]
        return {"batches": b, "events": ev, "alerts_created": created, "alerts": alerts}

    def close(self) -> None:
        """Close the database."""
        self.db.close()
