"""Opening and closing SMTP connections, shared by alert e-mails (``sinks.mail``) and customer
notices (``response.mailer``), which differ in what they send, not in how they connect."""

from __future__ import annotations

import smtplib
import ssl


def open_smtp(host: str, port: int, timeout: float, starttls: bool = False, user: str | None = None,
              password: str | None = None) -> smtplib.SMTP:
    """Connect to ``host:port``, upgrade with STARTTLS (certificate verified) when asked, and log in
    when ``user`` is given; returns the connection. smtplib's errors propagate, and a connection
    that fails half-way is closed first."""
    smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        smtp.ehlo_or_helo_if_needed()
        if starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if user:
            smtp.login(user, password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def quit_smtp(smtp: smtplib.SMTP | None) -> None:
    """Say QUIT on ``smtp`` (None: nothing open), or just drop a connection that is already broken."""
    if smtp is None:
        return
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
