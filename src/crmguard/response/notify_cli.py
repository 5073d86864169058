"""``crmguard notify``: send the Art. 34 customer notices of an incident through the outbox, show
where they stand, settle unknown outcomes from delivery evidence and record bounces.

Never prints an address or a name: reports are counts (``preview`` shows one notice on request).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import orjson
import typer
from rich.console import Console
from rich.table import Table

from crmguard.output import progress_bar
from crmguard.workspace import resolve

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INCOMPLETE = 4
"""Some notices are not settled yet: retries pending, or outcomes unknown (see the report)."""

notify_app = typer.Typer(no_args_is_help=True,
                         help="Customer notices (GDPR Art. 34): send through the outbox, status, reconcile, bounces.")
err = Console(stderr=True)
out = Console()

IncidentArg = Annotated[str, typer.Argument(help="Incident id (folder <home>/incidents/ID).")]
HomeOpt = Annotated[
    Optional[str], typer.Option("--home", help="Workspace folder (default: $CRMGUARD_HOME or ./crmguard-data).")
]
StateOpt = Annotated[Optional[str], typer.Option("--state", help="State SQLite DB (default: <home>/state.db).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout.")]


def _print_report(report, title: str) -> None:
    from crmguard.response.outbox import STATUSES

    shown = [s for s in STATUSES if report.by_status[s] or s == "sent"]  # the others are all zero
    table = Table(title=title)
    table.add_column("language")
    for s in shown:
        table.add_column(s, justify="right")
    table.add_column("total", justify="right")
    for language, counts in sorted(report.by_language.items()):
        table.add_row(language, *(f"{counts.get(s, 0):,}" for s in shown), f"{sum(counts.values()):,}")
    table.add_row("[bold]all", *(f"[bold]{report.by_status[s]:,}" for s in shown), f"[bold]{report.total:,}")
    out.print(table)


def _unknown_advice(incident_id: str, n: int) -> None:
    if n:
        err.print(f"[yellow]{n:,} notices have an unknown outcome[/yellow] (a sender stopped during their SMTP "
                  f"transaction); they are not resent on their own. Settle them from the mail server's log or a "
                  f"mailbox export: crmguard notify reconcile {incident_id} --delivered FILE; or send them again, "
                  f"accepting possible duplicates: crmguard notify send {incident_id} --resend-unknown ...")


@notify_app.command("send")
def send(
    incident_id: IncidentArg,
    smtp: Annotated[str, typer.Option("--smtp", help="SMTP server HOST:PORT.")],
    sender: Annotated[Optional[str], typer.Option(
        "--from", help="From address, e.g. 'Maison A <notices@example.com>' (default: controller.contact_email).")] = None,
    starttls: Annotated[bool, typer.Option("--starttls", help="Upgrade the connection with STARTTLS.")] = False,
    user: Annotated[Optional[str], typer.Option("--user", envvar="CRMGUARD_SMTP_USER",
                                                help="SMTP login (or $CRMGUARD_SMTP_USER).")] = None,
    password: Annotated[Optional[str], typer.Option("--password", envvar="CRMGUARD_SMTP_PASSWORD", show_default=False,
                                                    help="SMTP password (better: $CRMGUARD_SMTP_PASSWORD).")] = None,
    rate: Annotated[float, typer.Option("--rate", help="Messages per second at most (0: no limit).")] = 10.0,
    max_attempts: Annotated[int, typer.Option("--max-attempts", help="Attempts per notice on temporary failures.")] = 5,
    retry_base: Annotated[float, typer.Option(
        "--retry-base", help="Seconds before the first retry; doubles per attempt, with jitter, up to an hour.")] = 30.0,
    resend_unknown: Annotated[bool, typer.Option(
        "--resend-unknown", help="Also send notices whose earlier outcome is unknown (may duplicate).")] = False,
    version: Annotated[str, typer.Option("--template-version", help="Notice template version.")] = "v1",
    timeout: Annotated[float, typer.Option("--timeout", help="SMTP socket timeout in seconds.")] = 30.0,
    home: HomeOpt = None,
    state: StateOpt = None,
    json_out: JsonOpt = False,
) -> int:
    """Enqueue the incident's affected customers (once) and send their notices: rate-limited, one
    connection, retries with backoff, never a second message to anyone. Exit 4 if some are unsettled."""
    from crmguard.response.mailer import SendOptions, SmtpSettings, parse_hostport, send_notices
    from crmguard.response.outbox import Outbox

    ws = resolve(home, None, state)
    host, port = parse_hostport(smtp)
    settings = SmtpSettings(host, port, starttls=starttls, user=user, password=password, timeout=timeout)
    options = SendOptions(sender=sender, rate=rate, max_attempts=max_attempts, retry_base=retry_base,
                          resend_unknown=resend_unknown, version=version)
    with progress_bar("notify", err, unit="notices") as progress:
        task = progress.add_task("notify", total=None)
        result = send_notices(ws.home, ws.state, incident_id, settings, options,
                              on_progress=lambda done, total: progress.update(task, completed=done, total=total))
    with Outbox(ws.state) as outbox:
        report = outbox.report(incident_id)
    if json_out:
        sys.stdout.write(orjson.dumps({"run": result.__dict__, "report": report.as_dict()}).decode() + "\n")
    else:
        _print_report(report, f"notices of {incident_id}")
        out.print(f"this run: {result.delivered:,} delivered, {result.temporary:,} temporary failures, "
                  f"{result.permanent:,} permanent failures, {result.unknown:,} unknown; "
                  f"{result.enqueued:,} newly enqueued, {result.without_address:,} customers without an e-mail address")
    if result.recovered_unknown and not resend_unknown:
        err.print(f"{result.recovered_unknown:,} notices were in flight when a previous run stopped.")
    _unknown_advice(incident_id, result.unknown_waiting)
    return EXIT_INCOMPLETE if result.outstanding else EXIT_OK


@notify_app.command("status")
def status(incident_id: IncidentArg, home: HomeOpt = None, state: StateOpt = None, json_out: JsonOpt = False) -> int:
    """Show the delivery report of an incident's notices: counts by status and language."""
    from crmguard.errors import NotificationError
    from crmguard.response.notices import incident_dir
    from crmguard.response.outbox import Outbox

    ws = resolve(home, None, state)
    with Outbox(ws.state) as outbox:
        report = outbox.report(incident_id)
    folder = incident_dir(ws.home, incident_id)
    if not report.total and not folder.is_dir():
        raise NotificationError(f"no incident {incident_id!r} here (no notices, no incident folder): "
                                "see `crmguard incident list`", file=str(folder))
    if json_out:
        sys.stdout.write(orjson.dumps(report.as_dict()).decode() + "\n")
    else:
        _print_report(report, f"notices of {incident_id}")
    _unknown_advice(incident_id, report.by_status["unknown"])
    return EXIT_OK


