"""The delivery loop: send what is due in the outbox, journal every attempt, back off when a sink is down.

At-least-once: a row is claimed (its next attempt pushed a lease ahead, so a second deliverer
skips it), sent, then marked delivered. A crash between the send and the mark leaves it pending, and
it is sent again after the lease; receivers deduplicate on the idempotency key.

A sink that fails once in a pass is not tried again in that pass: its failed row is retried after
the backoff, and the sink's other pending rows wait at least as long, so a dead endpoint costs one
timeout per backoff step, not one per alert.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from crmguard.sinks import outbox
from crmguard.sinks.config import FileSink, Retry, SinksConfig, SlackSink, SmtpSink, WebhookSink
from crmguard.sinks.mail import SmtpSender
from crmguard.sinks.ocsf import FileSender
from crmguard.sinks.outbox import stamp
from crmguard.sinks.payload import SendFailed, load_view
from crmguard.sinks.slack import slack_message
from crmguard.sinks.webhook import HttpSender, generic_payload

LEASE = dt.timedelta(minutes=2)
"""How long a claimed row is hidden from other deliverers; longer than any sink timeout."""


class Sender(Protocol):
    """What every sink module provides: send one alert view (returns a short detail for the
    journal, raises ``SendFailed``), and close."""

    def send(self, view: dict) -> str: ...

    def close(self) -> None: ...


def open_sender(sink: object, config: SinksConfig) -> Sender:
    """Return the sender for a configured sink."""
    if isinstance(sink, SlackSink):
        return HttpSender(sink, config, slack_message)
    if isinstance(sink, WebhookSink):
        return HttpSender(sink, config, generic_payload)
    if isinstance(sink, SmtpSink):
        return SmtpSender(sink, config)
    if isinstance(sink, FileSink):
        return FileSender(sink)
    raise TypeError(f"no sender for {type(sink).__name__}")


@dataclass
class DeliveryReport:
    """What one :func:`deliver_due` pass did. ``failed``: attempts that failed and will be retried;
    ``dead``: rows that ran out of attempts in this pass; ``deferred``: due rows not tried (their
    sink failed earlier in the pass, or the time budget ran out); ``unconfigured``: due rows for a
    sink no longer in the config (kept, not dropped); ``pending``/``dead_total``: outbox totals
    after the pass; ``errors``: the last error per sink."""

    delivered: int = 0
    suppressed: int = 0
    failed: int = 0
    dead: int = 0
    deferred: int = 0
    unconfigured: int = 0
    pending: int = 0
    dead_total: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for people."""
        text = (f"delivered {self.delivered}, suppressed {self.suppressed}, failed {self.failed} (will retry), "
                f"deferred {self.deferred}; outbox: {self.pending} pending, {self.dead_total} dead")
        if self.unconfigured:
            text += f"; {self.unconfigured} due for sinks not in the config"
        return text

    def add(self, other: DeliveryReport) -> None:
        """Add another pass's counts into this one (totals and errors are taken from ``other``)."""
        for name in ("delivered", "suppressed", "failed", "dead", "deferred"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unconfigured, self.pending, self.dead_total = other.unconfigured, other.pending, other.dead_total
        self.errors.update(other.errors)


def _suppressor(db: sqlite3.Connection, row: sqlite3.Row, window: dt.timedelta, now: dt.datetime) -> str | None:
    found = db.execute(
        "SELECT alert_id FROM alert_outbox WHERE sink = ? AND actor = ? AND status = 'delivered' AND delivered_at >= ? "
        "AND rank >= ? ORDER BY delivered_at DESC LIMIT 1",
        (row["sink"], row["actor"], stamp(now - window), row["rank"])).fetchall()
    return found[0][0] if found else None


def _claim(db: sqlite3.Connection, row: sqlite3.Row, now: dt.datetime) -> bool:
    cur = db.execute("UPDATE alert_outbox SET next_attempt_at = ? WHERE id = ? AND status = 'pending' AND next_attempt_at <= ?",
                     (stamp(now + LEASE), row["id"], stamp(now)))
    return cur.rowcount == 1


def deliver_due(db_path: str | Path, config: SinksConfig, now: dt.datetime | None = None,
                budget_s: float | None = None, on_row: Callable[[int, int], None] | None = None) -> DeliveryReport:
    """Send every outbox row of ``db_path`` that is due at ``now`` (default: the current time) to
    its sink in ``config``, most severe first, starting no send after ``budget_s`` seconds (None: no
    limit; a send under way finishes, bounded by the sink's timeout).
    Applies actor suppression windows, records every attempt in the journal and schedules retries
    with the sink's backoff; ``on_row(done, total)`` is called after each due row (progress).
    Returns a :class:`DeliveryReport`; a sink that is down never raises."""
    now = now or dt.datetime.now(dt.UTC)
    deadline = None if budget_s is None else time.monotonic() + budget_s
    sinks = config.by_name()
    report = DeliveryReport()
    senders: dict[str, Sender] = {}
    blocked: set[str] = set()
    db = outbox.connect(db_path)
    try:
        due = outbox.due(db, now)
        for done, row in enumerate(due, 1):
            if on_row:
                on_row(done, len(due))
            sink = sinks.get(row["sink"])
            if sink is None:
                report.unconfigured += 1
                continue
            if row["sink"] in blocked or (deadline is not None and time.monotonic() >= deadline):
                report.deferred += 1
                continue
            if not _claim(db, row, now):
                continue  # another deliverer has it
            attempt = row["attempts"] + 1
            if sink.suppress_actor_for and row["actor"]:
                by = _suppressor(db, row, sink.suppress_actor_for, now)
                if by is not None:
                    with outbox.transaction(db):
                        db.execute("UPDATE alert_outbox SET status = 'suppressed', last_error = NULL WHERE id = ?", (row["id"],))
                        outbox.journal(db, now, row, attempt - 1, "suppressed",
                                       f"actor alerted within {sink.suppress_actor_for} by alert {by}")
                    report.suppressed += 1
                    continue
            view = load_view(db, row["alert_id"], row["version"])
            if view is None:  # alerts are never deleted; if one was, no retry can help
                _dead(db, row, attempt, "the alert is no longer in the alert store", now, None, report)
                continue
            started = time.monotonic()
            try:
                if sink.name not in senders:
                    senders[sink.name] = open_sender(sink, config)
                detail = senders[sink.name].send(view)
            except Exception as exc:  # noqa: BLE001 - a sender bug must not stall every other delivery
                failure = exc if isinstance(exc, SendFailed) else SendFailed(f"{type(exc).__name__}: {exc}", sink=sink.name)
                _failed(db, row, sink.retry, attempt, failure, now, (time.monotonic() - started) * 1000, report)
                blocked.add(sink.name)
                report.errors[sink.name] = failure.message
                continue
            with outbox.transaction(db):
                db.execute("UPDATE alert_outbox SET status = 'delivered', attempts = ?, delivered_at = ?, last_error = NULL "
                           "WHERE id = ?", (attempt, stamp(now), row["id"]))
                outbox.journal(db, now, row, attempt, "delivered", detail, (time.monotonic() - started) * 1000)
            report.delivered += 1
        totals = dict(db.execute("SELECT status, count(*) FROM alert_outbox WHERE status IN ('pending', 'dead') "
                                 "GROUP BY 1").fetchall())
        report.pending, report.dead_total = totals.get("pending", 0), totals.get("dead", 0)
    finally:
        for sender in senders.values():
            sender.close()
        db.close()
    return report


def _dead(db: sqlite3.Connection, row: sqlite3.Row, attempt: int, error: str, now: dt.datetime,
          latency_ms: float | None, report: DeliveryReport) -> None:
    with outbox.transaction(db):
        db.execute("UPDATE alert_outbox SET status = 'dead', attempts = ?, last_error = ? WHERE id = ?", (attempt, error, row["id"]))
        outbox.journal(db, now, row, attempt, "dead", error, latency_ms)
    report.dead += 1


def _failed(db: sqlite3.Connection, row: sqlite3.Row, retry: Retry, attempt: int, exc: SendFailed,
            now: dt.datetime, latency_ms: float, report: DeliveryReport) -> None:
    if retry.max_attempts is not None and attempt >= retry.max_attempts:
        _dead(db, row, attempt, exc.message, now, latency_ms, report)
        return
    delay = retry.delay(attempt)
    if exc.retry_after is not None:
        delay = max(delay, dt.timedelta(seconds=exc.retry_after))
    nxt = stamp(now + delay)
    with outbox.transaction(db):
        db.execute("UPDATE alert_outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                   (attempt, nxt, exc.message, row["id"]))
        # the sink is down: its other rows wait for the same retry instead of each paying a timeout
        db.execute("UPDATE alert_outbox SET next_attempt_at = max(next_attempt_at, ?) WHERE sink = ? AND status = 'pending' "
                   "AND id != ?", (nxt, row["sink"], row["id"]))
        outbox.journal(db, now, row, attempt, "failed", exc.message, latency_ms)
    report.failed += 1


def deliver_stored(db_path: str | Path, config: SinksConfig, since: dt.datetime | None = None,
                   now: dt.datetime | None = None, budget_s: float | None = None,
                   on_row: Callable[[int, int], None] | None = None) -> tuple[int, DeliveryReport]:
    """Enqueue every stored alert (``last_seen`` ≥ ``since`` when given) not yet in the outbox, then
    :func:`deliver_due`. Returns (rows enqueued, report)."""
    added = outbox.enqueue(db_path, outbox.stored_alert_ids(db_path, since), config, now)
    return added, deliver_due(db_path, config, now, budget_s, on_row)


def deliver_loop(db_path: str | Path, config: SinksConfig, interval_s: float, stop: Callable[[], bool],
                 on_pass: Callable[[int, DeliveryReport], None] | None = None,
                 since: dt.datetime | None = None, wait: Callable[[float], object] = time.sleep) -> DeliveryReport:
    """Run :func:`deliver_stored` every ``interval_s`` seconds until ``stop()`` is true (checked
    after each pass), calling ``on_pass(enqueued, report)`` after each. Returns the summed report."""
    total = DeliveryReport()
    while True:
        added, report = deliver_stored(db_path, config, since, budget_s=max(interval_s, 1.0))
        total.add(report)
        if on_pass:
            on_pass(added, report)
        if stop():
            return total
        wait(interval_s)
