"""Sending notices: an SMTP client that tells sent / temporary / permanent / unknown apart, a token
bucket, and the delivery run that drives the outbox.

One message is in flight at a time on one reused connection (see :mod:`crmguard.response.outbox`
for what is committed when). The SMTP dialogue is driven step by
step (MAIL, RCPT, DATA) so a failure is classified by where it happened: a refusal or a dropped
connection before the message data went out means "not delivered" (retry later or give up); a
connection lost after the data went out but before the server's reply means nobody knows, and the
row becomes ``unknown`` rather than being retried blindly.
"""

from __future__ import annotations

import datetime as dt
import getpass
import random
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parseaddr
from pathlib import Path
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq

from crmguard.errors import NotificationError
from crmguard.response.incidents import IncidentStore
from crmguard.response.notices import (
    TEMPLATE_VERSION,
    Customer,
    Incident,
    NoticeRenderer,
    build_message,
    load_incident,
    require_incident_files,
)
from crmguard.response.outbox import FINAL, Outbox, Row, incident_lock
from crmguard.response.register import BreachRegister
from crmguard.smtp import open_smtp, quit_smtp


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to connect: ``host``, ``port``, STARTTLS, optional login, socket ``timeout`` (s)."""

    host: str
    port: int
    starttls: bool = False
    user: Optional[str] = None
    password: Optional[str] = None
    timeout: float = 30.0


def parse_hostport(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[v6]:PORT`` too); returns ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise NotificationError(f"expected HOST:PORT, got {text!r}", field="--smtp")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Delivery:
    """The outcome of one SMTP transaction: ``status`` (``sent``, ``temporary``, ``permanent`` or
    ``unknown``) and the server's ``reply`` (or the error) for the record."""

    status: str
    reply: str


def _reply(code: int, text: bytes | str) -> str:
    text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(text.split())}"


def _classify(code: int, text: bytes | str) -> Delivery:
    # 5xx is a refusal for good; 4xx, and anything unreadable (smtplib's -1), may pass later.
    return Delivery("permanent" if 500 <= code < 600 else "temporary", _reply(code, text))


