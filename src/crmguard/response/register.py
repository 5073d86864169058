"""The GDPR Art. 33(5) breach register: an append-only table in the state DB.

Art. 33(5) asks the controller to document every personal-data breach — "the facts relating to the
personal data breach, its effects and the remedial action taken" — whether or not it was notified,
so the register records both kinds of entry:

- ``report``: a regulator report was filed (phase ``initial`` or ``complementary``), with the
  document's path and SHA-256, whether it was late and why;
- ``decision``: a decision to notify or not to notify (the supervisory authority, Art. 33, or the
  data subjects, Art. 34), with its reason — required when the decision is not to notify.

Entries are never changed or removed: SQLite triggers abort any UPDATE or DELETE, so a correction
is a new entry that says what it corrects.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict

from crmguard.errors import ResponseError
from crmguard.response.incidents import iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS breach_register (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('report', 'decision')),
    phase TEXT,
    decision TEXT,
    audience TEXT,
    reason TEXT,
    late INTEGER NOT NULL DEFAULT 0,
    late_reason TEXT,
    who TEXT NOT NULL,
    facts TEXT NOT NULL,
    effects TEXT NOT NULL,
    remedial TEXT NOT NULL,
    document TEXT,
    document_sha256 TEXT
);
CREATE TRIGGER IF NOT EXISTS breach_register_no_update BEFORE UPDATE ON breach_register
BEGIN SELECT RAISE(ABORT, 'breach_register is append-only'); END;
CREATE TRIGGER IF NOT EXISTS breach_register_no_delete BEFORE DELETE ON breach_register
BEGIN SELECT RAISE(ABORT, 'breach_register is append-only'); END;
"""


class RegisterEntry(BaseModel):
    """One register entry (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seq: int
    recorded_at: str
    incident_id: str
    kind: Literal["report", "decision"]
    phase: Optional[str] = None
    decision: Optional[str] = None
    audience: Optional[str] = None
    reason: Optional[str] = None
    late: bool = False
    late_reason: Optional[str] = None
    who: str
    facts: dict[str, Any]
    effects: dict[str, Any]
    remedial: dict[str, Any]
    document: Optional[str] = None
    document_sha256: Optional[str] = None


class BreachRegister:
    """The register in the state DB at ``state_path`` (created on first use)."""

    def __init__(self, state_path: str | Path, now: Optional[dt.datetime] = None) -> None:
        self.path = Path(state_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._now = now
        self.db = sqlite3.connect(self.path)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def append(self, *, incident_id: str, kind: Literal["report", "decision"], who: str, facts: dict[str, Any],
               effects: dict[str, Any], remedial: dict[str, Any], phase: str | None = None, decision: str | None = None,
               audience: str | None = None, reason: str | None = None, late: bool = False, late_reason: str | None = None,
               document: str | None = None, document_sha256: str | None = None) -> RegisterEntry:
        """Append one entry and return it. A decision not to notify needs a ``reason``; a late
        report needs a ``late_reason`` (:class:`ResponseError` otherwise)."""
        if kind == "decision" and decision and decision.startswith("no-") and not (reason or "").strip():
            raise ResponseError(f"a decision not to notify needs its reason (incident {incident_id})", field="reason")
        if late and not (late_reason or "").strip():
            raise ResponseError(f"a late report needs the reasons for the delay (incident {incident_id})", field="late_reason")
        now = iso(self._now or dt.datetime.now(dt.UTC))
        with self.db:
            cur = self.db.execute(
                "INSERT INTO breach_register (recorded_at, incident_id, kind, phase, decision, audience, reason, late, "
                "late_reason, who, facts, effects, remedial, document, document_sha256) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (now, incident_id, kind, phase, decision, audience, reason, int(late), late_reason, who,
                 *(json.dumps(d, sort_keys=True, default=str) for d in (facts, effects, remedial)), document, document_sha256))
        return self.entries(seq=int(cur.lastrowid or 0))[0]

    def entries(self, incident_id: str | None = None, seq: int | None = None) -> list[RegisterEntry]:
        """Entries in the order they were recorded, optionally of one incident (or the one ``seq``)."""
        sql, args = "SELECT * FROM breach_register WHERE 1=1", []
        if incident_id:
            sql, args = sql + " AND incident_id = ?", [*args, incident_id]
        if seq is not None:
            sql, args = sql + " AND seq = ?", [*args, seq]
        rows = self.db.execute(sql + " ORDER BY seq", args).fetchall()
        return [RegisterEntry(**{**dict(r), "late": bool(r["late"]),
                                 **{k: json.loads(r[k]) for k in ("facts", "effects", "remedial")}}) for r in rows]
