"""The e-mail sink against a real SMTP server on localhost (aiosmtpd): text + HTML, Message-ID from
the idempotency key, a temporary refusal is retried, a server that is down delays delivery, STARTTLS
with certificate verification and login (the test certificate is made with the openssl CLI)."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller

from crmguard.sinks import deliver_due, enqueue
from crmguard.sinks.config import parse_config
from crmguard.sinks.mail import message
from crmguard.sinks.outbox import connect, journal_rows
from crmguard.sinks.payload import alert_view
from tests.sinks.conftest import T0, make_alert

pytestmark = pytest.mark.integration


class Mailbox:
    """aiosmtpd handler keeping what it accepts; ``reply`` overrides the answer to DATA."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.reply: str | None = None

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802 - aiosmtpd hook
        if self.reply:
            return self.reply
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content))  # type: ignore[attr-defined]
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    """A real SMTP server on 127.0.0.1 that can be stopped and started again on the same port."""

    def __init__(self) -> None:
        self.box = Mailbox()
        self.port = _free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.box, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def _config(port: int) -> object:
    return parse_config({"sinks": [{"name": "mail", "type": "smtp", "host": "127.0.0.1", "port": port,
                                    "from": "crmguard@shop.example", "to": ["soc@shop.example", "ciso@shop.example"],
                                    "retry": {"initial": "30s"}}]})


def test_alerts_arrive_by_mail_with_text_and_html(state, smtp) -> None:
    box = smtp.box
    db = state(make_alert(1, severity="critical"), make_alert(2))
    config = _config(smtp.port)
    enqueue(db, ["alert0001", "alert0002"], config)
    report = deliver_due(db, config, now=T0)
    assert (report.delivered, report.failed) == (2, 0)
    assert len(box.messages) == 2
    rcpts, raw = box.messages[0]
    assert rcpts == ["soc@shop.example", "ciso@shop.example"]
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "[crmguard] CRITICAL: Bulk export of customer records — ana@example.com"
    assert msg["Message-ID"] == "<alert0001-v1@shop.example>"
    assert msg["X-Crmguard-Idempotency-Key"] == "alert0001-v1"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Actor:             ana@example.com" in text and "81.2.69.142, 2001:db8::7" in text
    assert "crmguard alerts show alert0001" in text
    assert "<h2>Bulk export of customer records</h2>" in html
    assert b"003CUSTOMER" not in raw
    [entry] = [j for j in journal_rows(connect(db)) if j["alert_id"] == "alert0001"]
    assert entry["detail"] == "SMTP 250 accepted for 2 of 2 recipients"


def test_html_part_escapes_alert_text() -> None:
    view = alert_view({**make_alert(1, title="<script>x</script>").__dict__, "context": {}, "created_at": None})
    sink = _config(25).sinks[0]
    html = message(view, sink).get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_refusal_and_server_down_delay_but_never_drop(state, smtp) -> None:
    box = smtp.box
    db = state(make_alert(1))
    config = _config(smtp.port)
    enqueue(db, ["alert0001"], config)
    box.reply = "451 4.3.0 try again later"
    report = deliver_due(db, config, now=T0)
    assert report.failed == 1 and report.errors["mail"] == "SMTP 451: 4.3.0 try again later"
    smtp.stop()
    report = deliver_due(db, config, now=T0 + dt.timedelta(seconds=30))
    assert report.failed == 1 and report.pending == 1 and "ConnectionRefusedError" in report.errors["mail"]
    smtp.start()
    box.reply = None
    assert deliver_due(db, config, now=T0 + dt.timedelta(seconds=60)).failed == 0  # backoff: 60 s after the 2nd failure
    report = deliver_due(db, config, now=T0 + dt.timedelta(seconds=90))
    assert (report.delivered, report.pending) == (1, 0) and len(box.messages) == 1
    assert [j["outcome"] for j in journal_rows(connect(db))] == ["failed", "failed", "delivered"]


def test_starttls_and_login(state, tmp_path, monkeypatch) -> None:
    import ssl
    import subprocess

    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[tuple[str, str]] = []

    def authenticator(server, session, envelope, mechanism, data) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password == b"pw")

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=_free_port(), tls_context=server_tls,
                            require_starttls=True, authenticator=authenticator, auth_require_tls=True)
    controller.start()
    try:
        db = state(make_alert(1))
        config = parse_config({"sinks": [{"name": "mail", "type": "smtp", "host": "127.0.0.1", "port": controller.port,
                                          "starttls": True, "username_env": "U", "password_env": "P",
                                          "from": "crmguard@shop.example", "to": ["soc@shop.example"]}]},
                              environ={"U": "crmguard", "P": "pw"})
        enqueue(db, ["alert0001"], config)
        failed = deliver_due(db, config, now=T0)  # certificate not trusted: no password is sent
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts our test CA through the default context
        report = deliver_due(db, config, now=T0 + dt.timedelta(minutes=1))
    finally:
        controller.stop()
    assert failed.failed == 1 and "SSLCertVerificationError" in failed.errors["mail"]
    assert report.delivered == 1 and len(box.messages) == 1 and logins == [("crmguard", "pw")]
