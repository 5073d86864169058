"""``crmguard alerts deliver`` and ``crmguard alerts outbox``: the CLI side of delivery.

The Typer commands in ``crmguard.cli`` parse options and call these, which return exit codes.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from crmguard.output import progress_bar
from crmguard.sinks import outbox
from crmguard.sinks.config import load_config
from crmguard.sinks.deliver import DeliveryReport, deliver_loop, deliver_stored
from crmguard.workspace import Workspace

EXIT_OK, EXIT_DEAD = 0, 1


def sinks_path(ws: Workspace, sinks: str | None) -> Path:
    """The sinks file: ``--sinks`` when given, else ``<home>/sinks.yml``."""
    return Path(sinks) if sinks else ws.home / "sinks.yml"


def _print_report(out: Console, err: Console, added: int, report: DeliveryReport) -> None:
    out.print(f"enqueued {added}; {report.summary()}")
    for sink, error in sorted(report.errors.items()):
        err.print(f"[yellow]sink {sink} failing[/yellow] (will retry): {error}")
    if report.dead_total:
        err.print(f"[bold red]{report.dead_total} alert deliveries are dead[/bold red] (gave up after max_attempts): "
                  "see crmguard alerts outbox; requeue with crmguard alerts outbox --retry-dead")


def deliver_command(ws: Workspace, sinks: str | None, out: Console, err: Console, loop: bool = False,
                    interval_s: float = 30.0, since: dt.datetime | None = None) -> int:
    """Enqueue stored alerts and deliver what is due, once (with a progress bar) or every
    ``interval_s`` seconds until interrupted. Returns 0, or 1 when the outbox holds dead rows.
    Raises ``ConfigError`` for a missing or invalid sinks file."""
    config = load_config(sinks_path(ws, sinks))
    if not config.sinks:
        err.print(f"[yellow]no sinks[/yellow] in {sinks_path(ws, sinks)}: nothing to deliver to")
        return EXIT_OK
    if loop:
        def on_pass(added: int, report: DeliveryReport) -> None:
            if added or report.delivered or report.suppressed or report.failed or report.dead:
                out.print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S}Z enqueued {added}; {report.summary()}")

        try:
            deliver_loop(ws.state, config, interval_s, stop=lambda: False, on_pass=on_pass, since=since)
        except KeyboardInterrupt:
            err.print("stopped")
        return EXIT_OK
    with progress_bar("deliver", err, unit="alerts") as progress:
        task = progress.add_task("deliver", total=None)
        added, report = deliver_stored(ws.state, config, since,
                                       on_row=lambda done, total: progress.update(task, completed=done, total=total))
    _print_report(out, err, added, report)
    return EXIT_DEAD if report.dead_total else EXIT_OK


def outbox_command(ws: Workspace, out: Console, json_out: bool = False, retry_dead: bool = False) -> int:
    """Print outbox counts per sink and status, the dead rows and the pending ones that have failed;
    with ``retry_dead``, requeue dead rows first. Returns 0, or 1 when dead rows remain."""
    if retry_dead:
        out.print(f"requeued {outbox.retry_dead(ws.state)} dead deliveries")
    db = outbox.connect(ws.state)
    try:
        counts = outbox.status_counts(db)
        dead = outbox.rows(db, "dead")
        failing = [r for r in outbox.rows(db, "pending", limit=1000) if r["attempts"]][:100]
    finally:
        db.close()
    if json_out:
        sys.stdout.write(orjson.dumps({"counts": counts, "dead": dead, "failing": failing}).decode() + "\n")
        return EXIT_DEAD if dead else EXIT_OK
    table = Table(title=f"outbox in {ws.state}")
    for col in ("sink", *outbox.STATUSES):
        table.add_column(col, justify="left" if col == "sink" else "right")
    for sink, by_status in counts.items():
        table.add_row(sink, *(f"{by_status[s]:,}" for s in outbox.STATUSES))
    out.print(table)
    for title, listed, style in (("dead (gave up; --retry-dead requeues)", dead, "bold red"),
                                 ("pending after failures", failing, "yellow")):
        if not listed:
            continue
        rows = Table(title=f"[{style}]{len(listed)} {title}")
        for col in ("alert", "sink", "attempts", "next attempt", "last error", "title"):
            rows.add_column(col, overflow="fold")
        for r in listed:
            rows.add_row(r["alert_id"][:12], r["sink"], str(r["attempts"]),
                         "-" if r["status"] == "dead" else r["next_attempt_at"][:19], r["last_error"] or "",
                         r["title"] or "")
        out.print(rows)
    return EXIT_DEAD if dead else EXIT_OK
