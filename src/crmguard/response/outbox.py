"""The notification outbox: one row per (incident, customer, template version), in the state DB.

A row moves ``pending`` → ``sending`` → ``sent``; a temporary SMTP failure makes it ``failed_temp``
(retried after ``next_attempt_at``), a permanent one ``failed_perm``, a bounce reported later
``bounced``. The Message-ID is a hash of the unique key, fixed when the row is enqueued, so the same
notice has the same Message-ID in every attempt and in every log.

What is committed when, so that nobody is notified twice:

1. A run claims a small batch of rows (``sending``, tagged with the run and its OS boot) in one
   commit flushed to disk.
2. Right before the SMTP DATA command of a row, ``data_at`` is committed (to the OS, no flush).
3. After the server's reply the outcome is committed (no flush; the next claim flushes it).

When a sender dies, the next run (or ``reconcile``) looks at the rows left in ``sending``. In the
same OS boot nothing the dead process committed was lost: a row without ``data_at`` never went out
and is queued again; the single row with ``data_at`` has an unknown outcome. After a reboot, later
marks may be lost, so every claimed row is ``unknown``. Unknown rows are never resent on their
own: :meth:`Outbox.reconcile` settles them from evidence of delivery (the Message-IDs an MTA log or a
mailbox shows), and only an explicit :meth:`Outbox.resend_unknown` queues them again.

Only what sending needs is stored (address and language); names and exposed fields are read from
``affected_customers.parquet`` at send time.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import mailbox
import os
import re
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path
from typing import Optional

import duckdb
import psutil
import pyarrow as pa
import pyarrow.compute as pc

from crmguard.errors import NotificationError
from crmguard.response.notices import FALLBACK_LANGUAGE, choose_language

STATUSES = ("pending", "sending", "sent", "failed_temp", "failed_perm", "bounced", "unknown")
FINAL = ("sent", "failed_perm", "bounced")
"""Statuses no run changes by itself (a bounce may still turn ``sent`` into ``bounced``)."""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS notify_outbox (
    incident_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    template_version TEXT NOT NULL,
    email TEXT NOT NULL,
    language TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ({", ".join(f"'{s}'" for s in STATUSES)})),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT,
    enqueued_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    sent_at TEXT,
    claim_run TEXT,
    data_at TEXT,
    PRIMARY KEY (incident_id, customer_id, template_version)
);
CREATE INDEX IF NOT EXISTS notify_outbox_due ON notify_outbox (incident_id, template_version, status, next_attempt_at);
CREATE TABLE IF NOT EXISTS notify_runs (
    run_id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    boot TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL
);
"""

MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")