@notify_app.command("reconcile")
def reconcile(
    incident_id: IncidentArg,
    delivered: Annotated[str, typer.Option(
        "--delivered", help="MTA log, mailbox export or list holding the Message-IDs the server accepted.")],
    complete: Annotated[bool, typer.Option(
        "--complete", help="FILE is the server's complete record since the sender stopped: unknown notices "
                           "not in it were not delivered and are queued again.")] = False,
    home: HomeOpt = None,
    state: StateOpt = None,
    json_out: JsonOpt = False,
) -> int:
    """Settle notices whose outcome is unknown by their Message-ID: found in FILE means delivered."""
    from crmguard.response.mailer import journal
    from crmguard.response.outbox import read_delivered_ids, reconcile_notices

    ws = resolve(home, None, state)
    ids = read_delivered_ids(Path(delivered))
    result = reconcile_notices(ws.state, incident_id, ids, complete=complete)
    journal(ws.home, ws.state, incident_id, "notify reconcile", "done",
            {"evidence": str(delivered), "complete": complete, **result.__dict__})
    if json_out:
        sys.stdout.write(orjson.dumps(result.__dict__).decode() + "\n")
    else:
        out.print(f"{result.delivered:,} confirmed delivered, {result.requeued:,} queued again, "
                  f"{result.still_unknown:,} still unknown ({len(ids):,} Message-IDs in {delivered})")
    return EXIT_OK


@notify_app.command("bounces")
def bounces(
    incident_id: IncidentArg,
    path: Annotated[str, typer.Argument(help="Bounces: an mbox, one DSN message, or a list of Message-IDs/addresses.")],
    home: HomeOpt = None,
    state: StateOpt = None,
    json_out: JsonOpt = False,
) -> int:
    """Record bounced notices from delivery status notifications (DSN), a mailbox or a list."""
    from crmguard.response.mailer import journal
    from crmguard.response.outbox import Outbox, read_bounces

    ws = resolve(home, None, state)
    found, ignored = read_bounces(Path(path))
    with Outbox(ws.state) as outbox:
        result = outbox.record_bounces(incident_id, found)
    journal(ws.home, ws.state, incident_id, "notify bounces", "done",
            {"file": str(path), "recorded": result.recorded, "unmatched": result.unmatched, "ignored": ignored})
    if json_out:
        sys.stdout.write(orjson.dumps({**result.__dict__, "ignored": ignored}).decode() + "\n")
    else:
        out.print(f"{result.recorded:,} notices marked bounced, {result.unmatched:,} bounces match no notice of "
                  f"{incident_id}, {ignored:,} DSN entries ignored (delays, relays)")
    return EXIT_OK


@notify_app.command("preview")
def preview(
    incident_id: IncidentArg,
    customer_id: Annotated[str, typer.Argument(help="The customer whose notice to show (prints their name).")],
    html: Annotated[bool, typer.Option("--html", help="Print the HTML part instead of the text.")] = False,
    version: Annotated[str, typer.Option("--template-version", help="Notice template version.")] = "v1",
    home: HomeOpt = None,
) -> int:
    """Print the notice one customer would receive (subject, language and text or HTML)."""
    from crmguard.response.mailer import CustomerIndex
    from crmguard.response.notices import NoticeRenderer, choose_language, load_incident, require_incident_files

    ws = resolve(home)
    incident_path, customers_path = require_incident_files(ws.home, incident_id)
    customer = CustomerIndex(customers_path).get(customer_id)
    if customer is None:
        err.print(f"[red]no customer[/red] {customer_id!r} in {customers_path}")
        return EXIT_ERROR
    renderer = NoticeRenderer(version)
    language = choose_language(customer.language, customer.country, renderer.languages)
    incident = load_incident(incident_path)
    incident.require_contact_point(incident_path)
    notice = renderer.render(incident, customer, language)
    sys.stdout.write(f"Subject: {notice.subject}\nContent-Language: {language}\n\n{notice.html if html else notice.text}")
    return EXIT_OK
