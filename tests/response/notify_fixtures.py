"""Helpers for the notice and notify tests: an incident folder as the incidents module writes it
(``incident.json`` + ``affected_customers.parquet``), synthetic customers with the notice language
each must get, and a real SMTP server (aiosmtpd) on localhost that records what it receives."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from crmguard.response.register import BreachRegister

INCIDENT_ID = "INC-2025-0001"
DROP = "drop the connection"

INCIDENT = {
    "id": INCIDENT_ID,
    "title": "Customer records exported through a rogue connected app",
    "status": "open",
    "breach_start": "2025-03-03T08:12:00Z",
    "breach_end": "2025-03-05T17:40:00Z",
    "detected_at": "2025-03-06T09:30:00Z",
    "aware_at": "2025-03-06T11:00:00Z",
    "deadline": "2025-03-09T11:00:00Z",
    "controller": {"name": "Maison Exemple SA", "contact_email": "privacy@maison-exemple.com",
                   "dpo_email": "dpo@maison-exemple.com", "phone": "+33 1 40 00 00 00"},
    "observables": {"actors": ["integration@maison-exemple.com"], "ips": ["185.220.101.4"]},
}

ALL_FIELDS = ["FirstName", "LastName", "Email", "Phone", "MailingStreet", "MailingCity", "MailingPostalCode",
              "MailingCountry", "TotalSpend"]

# (customer language, country, the notice language they must get): own language, then the
# country's main language, then English.
LANGUAGE_CASES = [
    ("en", "GB", "en"), ("fr", "FR", "fr"), ("it", "IT", "it"), ("de", "DE", "de"), ("ja", "JP", "ja"),
    ("zh", "CN", "zh"), ("de", "AT", "de"), ("zh", "HK", "zh-Hant"), ("", "CH", "de"), ("pt", "FR", "fr"),
    ("ko", "KR", "en"), (None, None, "en"), ("es", "MX", "es"), ("zh", "GB", "zh"), (None, "TW", "zh-Hant"),
]

# A word every notice in that language has in its subject, and none of the others has.
SUBJECT_MARKER = {"en": "important information", "fr": "information importante", "it": "informazioni importanti",
                  "de": "Wichtige Information", "es": "información importante", "ja": "お知らせ", "zh": "个人信息",
                  "zh-Hant": "個人資料"}

COLUMNS = ("incident_id", "customer_id", "first_name", "last_name", "email", "phone", "country", "language",
           "brand", "total_spend", "spend_tier", "fields_exposed", "exact")

SCHEMA = pa.schema([("incident_id", pa.string()), ("customer_id", pa.string()), ("first_name", pa.string()),
                    ("last_name", pa.string()), ("email", pa.string()), ("phone", pa.string()),
                    ("country", pa.string()), ("language", pa.string()), ("brand", pa.string()),
                    ("total_spend", pa.float64()), ("spend_tier", pa.string()),
                    ("fields_exposed", pa.list_(pa.string())), ("exact", pa.bool_())])


def customer(customer_id: str, language: str | None, country: str | None, **extra: object) -> dict:
    """One affected-customer row (every contract column), overridable by ``extra``."""
    row = {"incident_id": INCIDENT_ID, "customer_id": customer_id, "first_name": "Alex", "last_name": "Doe",
           "email": f"{customer_id.lower()}@example.org", "phone": "+33 6 12 34 56 78", "country": country,
           "language": language, "brand": "Maison A", "total_spend": 1234.5, "spend_tier": "gold",
           "fields_exposed": ["Email", "FirstName", "LastName"], "exact": True}
    row.update(extra)
    return row


def many_customers(n: int) -> tuple[list[dict], dict[str, str]]:
    """``n`` customers cycling through :data:`LANGUAGE_CASES`; returns the rows and, per customer
    id, the notice language they must get."""
    rows, expected = [], {}
    for i in range(n):
        language, country, want = LANGUAGE_CASES[i % len(LANGUAGE_CASES)]
        cid = f"003C{i:011d}"
        rows.append(customer(cid, language, country, fields_exposed=ALL_FIELDS[: 3 + i % 7]))
        expected[cid] = want
    return rows, expected


def write_incident(home: Path, rows: list[dict], incident: dict | None = None, decision: str | None = "notify-subjects") -> Path:
    """Write ``<home>/incidents/<id>/incident.json`` and ``affected_customers.parquet`` and record the
    Art. 34 ``decision`` in the breach register of ``<home>/state.db`` (None: none); returns the folder."""
    incident = incident or INCIDENT
    folder = Path(home) / "incidents" / incident["id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "incident.json").write_text(json.dumps(incident, ensure_ascii=False, indent=2))
    table = pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=SCHEMA)
    pq.write_table(table, folder / "affected_customers.parquet")
    if decision:
        register = BreachRegister(Path(home) / "state.db")
        register.append(incident_id=incident["id"], kind="decision", who="dpo", decision=decision, audience="subjects",
                        reason=None if decision == "notify-subjects" else "risk not high", facts={}, effects={},
                        remedial={})
        register.close()
    return folder


@dataclass
class Received:
    """What the test SMTP server accepted: one entry per message, in arrival order."""

    recipients: list[str] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    sessions_open: int = 0
    sessions_total: int = 0

    def parsed(self, i: int):
        """The ``i``-th message as an :class:`email.message.EmailMessage`."""
        return message_from_bytes(self.raw[i], policy=policy.default)

    def headers(self, i: int) -> dict[str, str]:
        """The ``i``-th message's headers, RFC 2047 words decoded (much faster than :meth:`parsed`)."""
        head = BytesHeaderParser(policy=policy.compat32).parsebytes(self.raw[i])
        return {k: str(make_header(decode_header(v))) for k, v in head.items()}