def current_boot() -> str:
    """An id of the running OS boot: it changes after a power cut or an OS crash, when writes not
    yet flushed to disk may have been lost; within one boot, a killed process loses nothing it wrote."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"boot-{int(psutil.boot_time())}"


def now_iso(t: Optional[dt.datetime] = None) -> str:
    """``t`` (default now) as ISO 8601 UTC with microseconds and a ``Z``, sortable as text."""
    return (t or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Row:
    """One outbox row as the sender needs it."""

    incident_id: str
    customer_id: str
    template_version: str
    email: str
    language: str
    message_id: str
    status: str
    attempts: int


@dataclass(frozen=True)
class EnqueueResult:
    """What :meth:`Outbox.enqueue` did: rows ``added``, rows ``already`` there, customers
    ``without_address`` (no usable e-mail: not enqueued, to be notified another way)."""

    added: int
    already: int
    without_address: int


@dataclass(frozen=True)
class ReconcileResult:
    """What :meth:`Outbox.reconcile` did with the ``unknown`` rows: ``delivered`` (evidence found:
    now ``sent``), ``requeued`` (absent from a complete record: back to ``pending``), ``still_unknown``."""

    delivered: int
    requeued: int
    still_unknown: int


@dataclass(frozen=True)
class Bounce:
    """A bounce read from a DSN, mailbox or list: the original ``message_id`` and/or ``recipient``,
    and why (``status`` like ``5.1.1`` and the server's ``diagnostic``)."""

    message_id: Optional[str]
    recipient: Optional[str]
    status: str = ""
    diagnostic: str = ""


@dataclass(frozen=True)
class BounceResult:
    """What :meth:`Outbox.record_bounces` did: ``recorded`` rows now ``bounced``, ``unmatched`` bounces
    that name no notice of this incident, ``ignored`` delays and successes."""

    recorded: int
    unmatched: int
    ignored: int = 0


@dataclass
class Report:
    """Counts of one incident's outbox: ``by_status``, ``by_language`` (language → status → n)."""

    incident_id: str
    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_language: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The report as a JSON-ready dict."""
        return {"incident_id": self.incident_id, "total": self.total, "by_status": self.by_status,
                "by_language": self.by_language}


class Outbox:
    """The outbox tables in the SQLite state DB at ``path`` (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        # durable: fsync the WAL at commit (survives a power cut). Otherwise the commit only reaches
        # the OS, which survives the process being killed but not the machine going down.
        self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            yield self.db

    def _write(self, sql: str, params: Iterable = (), durable: bool = True) -> int:
        with self._transaction(durable) as db:
            return db.execute(sql, tuple(params)).rowcount

    # -- enqueue ---------------------------------------------------------------------------------

    def enqueue(self, incident_id: str, customers: Path, version: str, languages: tuple[str, ...],
                domain: str) -> EnqueueResult:
        """Add one ``pending`` row per customer of ``customers`` (``affected_customers.parquet``) for
        template ``version``, with the notice language (own ``language`` if in ``languages``, else the
        ``country``'s, else English) and a Message-ID ``<hash@domain>`` of the key. Rows already there
        are left alone, so enqueueing twice adds nothing. Returns an :class:`EnqueueResult`."""
        if FALLBACK_LANGUAGE not in languages:
            raise NotificationError(f"template version {version} has no {FALLBACK_LANGUAGE} notice")
        con = duckdb.connect()
        try:
            try:
                path = {"path": str(customers)}
                # The rule lives in one place (choose_language), applied once per distinct pair.
                pairs = con.sql("SELECT DISTINCT language::VARCHAR AS l, country::VARCHAR AS c FROM read_parquet($path)",
                                params=path).fetchall()
                chosen = [choose_language(lang, country, languages) for lang, country in pairs]
                con.register("notice_language", pa.table({"l": [p[0] for p in pairs], "c": [p[1] for p in pairs],
                                                          "language": chosen}))
                table = con.sql("""
                    SELECT DISTINCT ON (p.customer_id) p.customer_id::VARCHAR AS customer_id,
                           trim(p.email) AS email, n.language,
                           '<' || substr(sha256($incident || '|' || p.customer_id || '|' || $version), 1, 40)
                               || '@' || $domain || '>' AS message_id
                    FROM read_parquet($path) p
                    JOIN notice_language n ON n.l IS NOT DISTINCT FROM p.language::VARCHAR
                                          AND n.c IS NOT DISTINCT FROM p.country::VARCHAR
                    WHERE p.customer_id IS NOT NULL
                    ORDER BY p.customer_id
                """, params={**path, "incident": incident_id, "version": version, "domain": domain}).to_arrow_table()
            except duckdb.Error as exc:
                raise NotificationError(f"cannot read affected customers: {str(exc).splitlines()[0]}",
                                        file=str(customers)) from exc
        finally:
            con.close()
        usable = table.filter(pc.fill_null(pc.match_substring(table["email"], "@"), False))
        now = now_iso()
        columns = [usable[c].to_pylist() for c in ("customer_id", "email", "language", "message_id")]
        with self._transaction():
            before = self.db.total_changes
            self.db.executemany(
                "INSERT OR IGNORE INTO notify_outbox (incident_id, customer_id, template_version, email, language, "
                "message_id, enqueued_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ((incident_id, cid, version, mail, lang, mid, now, now) for cid, mail, lang, mid in zip(*columns, strict=True)))
            added = self.db.total_changes - before
        usable_n, total_n = usable.num_rows, table.num_rows
        return EnqueueResult(added=added, already=usable_n - added, without_address=total_n - usable_n)

    # -- the sender's state machine ---------------------------------------------------------------

    def start_run(self, incident_id: str) -> str:
        """Register a delivery run (with the OS boot it runs in) and return its id, for :meth:`claim`."""
        run_id = uuid.uuid4().hex
        self._write("INSERT INTO notify_runs (run_id, incident_id, boot, pid, started_at) VALUES (?, ?, ?, ?, ?)",
                    (run_id, incident_id, current_boot(), os.getpid(), now_iso()))
        return run_id

    def recover(self, incident_id: str) -> int:
        """Settle rows a stopped sender left in ``sending``; returns how many became ``unknown``.

        A row claimed in this OS boot whose DATA never started was not sent: it goes back to
        ``pending``. A row whose DATA started, or any row claimed before a reboot (its later marks
        may not have reached the disk), has an unknown outcome. Call only while holding
        :func:`incident_lock` (no live sender has rows in flight)."""
        now = now_iso()
        with self._transaction() as db:
            db.execute(
                "UPDATE notify_outbox SET status = 'pending', attempts = attempts - 1, updated_at = ?, claim_run = NULL "
                "WHERE incident_id = ? AND status = 'sending' AND data_at IS NULL "
                "AND claim_run IN (SELECT run_id FROM notify_runs WHERE boot = ?)", (now, incident_id, current_boot()))
            return db.execute(
                "UPDATE notify_outbox SET status = 'unknown', updated_at = ?, last_error = "
                "'the sender stopped during the SMTP transaction: delivery unknown' "
                "WHERE incident_id = ? AND status = 'sending'", (now, incident_id)).rowcount

    def due(self, incident_id: str, version: str, max_attempts: int, limit: int = 500,
            now: Optional[dt.datetime] = None) -> list[Row]:
        """Return up to ``limit`` rows to send now: ``pending`` ones, then ``failed_temp`` ones whose
        retry time has come and that have had fewer than ``max_attempts`` attempts."""
        cur = self.db.execute(
            "SELECT incident_id, customer_id, template_version, email, language, message_id, status, attempts "
            "FROM notify_outbox WHERE incident_id = ? AND template_version = ? AND (status = 'pending' OR "
            "(status = 'failed_temp' AND attempts < ? AND next_attempt_at <= ?)) "
            "ORDER BY status = 'failed_temp', next_attempt_at, customer_id LIMIT ?",
            (incident_id, version, max_attempts, now_iso(now), limit))
        return [Row(**dict(r)) for r in cur.fetchall()]

    def next_retry_at(self, incident_id: str, version: str, max_attempts: int) -> Optional[dt.datetime]:
        """When the earliest still-retryable ``failed_temp`` row is due, or None if there is none."""
        [(when,)] = self.db.execute(
            "SELECT min(next_attempt_at) FROM notify_outbox WHERE incident_id = ? AND template_version = ? "
            "AND status = 'failed_temp' AND attempts < ?", (incident_id, version, max_attempts)).fetchall()
        return dt.datetime.fromisoformat(when.replace("Z", "+00:00")) if when else None

    def claim(self, rows: list[Row], run_id: str) -> list[Row]:
        """Claim ``rows`` for run ``run_id`` (``sending``, one more attempt) in one durable commit —
        one disk flush per batch, not per message; returns the rows claimed (those whose status had
        not changed since they were read)."""
        claimed = []
        now = now_iso()
        with self._transaction() as db:
            for row in rows:
                if db.execute(
                        "UPDATE notify_outbox SET status = 'sending', attempts = attempts + 1, claim_run = ?, "
                        "data_at = NULL, updated_at = ? WHERE incident_id = ? AND customer_id = ? "
                        "AND template_version = ? AND status = ?",
                        (run_id, now, row.incident_id, row.customer_id, row.template_version, row.status)).rowcount:
                    claimed.append(row)
        return claimed

    def mark_data(self, row: Row) -> None:
        """Record that ``row``'s message data is about to go out (committed before the SMTP DATA
        command), so a sender killed from here on leaves an ``unknown`` row, and one killed before
        leaves a row that is simply queued again."""
        self._write("UPDATE notify_outbox SET data_at = ? WHERE incident_id = ? AND customer_id = ? "
                    "AND template_version = ?", (now_iso(), row.incident_id, row.customer_id, row.template_version),
                    durable=False)

    def mark(self, row: Row, status: str, error: Optional[str] = None,
             next_attempt_at: Optional[dt.datetime] = None) -> None:
        """Record the outcome of ``row``'s transaction: ``sent`` (with ``sent_at``), ``failed_temp``
        (with ``next_attempt_at``), ``failed_perm`` or ``unknown``, and the server's reply in ``error``."""
        if status not in ("sent", "failed_temp", "failed_perm", "unknown"):
            raise ValueError(status)
        now = now_iso()
        self._write(
            "UPDATE notify_outbox SET status = ?, last_error = ?, next_attempt_at = ?, updated_at = ?, "
            "sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END "
            "WHERE incident_id = ? AND customer_id = ? AND template_version = ?",
            (status, error, now_iso(next_attempt_at) if next_attempt_at else None, now, status, now,
             row.incident_id, row.customer_id, row.template_version), durable=False)

    # -- settling unknowns and bounces ------------------------------------------------------------

    def reconcile(self, incident_id: str, delivered: set[str], complete: bool = False) -> ReconcileResult:
        """Settle ``unknown`` rows from evidence: a row whose Message-ID is in ``delivered`` was
        delivered and becomes ``sent``. With ``complete`` (``delivered`` lists *every* message the
        server accepted from the stopped sender), the others were not and go back to ``pending``;
        without it they stay ``unknown``. Returns a :class:`ReconcileResult`."""
        unknown = self.db.execute("SELECT message_id FROM notify_outbox WHERE incident_id = ? AND status = 'unknown'",
                                  (incident_id,)).fetchall()
        found = [(m,) for (m,) in unknown if m in delivered]
        missing = [(m,) for (m,) in unknown if m not in delivered]
        now = now_iso()
        with self._transaction():
            self.db.executemany(
                "UPDATE notify_outbox SET status = 'sent', sent_at = ?, updated_at = ?, last_error = "
                "'delivery confirmed by reconcile' WHERE message_id = ? AND status = 'unknown'",
                [(now, now, m) for (m,) in found])
            if complete:
                self.db.executemany(
                    "UPDATE notify_outbox SET status = 'pending', updated_at = ?, last_error = "
                    "'not in the complete delivery record: not delivered' WHERE message_id = ? AND status = 'unknown'",
                    [(now, m) for (m,) in missing])
        return ReconcileResult(delivered=len(found), requeued=len(missing) if complete else 0,
                               still_unknown=0 if complete else len(missing))

    def resend_unknown(self, incident_id: str) -> int:
        """Queue every ``unknown`` row again (the user accepts that some customers may get the
        notice twice); returns how many."""
        return self._write(
            "UPDATE notify_outbox SET status = 'pending', updated_at = ?, last_error = "
            "'outcome unknown; resent on request' WHERE incident_id = ? AND status = 'unknown'",
            (now_iso(), incident_id))

    def record_bounces(self, incident_id: str, bounces: Iterable[Bounce]) -> BounceResult:
        """Mark the notices of ``incident_id`` named by ``bounces`` (by Message-ID, else by recipient
        address) as ``bounced`` with the reason; returns a :class:`BounceResult`."""
        recorded = unmatched = 0
        now = now_iso()
        with self._transaction():
            for b in bounces:
                reason = " ".join(p for p in (b.status, b.diagnostic) if p) or "bounced"
                changed = 0
                if b.message_id:
                    changed = self.db.execute(
                        "UPDATE notify_outbox SET status = 'bounced', last_error = ?, updated_at = ? "
                        "WHERE incident_id = ? AND message_id = ? AND status IN ('sent', 'unknown', 'sending', 'bounced')",
                        (reason, now, incident_id, b.message_id)).rowcount
                if not changed and b.recipient:
                    changed = self.db.execute(
                        "UPDATE notify_outbox SET status = 'bounced', last_error = ?, updated_at = ? "
                        "WHERE incident_id = ? AND lower(email) = lower(?) AND status IN ('sent', 'unknown', 'bounced')",
                        (reason, now, incident_id, b.recipient)).rowcount
                recorded += changed
                unmatched += not changed
        return BounceResult(recorded=recorded, unmatched=unmatched)

    # -- reading -----------------------------------------------------------------------------------

    def report(self, incident_id: str) -> Report:
        """Return the :class:`Report` of ``incident_id``'s notices: counts by status and language."""
        report = Report(incident_id, by_status={s: 0 for s in STATUSES})
        for r in self.db.execute("SELECT language, status, count(*) AS n FROM notify_outbox WHERE incident_id = ? "
                                 "GROUP BY 1, 2 ORDER BY 1, 2", (incident_id,)).fetchall():
            report.total += r["n"]
            report.by_status[r["status"]] += r["n"]
            report.by_language.setdefault(r["language"], {})[r["status"]] = r["n"]
        return report

    def rows(self, incident_id: str) -> list[dict]:
        """Every outbox row of ``incident_id`` as a dict (contains addresses: not for display)."""
        return [dict(r) for r in self.db.execute(
            "SELECT * FROM notify_outbox WHERE incident_id = ? ORDER BY customer_id", (incident_id,)).fetchall()]


@contextmanager
def incident_lock(state: Path, incident_id: str) -> Iterator[None]:
    """Hold the lock that lets one process at a time send or reconcile ``incident_id``'s notices
    (a file lock next to the state DB, released by the OS if the holder dies); raises
    :class:`NotificationError` when another process holds it."""
    path = Path(state).with_name(f"{Path(state).name}.notify-{incident_id}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise NotificationError(f"another `crmguard notify` is sending or reconciling {incident_id}; wait for "
                                    "it to finish", file=str(path)) from exc
        yield


def reconcile_notices(state: Path, incident_id: str, delivered: set[str], complete: bool = False) -> ReconcileResult:
    """Settle the outcome of notices a stopped sender left in flight or ``unknown``, from the
    Message-IDs in ``delivered`` (see :meth:`Outbox.reconcile`); takes the incident's lock, so it
    refuses to run while a sender is live. Returns a :class:`ReconcileResult`."""
    with incident_lock(state, incident_id), Outbox(state) as outbox:
        outbox.recover(incident_id)
        return outbox.reconcile(incident_id, delivered, complete=complete)


# -- evidence files --------------------------------------------------------------------------------

def read_delivered_ids(path: Path) -> set[str]:
    """Return every Message-ID (``<local@domain>``) found in ``path``: an MTA log (Postfix
    ``message-id=<…>``), a mailbox export or a plain list, one per line."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise NotificationError(f"cannot read delivery evidence: {exc.strerror}", file=str(path)) from exc
    return set(MESSAGE_ID.findall(text))


def read_bounces(path: Path) -> tuple[list[Bounce], int]:
    """Read bounces from ``path``: an mbox of bounce messages, one bounce message (``.eml``), or a
    list with one ``<message-id>`` or address per line optionally followed by a reason. DSNs
    (RFC 3464) give recipient, status and diagnostic; other bounce messages give the Message-IDs
    they quote. Returns the failed deliveries and the number of DSN entries ignored (delays, relays)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise NotificationError(f"cannot read bounces: {exc.strerror}", file=str(path)) from exc
    if raw.startswith(b"From "):
        box = mailbox.mbox(str(path), create=False)
        try:
            messages: Iterator[Message] = iter([message_from_bytes(m.as_bytes(), policy=policy.default) for m in box])
        finally:
            box.close()
    elif re.match(rb"^[A-Za-z0-9-]+:", raw):
        messages = iter([message_from_bytes(raw, policy=policy.default)])
    else:
        return _bounce_list(raw.decode("utf-8", errors="replace")), 0
    bounces: list[Bounce] = []
    ignored = 0
    for msg in messages:
        found, skipped = _bounces_of(msg)
        bounces += found
        ignored += skipped
    return bounces, ignored


def _bounce_list(text: str) -> list[Bounce]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, reason = line.replace(",", " ", 1).partition(" ")
        if MESSAGE_ID.fullmatch(key):
            out.append(Bounce(message_id=key, recipient=None, diagnostic=reason.strip()))
        elif "@" in key:
            out.append(Bounce(message_id=None, recipient=key, diagnostic=reason.strip()))
    return out


def _bounces_of(msg: Message) -> tuple[list[Bounce], int]:
    own_id = (msg.get("Message-ID") or "").strip()
    original_id: Optional[str] = None
    reports: list[Message] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            reports += [p for p in part.get_payload() if isinstance(p, Message)]
        elif ctype == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) else inner
            original_id = original_id or (inner.get("Message-ID") or "").strip() or None
        elif ctype == "text/rfc822-headers":
            headers = HeaderParser().parsestr(part.get_payload(decode=True).decode("utf-8", errors="replace"))
            original_id = original_id or (headers.get("Message-ID") or "").strip() or None
    if not reports:
        # Not a DSN: trust the Message-IDs the bounce quotes (other than its own).
        quoted = set(MESSAGE_ID.findall(msg.as_string())) - {own_id}
        return [Bounce(message_id=m, recipient=None, diagnostic="non-DSN bounce") for m in sorted(quoted)], 0
    bounces, ignored = [], 0
    for fields in reports[1:] or reports:
        action = (fields.get("Action") or "").strip().lower()
        recipient = (fields.get("Final-Recipient") or fields.get("Original-Recipient") or "").split(";")[-1].strip()
        if action != "failed" or not (recipient or original_id):
            ignored += 1
            continue
        bounces.append(Bounce(message_id=original_id, recipient=recipient or None,
                              status=(fields.get("Status") or "").strip(),
                              diagnostic=" ".join((fields.get("Diagnostic-Code") or "").split())))
    return bounces, ignored
