"""Incidents in the SQLite state DB: the case (clocks, controller, observables, tasks, timeline) and
the journal of every action taken on it.

Clocks are explicit and each has one meaning:

- ``breach_start`` / ``breach_end``: first and last event of the incident's actors in the lake
  inside the window the incident was opened with (the alert's, or ``--since/--until``).
- ``detected_at``: when crmguard raised the alert (the alert's creation time), or when the
  incident was opened by hand.
- ``aware_at``: the recorded human decision that a personal-data breach happened (GDPR Art. 33(1)
  "after having become aware of it"); it starts the 72 h clock, so it is never inferred.
- ``deadline``: ``aware_at`` + 72 h. Filing the initial regulator report after it needs a reason.

Every change goes through :class:`IncidentStore`, which journals it (what, who, when, result,
detail) in an append-only table (SQLite triggers abort UPDATE and DELETE) and rewrites
``<home>/incidents/<ID>/incident.json``, the document other steps (notify) read.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from crmguard.errors import ResponseError
from crmguard.utc import iso_z

DEADLINE_HOURS = 72
PLACEHOLDER = "UNSET"
"""Value of a controller field nobody has set yet; reports flag it and tell how to set it."""

OBSERVABLE_KINDS = ("users", "ips", "apps", "tokens")

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    source_alert TEXT,
    breach_start TEXT,
    breach_end TEXT,
    detected_at TEXT,
    aware_at TEXT,
    aware_by TEXT,
    deadline TEXT,
    controller TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS incident_observables (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    origin TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (incident_id, kind, value)
);
CREATE TABLE IF NOT EXISTS incident_tasks (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    number INTEGER NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (incident_id, number)
);
CREATE TABLE IF NOT EXISTS incident_timeline (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    at TEXT NOT NULL,
    what TEXT NOT NULL,
    origin TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS incident_journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_journal_by_incident ON incident_journal (incident_id, seq);
CREATE TRIGGER IF NOT EXISTS incident_journal_no_update BEFORE UPDATE ON incident_journal
BEGIN SELECT RAISE(ABORT, 'incident_journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS incident_journal_no_delete BEFORE DELETE ON incident_journal
BEGIN SELECT RAISE(ABORT, 'incident_journal is append-only'); END;
"""


def iso(t: dt.datetime | None) -> str | None:
    """``t`` as ISO 8601 UTC with a ``Z`` (None stays None)."""
    return None if t is None else iso_z(t)


def parse_time(text: str | None) -> dt.datetime | None:
    """Parse ISO 8601 (``Z`` or offset; a naive time is UTC); None and blank give None."""
    if not text:
        return None
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def default_actor() -> str:
    """Who acts when ``--by`` is not given: ``$USER`` (or ``unknown``)."""
    return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


# Lenient where a field is free text a person fills in; the document other steps read is strict
# about its keys (extra="forbid") so a typo in code cannot silently add a key notify never reads.
class Controller(BaseModel):
    """The data controller's contact point for the regulator and the customers."""

    model_config = ConfigDict(extra="forbid")
    name: str = PLACEHOLDER
    contact_email: str = PLACEHOLDER
    dpo_email: str = PLACEHOLDER
    phone: str = PLACEHOLDER

    def unset(self) -> list[str]:
        """Names of the fields still holding :data:`PLACEHOLDER`."""
        return [k for k, v in self.model_dump().items() if v == PLACEHOLDER]


class Observables(BaseModel):
    """What identifies the attack: staff users (usernames or ids), source IPs, apps, tokens."""

    model_config = ConfigDict(extra="forbid")
    users: list[str] = Field(default_factory=list)
    ips: list[str] = Field(default_factory=list)
    apps: list[str] = Field(default_factory=list)
    tokens: list[str] = Field(default_factory=list)


class Task(BaseModel):
    """A to-do on the case."""

    model_config = ConfigDict(extra="forbid")
    number: int
    title: str
    status: Literal["open", "done"]
    owner: Optional[str] = None
    created_at: str
    updated_at: str