class Recorder:
    """aiosmtpd handler: records accepted messages and appends each Message-ID to ``ids_file``
    (what an MTA log would show); ``reply(n, envelope)`` may return an SMTP reply to refuse the
    ``n``-th message instead (``None`` accepts), or :data:`DROP` to accept it and cut the
    connection before answering. The ``hold_at``-th message is accepted and logged, and its 250
    held back until :attr:`release` is set (a sender stuck waiting for the reply)."""

    def __init__(self, ids_file: Path, reply: Callable[[int, object], str | None] | None = None,
                 hold_at: int | None = None) -> None:
        self.received = Received()
        self.hold_at = hold_at
        self.release = threading.Event()
        self.ids_file = ids_file
        self.ids = ids_file.open("a")
        self.reply = reply
        self.calls = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook name
        self.calls += 1
        answer = self.reply(self.calls, envelope) if self.reply else None
        if answer and answer != DROP:
            return answer
        content: bytes = envelope.original_content or envelope.content
        head = content.split(b"\r\n\r\n", 1)[0]
        mid = next((line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                    if line.lower().startswith(b"message-id:")), "")
        with self.lock:
            self.received.recipients.extend(envelope.rcpt_tos)
            self.received.raw.append(content)
            self.received.message_ids.append(mid)
            self.ids.write(mid + "\n")
            self.ids.flush()  # written before the 250, as an MTA logs what it accepted
        if answer == DROP:
            server.transport.abort()
        if self.calls == self.hold_at:  # accepted and logged, but the 250 waits until the test says
            while not self.release.is_set():
                await asyncio.sleep(0.005)
        return "250 2.0.0 OK queued"


class _CountingSMTP(SMTP):
    """Counts open sessions: once a killed client's session is closed, aiosmtpd has cancelled its
    handler, so the received list can no longer grow from it."""

    def connection_made(self, transport) -> None:
        self.event_handler.received.sessions_open += 1
        self.event_handler.received.sessions_total += 1
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        super().connection_lost(error)
        self.event_handler.received.sessions_open -= 1


class _Controller(Controller):
    def factory(self):
        return _CountingSMTP(self.handler, **self.SMTP_kwargs)


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def smtp_server(tmp_path: Path, reply: Callable[[int, object], str | None] | None = None,
                hold_at: int | None = None) -> Iterator[tuple[Recorder, int]]:
    """Run an aiosmtpd server on 127.0.0.1; yields ``(recorder, port)``."""
    recorder = Recorder(tmp_path / "received-ids.txt", reply, hold_at)
    port = free_port()
    controller = _Controller(recorder, hostname="127.0.0.1", port=port, loop=asyncio.new_event_loop())
    controller.start()
    try:
        yield recorder, port
    finally:
        recorder.release.set()
        controller.stop()
        controller.loop.close()
        recorder.ids.close()
