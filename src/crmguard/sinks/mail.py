"""The e-mail sink: one message per alert (plain text + HTML, Jinja2 templates) over SMTP.

``Message-ID`` is derived from the idempotency key (``<alertid-v1@sender-domain>``), so a message
re-sent after a crash threads with, and can be deduplicated against, the first one.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from functools import cache

import jinja2

from crmguard.sinks.config import SinksConfig, SmtpSink
from crmguard.sinks.payload import SendFailed
from crmguard.smtp import open_smtp, quit_smtp


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("crmguard.sinks", "templates"),
                              autoescape=jinja2.select_autoescape(["html.j2"]), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)


def message(view: dict, sink: SmtpSink) -> EmailMessage:
    """Return the e-mail for an alert view: subject, from/to, Message-ID, text and HTML parts."""
    msg = EmailMessage()
    msg["Subject"] = f"[crmguard] {view['severity'].upper()}: {view['title']} — {view['actor'] or 'unknown identity'}"
    msg["From"] = sink.sender
    msg["To"] = ", ".join(sink.to)
    domain = sink.sender.rsplit("@", 1)[-1].strip(">") or "crmguard.invalid"
    msg["Message-ID"] = f"<{view['idempotency_key']}@{domain}>"
    msg["X-Crmguard-Idempotency-Key"] = view["idempotency_key"]
    msg.set_content(_env().get_template("alert.txt.j2").render(a=view))
    msg.add_alternative(_env().get_template("alert.html.j2").render(a=view), subtype="html")
    return msg


class SmtpSender:
    """Sends alert e-mails for one SMTP sink, over one connection per delivery pass."""

    def __init__(self, sink: SmtpSink, config: SinksConfig) -> None:
        self.sink = sink
        self.username = config.secret(sink.username_env)
        self.password = config.secret(sink.password_env)
        self.smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        return open_smtp(self.sink.host, self.sink.port, self.sink.timeout.total_seconds(), self.sink.starttls,
                         self.username, self.password)

    def send(self, view: dict) -> str:
        """Send the e-mail for ``view``; returns the recipients accepted, raises ``SendFailed``."""
        try:
            if self.smtp is None:
                self.smtp = self._connect()
            refused = self.smtp.send_message(message(view, self.sink))
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise SendFailed(f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}", sink=self.sink.name) from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise SendFailed(f"{type(exc).__name__}: {exc}", sink=self.sink.name) from None
        accepted = len(self.sink.to) - len(refused)
        return f"SMTP 250 accepted for {accepted} of {len(self.sink.to)} recipients"

    def close(self) -> None:
        """Say QUIT (or just drop a broken connection)."""
        quit_smtp(self.smtp)
        self.smtp = None


def _text(value: bytes | str) -> str:
    return (value.decode(errors="replace") if isinstance(value, bytes) else value)[:200]