class TimelineEntry(BaseModel):
    """Something that happened (in the attack or the response), with where the entry came from."""

    model_config = ConfigDict(extra="forbid")
    at: str
    what: str
    origin: str


class JournalEntry(BaseModel):
    """One journaled action: what, who, when, result, detail."""

    model_config = ConfigDict(extra="forbid")
    seq: int
    at: str
    who: str
    action: str
    result: str
    detail: dict[str, Any]


class Incident(BaseModel):
    """The incident document written to ``incident.json`` (times are ISO 8601 UTC or null)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    title: str
    status: Literal["open", "closed"]
    source_alert: Optional[str]
    breach_start: Optional[str]
    breach_end: Optional[str]
    detected_at: Optional[str]
    aware_at: Optional[str]
    aware_by: Optional[str]
    deadline: Optional[str]
    controller: Controller
    observables: Observables
    tasks: list[Task]
    timeline: list[TimelineEntry]
    journal: list[JournalEntry]
    created_at: str
    created_by: str
    updated_at: str

    def late(self, at: dt.datetime) -> bool:
        """Whether an initial report filed at ``at`` misses the 72 h deadline."""
        return self.deadline is not None and at > parse_time(self.deadline)  # type: ignore[operator]


class IncidentStore:
    """Incidents in the state DB at ``state_path``; ``incident.json`` files go under
    ``incidents_dir`` (default: ``<state folder>/incidents``, i.e. ``<home>/incidents``)."""

    def __init__(self, state_path: str | Path, incidents_dir: str | Path | None = None,
                 now: Optional[dt.datetime] = None) -> None:
        self.path = Path(state_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dir = Path(incidents_dir) if incidents_dir else self.path.parent / "incidents"
        self._now = now
        self.db = sqlite3.connect(self.path)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def now(self) -> dt.datetime:
        """The store's clock (fixed when constructed with ``now``, for tests)."""
        return self._now or dt.datetime.now(dt.UTC)

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def __enter__(self) -> IncidentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def folder(self, incident_id: str) -> Path:
        """``<incidents dir>/<ID>``: where the incident's files go (created)."""
        d = self.dir / incident_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    # --- reading ---------------------------------------------------------------------------------

    def get(self, incident_id: str) -> Incident | None:
        """Return the incident (exact id or unique prefix) as an :class:`Incident`, or None."""
        rows = self.db.execute("SELECT * FROM incidents WHERE id = ?", (incident_id,)).fetchall() or \
            self.db.execute("SELECT * FROM incidents WHERE id LIKE ? || '%'", (incident_id,)).fetchall()
        if len(rows) != 1:
            return None
        r = dict(rows[0])
        iid = r["id"]
        obs: dict[str, list[str]] = {k: [] for k in OBSERVABLE_KINDS}
        for o in self.db.execute("SELECT kind, value FROM incident_observables WHERE incident_id = ? ORDER BY kind, added_at, value",
                                 (iid,)):
            obs[o["kind"]].append(o["value"])
        tasks = [Task(**dict(t)) for t in self.db.execute(
            "SELECT number, title, status, owner, created_at, updated_at FROM incident_tasks WHERE incident_id = ? ORDER BY number",
            (iid,))]
        timeline = [TimelineEntry(**dict(t)) for t in self.db.execute(
            "SELECT at, what, origin FROM incident_timeline WHERE incident_id = ? ORDER BY at, seq", (iid,))]
        journal = [JournalEntry(**{**dict(j), "detail": json.loads(j["detail"])}) for j in self.db.execute(
            "SELECT seq, at, who, action, result, detail FROM incident_journal WHERE incident_id = ? ORDER BY seq", (iid,))]
        return Incident(**{**r, "controller": Controller(**json.loads(r["controller"])), "observables": Observables(**obs),
                           "tasks": tasks, "timeline": timeline, "journal": journal})

    def require(self, incident_id: str) -> Incident:
        """Like :meth:`get`, but raises :class:`ResponseError` naming the id when there is none."""
        inc = self.get(incident_id)
        if inc is None:
            raise ResponseError(f"no incident {incident_id!r} (or the prefix is ambiguous)", file=str(self.path))
        return inc

    def summaries(self) -> list[dict[str, Any]]:
        """Every incident's headline fields, newest first."""
        return [dict(r) for r in self.db.execute(
            "SELECT id, title, status, breach_start, detected_at, aware_at, deadline FROM incidents ORDER BY created_at DESC, id DESC")]

    # --- writing ---------------------------------------------------------------------------------

    def journal(self, incident_id: str, action: str, who: str, result: str, detail: dict[str, Any] | None = None) -> int:
        """Append one journal entry (what ``action``, ``who``, now, ``result``, ``detail`` JSON) and
        rewrite the incident's ``incident.json``; returns the entry's sequence number."""
        with self.db:
            seq = self._journal(incident_id, action, who, result, detail or {})
        if self.get(incident_id) is not None:
            self.export(incident_id)
        return seq

    def _journal(self, incident_id: str, action: str, who: str, result: str, detail: dict[str, Any]) -> int:
        cur = self.db.execute(
            "INSERT INTO incident_journal (incident_id, at, who, action, result, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (incident_id, iso(self.now()), who, action, result, json.dumps(detail, default=str, sort_keys=True)))
        return int(cur.lastrowid or 0)

    def _next_id(self) -> str:
        n = self.db.execute("SELECT count(*) FROM incidents").fetchall()[0][0] + 1
        while True:
            candidate = f"INC-{n:04d}"
            if not self.db.execute("SELECT 1 FROM incidents WHERE id = ?", (candidate,)).fetchall():
                return candidate
            n += 1

    def open(self, *, title: str, who: str, observables: Observables, breach_start: dt.datetime | None,
             breach_end: dt.datetime | None, detected_at: dt.datetime | None, controller: Controller,
             source_alert: str | None = None, timeline: list[tuple[dt.datetime, str, str]] | None = None) -> Incident:
        """Create an incident with its observables and first timeline entries, journal ``open``
        and write ``incident.json``; returns it."""
        now = iso(self.now())
        with self.db:
            iid = self._next_id()
            self.db.execute(
                "INSERT INTO incidents (id, title, status, source_alert, breach_start, breach_end, detected_at, controller, "
                "created_at, created_by, updated_at) VALUES (?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?)",
                (iid, title, source_alert, iso(breach_start), iso(breach_end), iso(detected_at or self.now()),
                 controller.model_dump_json(), now, who, now))
            self._add_observables(iid, observables, source_alert and f"alert {source_alert}" or "open")
            entries = list(timeline or [])
            if breach_start:
                entries.append((breach_start, "breach start: first event of the incident's actors in the window", "lake"))
            entries.append((detected_at or self.now(), "detected" + (f": alert {source_alert}" if source_alert else ""),
                            "alert" if source_alert else "open"))
            entries.append((self.now(), f"incident opened by {who}", "journal"))
            for at, what, origin in entries:
                self.db.execute("INSERT INTO incident_timeline (incident_id, at, what, origin) VALUES (?, ?, ?, ?)",
                                (iid, iso(at), what, origin))
            self._journal(iid, "open", who, "ok", {"title": title, "source_alert": source_alert,
                                                   "observables": observables.model_dump(),
                                                   "breach_start": iso(breach_start), "breach_end": iso(breach_end)})
        self.export(iid)
        return self.require(iid)

    def _add_observables(self, iid: str, obs: Observables, origin: str) -> None:
        for kind in OBSERVABLE_KINDS:
            for value in getattr(obs, kind):
                self.db.execute("INSERT OR IGNORE INTO incident_observables VALUES (?, ?, ?, ?, ?)",
                                (iid, kind, value, origin, iso(self.now())))

    def observe(self, incident_id: str, who: str, add: Observables, remove: Observables) -> Incident:
        """Add and remove observables; journaled as ``observe``. Returns the incident."""
        inc = self.require(incident_id)
        with self.db:
            self._add_observables(inc.id, add, f"added by {who}")
            for kind in OBSERVABLE_KINDS:
                for value in getattr(remove, kind):
                    self.db.execute("DELETE FROM incident_observables WHERE incident_id = ? AND kind = ? AND value = ?",
                                    (inc.id, kind, value))
            self._touch(inc.id)
            self._journal(inc.id, "observe", who, "ok", {"added": add.model_dump(), "removed": remove.model_dump()})
        self.export(inc.id)
        return self.require(inc.id)

    def aware(self, incident_id: str, who: str, at: dt.datetime | None = None) -> Incident:
        """Record that ``who`` decided, at ``at`` (default now), that a personal-data breach
        happened: sets ``aware_at``/``aware_by`` and the deadline (+72 h). Journaled as ``aware``;
        a second call is refused (the clock started once)."""
        inc = self.require(incident_id)
        if inc.aware_at:
            self.journal(inc.id, "aware", who, "refused", {"reason": "awareness already recorded", "aware_at": inc.aware_at})
            raise ResponseError(f"awareness of {inc.id} was already recorded at {inc.aware_at} by {inc.aware_by}")
        at = at or self.now()
        deadline = at + dt.timedelta(hours=DEADLINE_HOURS)
        with self.db:
            self.db.execute("UPDATE incidents SET aware_at = ?, aware_by = ?, deadline = ?, updated_at = ? WHERE id = ?",
                            (iso(at), who, iso(deadline), iso(self.now()), inc.id))
            self._timeline(inc.id, at, f"aware: {who} decided this is a personal-data breach (72 h clock starts)", "journal")
            self._timeline(inc.id, deadline, "regulator deadline (aware + 72 h, GDPR Art. 33(1))", "clock")
            self._journal(inc.id, "aware", who, "ok", {"aware_at": iso(at), "deadline": iso(deadline)})
        self.export(inc.id)
        return self.require(inc.id)

    def set_controller(self, incident_id: str, who: str, **fields: str | None) -> Incident:
        """Set controller contact fields given (non-None); journaled as ``controller``."""
        inc = self.require(incident_id)
        changes = {k: v for k, v in fields.items() if v is not None}
        updated = Controller(**{**inc.controller.model_dump(), **changes})
        with self.db:
            self.db.execute("UPDATE incidents SET controller = ?, updated_at = ? WHERE id = ?",
                            (updated.model_dump_json(), iso(self.now()), inc.id))
            self._journal(inc.id, "controller", who, "ok", {"set": sorted(changes)})
        self.export(inc.id)
        return self.require(inc.id)

    def add_task(self, incident_id: str, who: str, title: str, owner: str | None = None) -> Task:
        """Add an open task; journaled as ``task_add``. Returns it."""
        inc = self.require(incident_id)
        now = iso(self.now())
        with self.db:
            n = self.db.execute("SELECT coalesce(max(number), 0) + 1 FROM incident_tasks WHERE incident_id = ?",
                                (inc.id,)).fetchall()[0][0]
            self.db.execute("INSERT INTO incident_tasks VALUES (?, ?, ?, 'open', ?, ?, ?)", (inc.id, n, title, owner, now, now))
            self._touch(inc.id)
            self._journal(inc.id, "task_add", who, "ok", {"task": n, "title": title, "owner": owner})
        self.export(inc.id)
        return next(t for t in self.require(inc.id).tasks if t.number == n)

    def set_task(self, incident_id: str, who: str, number: int, status: Literal["open", "done"]) -> Task:
        """Mark task ``number`` done or open again; journaled as ``task_<status>``."""
        inc = self.require(incident_id)
        with self.db:
            cur = self.db.execute("UPDATE incident_tasks SET status = ?, updated_at = ? WHERE incident_id = ? AND number = ?",
                                  (status, iso(self.now()), inc.id, number))
            if not cur.rowcount:
                raise ResponseError(f"incident {inc.id} has no task {number}")
            self._touch(inc.id)
            self._journal(inc.id, f"task_{status}", who, "ok", {"task": number})
        self.export(inc.id)
        return next(t for t in self.require(inc.id).tasks if t.number == number)

    def note(self, incident_id: str, who: str, what: str, at: dt.datetime | None = None) -> Incident:
        """Add a timeline entry (``origin`` = who wrote it); journaled as ``note``."""
        inc = self.require(incident_id)
        with self.db:
            self._timeline(inc.id, at or self.now(), what, who)
            self._touch(inc.id)
            self._journal(inc.id, "note", who, "ok", {"at": iso(at or self.now()), "what": what})
        self.export(inc.id)
        return self.require(inc.id)

    def timeline(self, incident_id: str, at: dt.datetime, what: str, origin: str) -> None:
        """Add a timeline entry without a journal entry (the caller journals the action)."""
        with self.db:
            self._timeline(incident_id, at, what, origin)

    def _timeline(self, iid: str, at: dt.datetime, what: str, origin: str) -> None:
        self.db.execute("INSERT INTO incident_timeline (incident_id, at, what, origin) VALUES (?, ?, ?, ?)",
                        (iid, iso(at), what, origin))

    def close_incident(self, incident_id: str, who: str, reason: str) -> Incident:
        """Close the incident; journaled as ``close``."""
        inc = self.require(incident_id)
        with self.db:
            self.db.execute("UPDATE incidents SET status = 'closed', updated_at = ? WHERE id = ?", (iso(self.now()), inc.id))
            self._timeline(inc.id, self.now(), f"closed by {who}: {reason}", "journal")
            self._journal(inc.id, "close", who, "ok", {"reason": reason})
        self.export(inc.id)
        return self.require(inc.id)

    def _touch(self, iid: str) -> None:
        self.db.execute("UPDATE incidents SET updated_at = ? WHERE id = ?", (iso(self.now()), iid))

    # --- export ----------------------------------------------------------------------------------

    def export(self, incident_id: str, csv_tables: bool = False) -> list[Path]:
        """Write ``incident.json`` (and with ``csv_tables`` also ``observables.csv``, ``tasks.csv``,
        ``timeline.csv``, ``journal.csv``) into the incident's folder; returns the paths written.
        Files are written to a temporary name and renamed, so readers never see half a file."""
        inc = self.require(incident_id)
        folder = self.folder(inc.id)
        written = [_atomic_write(folder / "incident.json", inc.model_dump_json(indent=2) + "\n")]
        if csv_tables:
            obs = [{"kind": k, "value": v} for k in OBSERVABLE_KINDS for v in getattr(inc.observables, k)]
            written.append(_write_csv(folder / "observables.csv", ["kind", "value"], obs))
            written.append(_write_csv(folder / "tasks.csv", list(Task.model_fields), [t.model_dump() for t in inc.tasks]))
            written.append(_write_csv(folder / "timeline.csv", list(TimelineEntry.model_fields),
                                      [t.model_dump() for t in inc.timeline]))
            written.append(_write_csv(folder / "journal.csv", list(JournalEntry.model_fields),
                                      [{**j.model_dump(), "detail": json.dumps(j.detail, sort_keys=True)} for j in inc.journal]))
        return written


def _atomic_write(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def breach_window(lake: Any, users: list[str], since: dt.datetime | None, until: dt.datetime | None
                  ) -> tuple[dt.datetime | None, dt.datetime | None]:
    """First and last event in ``lake`` (a :class:`crmguard.lake.Lake`) of ``users`` (usernames or
    user ids; a username also matches events logged only under its user id) between ``since``
    and ``until`` (inclusive; open when None). Returns (None, None) when there is none."""
    from crmguard.sources.sql import sql_list

    if not users:
        return None, None
    where = [f"time >= TIMESTAMPTZ '{since.isoformat()}'"] if since else []
    where += [f"time <= TIMESTAMPTZ '{until.isoformat()}'"] if until else []
    names = sql_list(users)
    con = lake.connect()
    try:
        start, end = con.execute(
            f"""SELECT min(time), max(time) FROM events WHERE {' AND '.join(where) or 'true'}
                AND (username IN (SELECT unnest({names})) OR user_id IN (SELECT unnest({names}))
                     OR user_id IN (SELECT DISTINCT user_id FROM events WHERE username IN (SELECT unnest({names}))
                                    AND user_id IS NOT NULL))""").fetchall()[0]
    finally:
        con.close()
    return start, end