class Mailer:
    """One SMTP connection reused for many messages; :meth:`send` returns a :class:`Delivery`.

    Use as a context manager (the connection is closed with QUIT at the end)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.smtp: Optional[smtplib.SMTP] = None
        self.sent_on_connection = 0

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Say QUIT and close the connection, if open."""
        quit_smtp(self.smtp)
        self.smtp = None

    def _drop(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            smtp = open_smtp(s.host, s.port, s.timeout, s.starttls, s.user, s.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise NotificationError(f"SMTP login refused: {_reply(exc.smtp_code, exc.smtp_error)}",
                                    field="--user") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise NotificationError(f"{s.host}:{s.port} does not offer STARTTLS", field="--starttls") from exc
        self.sent_on_connection = 0
        return smtp

    def send(self, msg: Message, sender: str, recipient: str,
             before_data: Optional[Callable[[], None]] = None) -> Delivery:
        """Send ``msg`` from envelope ``sender`` to the single ``recipient``; returns the outcome.
        ``before_data()`` is called once the server accepted the recipient, right before DATA.

        ``temporary``: refused with 4xx, or no connection, before DATA (safe to retry);
        ``permanent``: refused with 5xx; ``unknown``: the connection failed once DATA was issued
        (counted as possibly delivered); ``sent``: the server answered 250 to the data."""
        data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
        for retry_on_new_connection in (True, False):
            reused = self.smtp is not None and self.sent_on_connection > 0
            try:
                if self.smtp is None:
                    self.smtp = self._connect()
                smtp: smtplib.SMTP = self.smtp
                options = []
                if not recipient.isascii() or not sender.isascii():
                    if not smtp.has_extn("smtputf8"):
                        return Delivery("permanent", "server does not support SMTPUTF8 for a non-ASCII address")
                    options = ["SMTPUTF8"]
                code, text = smtp.mail(sender, options)
                if code != 250:
                    self._safe_rset()
                    return _classify(code, text)
                code, text = smtp.rcpt(recipient)
                if code not in (250, 251):
                    self._safe_rset()
                    return _classify(code, text)
            except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                self._drop()
                if reused and retry_on_new_connection:
                    continue  # the server closed an idle or used-up connection: open a new one once
                return Delivery("temporary", f"connection lost before the data: {exc}")
            except (smtplib.SMTPException, OSError) as exc:
                self._drop()
                return Delivery("temporary", f"no SMTP session: {exc}")
            break
        if before_data:
            before_data()
        try:
            code, text = smtp.data(data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused: the message was not sent
            self._safe_rset()
            return _classify(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            return Delivery("unknown", f"connection lost after the data was sent: {exc}")
        self.sent_on_connection += 1
        if code == 250:
            return Delivery("sent", _reply(code, text))
        self._safe_rset()
        return _classify(code, text)

    def _safe_rset(self) -> None:
        try:
            if self.smtp is not None:
                self.smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()


class TokenBucket:
    """At most ``rate`` takes per second on average, bursts up to ``burst``; ``rate`` 0 = no limit."""

    def __init__(self, rate: float, burst: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.tokens = self.burst
        self.clock, self.sleep = clock, sleep
        self.last = clock()

    def take(self) -> None:
        """Take one token, sleeping until one is available."""
        if self.rate <= 0:
            return
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            self.sleep((1 - self.tokens) / self.rate)
            self.last = self.clock()
            self.tokens = 0.0
        else:
            self.tokens -= 1


def backoff(attempts: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before attempt ``attempts + 1``: ``base · 2^(attempts-1)``, capped at ``cap``,
    times a jitter in [0.5, 1.5) so many failed rows do not retry in lockstep."""
    return min(cap, base * 2 ** max(0, attempts - 1)) * (0.5 + rng.random())


@dataclass
class SendOptions:
    """How a delivery run behaves (see ``crmguard notify send --help``)."""

    sender: Optional[str] = None
    rate: float = 10.0
    max_attempts: int = 5
    retry_base: float = 30.0
    retry_cap: float = 3600.0
    resend_unknown: bool = False
    version: str = TEMPLATE_VERSION
    seed: Optional[int] = None


@dataclass
class SendResult:
    """What a delivery run did: rows ``enqueued`` (new), messages ``delivered`` in this run,
    ``temporary`` / ``permanent`` failures and ``unknown`` outcomes met, ``recovered_unknown`` rows a
    previous run left in flight, ``unknown_waiting`` rows still waiting for reconcile, and
    ``without_address`` customers with no usable e-mail."""

    enqueued: int = 0
    without_address: int = 0
    recovered_unknown: int = 0
    unknown_waiting: int = 0
    delivered: int = 0
    temporary: int = 0
    permanent: int = 0
    unknown: int = 0
    outstanding: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def require_decision_to_notify(state: Path, incident_id: str) -> None:
    """Raise :class:`NotificationError` unless the breach register's latest Art. 34 decision for
    ``incident_id`` is to notify the data subjects (``crmguard incident decide ID --notify
    --audience subjects``): writing to every affected customer is a recorded decision, not a default."""
    register = BreachRegister(state)
    try:
        decisions = [e.decision for e in register.entries(incident_id) if e.kind == "decision" and e.audience == "subjects"]
    finally:
        register.close()
    if not decisions or decisions[-1] != "notify-subjects":
        said = f"the latest decision is {decisions[-1]!r}" if decisions else "no decision is recorded"
        raise NotificationError(
            f"{said} to notify the data subjects of {incident_id} (Art. 34); record it first: "
            f"crmguard incident decide {incident_id} --notify --audience subjects", file=str(state))


def journal(home: Path, state: Path, incident_id: str, action: str, result: str, detail: dict) -> None:
    """Record a notification step in the incident's journal (the one every response action goes
    through), as the current OS user."""
    store = IncidentStore(state, Path(home) / "incidents")
    try:
        store.journal(incident_id, action, getpass.getuser(), result, detail)
    finally:
        store.close()


class CustomerIndex:
    """The affected customers of ``affected_customers.parquet``, looked up by id: kept as one Arrow
    table (compact even for millions of customers) with an id → row map; rows become
    :class:`Customer` objects only when a notice is rendered."""

    COLUMNS = ("customer_id", "first_name", "last_name", "email", "country", "language", "brand", "fields_exposed",
               "exact")

    def __init__(self, path: Path) -> None:
        try:
            self.table = pq.read_table(path, columns=list(self.COLUMNS))
        except (OSError, KeyError, ValueError) as exc:
            raise NotificationError(f"cannot read affected customers: {exc}", file=str(path)) from exc
        ids = self.table.column("customer_id").cast(pa.string()).to_pylist()
        self.row = dict(zip(ids, range(len(ids)), strict=True))

    def get(self, customer_id: str) -> Optional[Customer]:
        """The customer with ``customer_id``, or None if the scope no longer has them."""
        i = self.row.get(customer_id)
        if i is None:
            return None
        r = self.table.slice(i, 1).to_pylist()[0]
        return Customer(customer_id=customer_id, first_name=r["first_name"], last_name=r["last_name"], email=r["email"],
                        country=r["country"], language=r["language"], brand=r["brand"],
                        fields_exposed=tuple(r["fields_exposed"] or ()),
                        exact=True if r["exact"] is None else bool(r["exact"]))


@dataclass
class _Run:
    """What one delivery run works with, passed around the loop."""

    outbox: Outbox
    mailer: Mailer
    renderer: NoticeRenderer
    incident: Incident
    customers: CustomerIndex
    run_id: str
    sender: str
    envelope_from: str
    options: SendOptions
    bucket: TokenBucket
    rng: random.Random
    result: SendResult
    sleep: Callable[[float], None]
    on_progress: Optional[Callable[[int, int], None]]
    total: int
    done: int = 0


def send_notices(home: Path, state: Path, incident_id: str, settings: SmtpSettings, options: SendOptions,
                 on_progress: Optional[Callable[[int, int], None]] = None,
                 sleep: Callable[[float], None] = time.sleep) -> SendResult:
    """Enqueue the incident's affected customers (idempotent) and send every due notice through
    ``settings``; returns a :class:`SendResult`. ``on_progress(done, total)`` is called as rows
    reach an outcome. Holds a lock so one sender at a time works on an incident; rows a dead sender
    left in flight become ``unknown`` and are not sent unless ``options.resend_unknown``."""
    incident_path, customers_path = require_incident_files(home, incident_id)
    incident = load_incident(incident_path)
    incident.require_contact_point(incident_path)
    require_decision_to_notify(Path(state), incident_id)
    sender = options.sender or incident.controller.contact_email
    if not sender or "@" not in parseaddr(sender)[1]:
        raise NotificationError("no sender address: pass --from or set controller.contact_email", file=str(incident_path))
    envelope_from = parseaddr(sender)[1]
    renderer = NoticeRenderer(options.version)
    customers = CustomerIndex(customers_path)
    result = SendResult()
    with incident_lock(Path(state), incident_id), Outbox(state) as outbox:
        added = outbox.enqueue(incident_id, customers_path, options.version, renderer.languages,
                               envelope_from.rsplit("@", 1)[1])
        result.enqueued, result.without_address = added.added, added.without_address
        result.recovered_unknown = outbox.recover(incident_id)
        if options.resend_unknown:
            outbox.resend_unknown(incident_id)
        before = outbox.report(incident_id).by_status
        total = before["pending"] + before["failed_temp"]
        journal(home, state, incident_id, "notify send started", "started",
                {"smtp": f"{settings.host}:{settings.port}", "version": options.version, "rate": options.rate,
                 "enqueued": added.added, "to_send": total, "recovered_unknown": result.recovered_unknown,
                 "resend_unknown": options.resend_unknown})
        if on_progress:
            on_progress(0, total)
        with Mailer(settings) as mailer:
            run = _Run(outbox, mailer, renderer, incident, customers, outbox.start_run(incident_id), sender,
                       envelope_from, options, TokenBucket(options.rate, sleep=sleep), random.Random(options.seed),
                       result, sleep, on_progress, total)
            try:
                _deliver(run, incident_id)
            finally:
                # Stopped by an error or Ctrl-C: claimed rows whose DATA never started go back to the
                # queue, the one whose DATA had started becomes unknown.
                outbox.recover(incident_id)
        report = outbox.report(incident_id)
        result.counts = report.by_status
        result.unknown_waiting = report.by_status["unknown"]
        result.outstanding = report.total - sum(report.by_status[s] for s in FINAL)
        journal(home, state, incident_id, "notify send finished",
                "complete" if not result.outstanding else "incomplete",
                {"delivered": result.delivered, "temporary": result.temporary, "permanent": result.permanent,
                 "unknown": result.unknown, "by_status": report.by_status})
    return result


def _deliver(run: _Run, incident_id: str) -> None:
    """Send due rows in claimed batches until none is due or waiting for a retry."""
    options, outbox = run.options, run.outbox
    # Claim about a second's worth of rows per durable commit: a power cut leaves at most that many
    # rows unknown, a killed process only the one whose DATA had started.
    batch = max(1, min(100, int(options.rate))) if options.rate > 0 else 100
    while True:
        rows = outbox.due(incident_id, options.version, options.max_attempts, limit=batch)
        if not rows:
            wait = outbox.next_retry_at(incident_id, options.version, options.max_attempts)
            if wait is None:
                return
            run.mailer.close()  # do not hold the server's connection while backing off
            run.sleep(max(0.0, (wait - dt.datetime.now(dt.UTC)).total_seconds()))
            continue
        # Everything that can fail without the server happens before rows are claimed.
        messages = {}
        for row in rows:
            customer = run.customers.get(row.customer_id)
            if customer is None:
                outbox.mark(row, "failed_perm", "customer no longer in affected_customers.parquet")
                run.result.permanent += 1
                run.done += 1
                continue
            notice = run.renderer.render(run.incident, customer, row.language)
            messages[row.customer_id] = build_message(notice, sender=run.sender, recipient=row.email,
                                                      message_id=row.message_id,
                                                      reply_to=run.incident.controller.contact_email)
        for row in outbox.claim([r for r in rows if r.customer_id in messages], run.run_id):
            run.bucket.take()
            if _send_one(run, row, messages[row.customer_id]):
                run.done += 1
            if run.on_progress:
                run.on_progress(run.done, run.total)


def _send_one(run: _Run, row: Row, msg: Message) -> bool:
    """Send one claimed row and record the outcome; returns True when no retry in this run will
    change it."""
    outbox, result = run.outbox, run.result
    delivery = run.mailer.send(msg, run.envelope_from, row.email, before_data=lambda: outbox.mark_data(row))
    if delivery.status in ("sent", "unknown", "permanent"):
        outbox.mark(row, {"permanent": "failed_perm"}.get(delivery.status, delivery.status), delivery.reply)
        if delivery.status == "sent":
            result.delivered += 1
        elif delivery.status == "unknown":
            result.unknown += 1
        else:
            result.permanent += 1
        return True
    result.temporary += 1
    attempts = row.attempts + 1
    delay = backoff(attempts, run.options.retry_base, run.options.retry_cap, run.rng)
    outbox.mark(row, "failed_temp", delivery.reply, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay))
    return attempts >= run.options.max_attempts
