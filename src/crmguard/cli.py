"""The ``crmguard`` command line: a thin Typer layer over the library.

``main(argv) -> int`` runs a command in-process and returns its exit code (see ``EXIT_*``), so
tests call it directly; ``run()`` is the console-script entry point.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from crmguard import __version__
from crmguard.cli_time import parse_when, parse_window
from crmguard.errors import CrmguardError
from crmguard.output import progress_bar
from crmguard.utc import iso_z
from crmguard.workspace import resolve

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INPUT_UNREADABLE = 3
"""Some input could not be read at all (the others were ingested)."""

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Detect, prevent and respond to CRM data theft.")
err = Console(stderr=True)
out = Console()

HomeOpt = Annotated[
    Optional[str], typer.Option("--home", help="Workspace folder (default: $CRMGUARD_HOME or ./crmguard-data).")
]
LakeOpt = Annotated[Optional[str], typer.Option("--lake", help="Lake folder (default: <home>/lake).")]


def _print_version(value: bool) -> None:
    """Print the version and stop, before any command is looked for (an eager option's callback)."""
    if value:
        out.print(f"crmguard {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit.")
    ] = False,
) -> None:
    """Detect, prevent and respond to CRM data theft."""


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Log files, folders or glob patterns (plain or .gz).")],
    lake: LakeOpt = None,
    home: HomeOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")] = False,
    encoding: Annotated[
        Optional[str], typer.Option("--encoding", help="Text encoding of the inputs (default: detect UTF-8/UTF-16).")
    ] = None,
) -> int:
    """Parse Salesforce (ELF CSV, RTEM JSON, SetupAuditTrail) and Okta System Log files into the lake.

    Prints read / stored / duplicate / quarantined per source; read = stored + duplicate + quarantined.
    Exit status 3 when some input could not be read at all.
    """
    from crmguard.ingest import ingest as run_ingest
    from crmguard.lake import Lake
    from crmguard.sources.inputs import expand

    ws = resolve(home, lake)
    files = expand(paths)
    with progress_bar("ingest", err) as progress:
        task = progress.add_task("ingest", total=len(files), name="")

        def on_file(result: object) -> None:
            progress.update(task, advance=1, name=Path(getattr(result, "path", "")).name)

        summary = run_ingest([str(f) for f in files], Lake(ws.lake), encoding=encoding, on_file=on_file)
    for f in summary.files:
        if f.error:
            err.print(f"[red]error[/red] {f.error}")
        elif f.counts.quarantined:
            err.print(f"[yellow]quarantined[/yellow] {f.counts.quarantined} of {f.counts.read} records from {f.path}")
    if json_out:
        import orjson

        sys.stdout.write(orjson.dumps(summary.as_dict()).decode() + "\n")
    else:
        table = Table(title=f"ingested into {ws.lake}")
        for col in ("source", "read", "stored", "duplicate", "quarantined"):
            table.add_column(col, justify="right" if col != "source" else "left")
        for source, c in sorted(summary.by_source.items()):
            table.add_row(source, *(f"{v:,}" for v in c.as_dict().values()))
        table.add_row("[bold]total", *(f"[bold]{v:,}" for v in summary.total.as_dict().values()))
        out.print(table)
        q = summary.total.quarantined
        if q:
            out.print(f"{q:,} quarantined records: crmguard query --lake {ws.lake} \"SELECT * FROM quarantine\"")
    return EXIT_INPUT_UNREADABLE if summary.failed else EXIT_OK


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="DuckDB SQL over the views `events` and `quarantine`.")],
    lake: LakeOpt = None,
    home: HomeOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> int:
    """Run DuckDB SQL over the lake's `events` and `quarantine` views and print the result."""
    import duckdb

    from crmguard.lake import Lake
    from crmguard.output import render

    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("must be table, csv or json", param_hint="--format")
    ws = resolve(home, lake)
    con = Lake(ws.lake).connect()
    try:
        result = con.sql(sql)
    except duckdb.Error as exc:
        err.print(f"[red]query error[/red] {str(exc).splitlines()[0]}")
        return EXIT_ERROR
    if result is None:
        return EXIT_OK
    render(result.to_arrow_table(), fmt, out)
    return EXIT_OK


@app.command()
def simulate(
    out: Annotated[str, typer.Option("--out", help="Folder to write the simulated export into.")],
    users: Annotated[int, typer.Option("--users", help="Staff users (integration users are added).")] = 200,
    days: Annotated[int, typer.Option("--days", help="Days to simulate.")] = 7,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same bytes.")] = 1,
    campaign: Annotated[
        Optional[list[str]],
        typer.Option("--campaign", help="Attack campaign to include (repeatable): vishing, stolen-token, insider, "
                     "credential-stuffing. Default: all four; 'none' for none."),
    ] = None,
    start: Annotated[Optional[str], typer.Option("--start", help="First day, YYYY-MM-DD (default 2025-03-03).")] = None,
    quiet_days: Annotated[int, typer.Option("--quiet-days", help="Days of normal traffic before any campaign "
                                            "starts (history for baselines).")] = 0,
) -> int:
    """Write realistic Salesforce + Okta logs of a retailer org with labelled attack campaigns."""
    from crmguard.simulate import simulate as run_simulate

    campaigns = None if not campaign else [c for c in campaign if c != "none"]
    try:
        first = dt.date.fromisoformat(start) if start else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--start") from exc
    with progress_bar("simulate", err, unit="days") as progress:
        task = progress.add_task("simulate", total=days)
        try:
            summary = run_simulate(Path(out), users=users, days=days, seed=seed, campaigns=campaigns, start=first,
                                   quiet_days=quiet_days, progress=lambda done, total: progress.update(task, completed=done))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    console = Console()
    console.print(f"simulated {summary.total_events:,} events ({summary.users:,} users, {summary.days} days, "
                  f"{summary.customers:,} customers) into {out}")
    for c in summary.campaigns:
        console.print(f"  campaign {c.name}: actors {', '.join(c.actors)}; {c.start} → {c.end}")
    console.print(f"ingest with: crmguard ingest {out}/salesforce {out}/okta")
    return EXIT_OK


@app.command()
def demo(
    home: HomeOpt = None,
    campaign: Annotated[str, typer.Option("--campaign", help="The attack campaign to simulate.")] = "vishing",
) -> int:
    """Simulate a small retailer org with one attack campaign, ingest it and tell what is in the lake."""
    from crmguard.demo import run_demo

    ws = resolve(home)
    run_demo(ws.home, out, campaign=campaign)
    return EXIT_OK


StateOpt = Annotated[Optional[str], typer.Option("--state", help="State SQLite DB (default: <home>/state.db).")]
RulesOpt = Annotated[Optional[list[str]], typer.Option("--rules", help="Folder (or file) of extra Sigma rules (repeatable).")]


@app.command()
def detect(
    lake: LakeOpt = None,
    state: StateOpt = None,
    home: HomeOpt = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Only events at or after this time (ISO 8601, UTC).")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Only events before this time (ISO 8601, UTC).")] = None,
    rules: RulesOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the alerts as a JSON array on stdout.")] = False,
) -> int:
    """Run every rule (built-in pack plus --rules folders) over the lake and store the alerts."""
    from crmguard.detect import detect as run_detect
    from crmguard.lake import Lake
    from crmguard.output import alerts_json

    ws = resolve(home, lake, state)
    with err.status("running the rules"):
        result = run_detect(Lake(ws.lake), ws.state, [Path(r) for r in rules or []], *parse_window(since, until),
                            intel_dir=ws.intel)
    if json_out:
        sys.stdout.write(alerts_json([a.__dict__ for a in result.alerts]) + "\n")
    else:
        _alert_table([a.__dict__ for a in result.alerts], f"{len(result.alerts)} alerts from {result.rules} rules")
        out.print(f"stored in {ws.state}: {result.stored.created} new, {result.stored.updated} updated, "
                  f"{result.stored.unchanged} already known")
    if result.skipped_note:
        err.print(result.skipped_note, markup=False, highlight=False)
    return EXIT_OK


alerts_app = typer.Typer(help="List and inspect stored alerts.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("list")
def alerts_list(
    state: StateOpt = None,
    home: HomeOpt = None,
    rule: Annotated[Optional[str], typer.Option("--rule", help="Only this rule id.")] = None,
    severity: Annotated[Optional[str], typer.Option("--severity", help="Only this severity.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON array on stdout.")] = False,
) -> int:
    """List stored alerts, newest first."""
    from crmguard.alerts.store import Store
    from crmguard.output import alerts_json

    ws = resolve(home, None, state)
    store = Store(ws.state)
    rows = store.list(rule_id=rule, severity=severity)
    store.close()
    if json_out:
        sys.stdout.write(alerts_json(rows) + "\n")
    else:
        _alert_table(rows, f"{len(rows)} alerts in {ws.state}")
    return EXIT_OK


@alerts_app.command("show")
def alerts_show(
    alert_id: Annotated[str, typer.Argument(help="Alert id (or a unique prefix).")],
    state: StateOpt = None,
    lake: LakeOpt = None,
    home: HomeOpt = None,
    unmask: Annotated[bool, typer.Option("--unmask", help="Show customer PII in the evidence (masked by default).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the alert and its evidence as JSON.")] = False,
) -> int:
    """Show one alert: explanation, counts, records involved and the evidence events."""
    from crmguard.alerts.evidence import evidence_events
    from crmguard.alerts.store import Store
    from crmguard.lake import Lake
    from crmguard.output import alerts_json

    ws = resolve(home, lake, state)
    store = Store(ws.state)
    alert = store.get(alert_id)
    store.close()
    if alert is None:
        err.print(f"[red]no alert[/red] with id {alert_id!r} (or the prefix is ambiguous) in {ws.state}")
        return EXIT_ERROR
    events = evidence_events(Lake(ws.lake), alert, unmask=unmask)
    if json_out:
        sys.stdout.write(alerts_json([{**alert, "evidence": events}]) + "\n")
        return EXIT_OK
    out.print(f"[bold]{alert['title']}[/bold]  ({alert['severity']}, rule {alert['rule_id']})")
    out.print(f"id {alert['id']}  actor {alert['actor']}  {alert['first_seen']} → {alert['last_seen']}  "
              f"{alert['event_count']:,} events")
    out.print(alert["explanation"])
    if alert["record_ids"]:
        out.print(f"records involved: {len(alert['record_ids']):,} (e.g. {', '.join(alert['record_ids'][:5])})")
    table = Table(title="evidence" + ("" if unmask else " (customer PII masked; --unmask to show)"))
    for col in ("time", "source", "event_type", "action", "src_ip", "object", "rows"):
        table.add_column(col, overflow="fold")
    # One line per event: the whole record is in `--json`.
    table.add_column("raw", overflow="ellipsis")
    for e in events:
        at = e.get("time")
        table.add_row(iso_z(at) if isinstance(at, dt.datetime) else str(at or ""),
                      *(str(e.get(c) if e.get(c) is not None else "") for c in ("source", "event_type", "action",
                                                                                "src_ip", "object", "rows")),
                      str(e.get("raw") or "")[:300])
    out.print(table)
    return EXIT_OK


SinksOpt = Annotated[Optional[str], typer.Option("--sinks", help="Sinks config (default: <home>/sinks.yml).")]


@alerts_app.command("deliver")
def alerts_deliver(
    sinks: SinksOpt = None,
    state: StateOpt = None,
    home: HomeOpt = None,
    loop: Annotated[bool, typer.Option("--loop", help="Keep delivering every --interval seconds until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between passes with --loop.", min=0.1)] = 30.0,
    since: Annotated[Optional[str], typer.Option("--since", help="Only enqueue alerts last seen at or after this time.")] = None,
) -> int:
    """Enqueue stored alerts for the sinks in sinks.yml and deliver what is due (webhook, Slack, e-mail, OCSF file)."""
    from crmguard.sinks.cli import deliver_command

    return deliver_command(resolve(home, None, state), sinks, out, err, loop, interval, parse_when(since, "--since"))


@alerts_app.command("outbox")
def alerts_outbox(
    state: StateOpt = None,
    home: HomeOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print counts, dead and failing rows as JSON.")] = False,
    retry_dead: Annotated[bool, typer.Option("--retry-dead", help="Requeue deliveries that gave up.")] = False,
) -> int:
    """Show the delivery outbox: counts per sink and status, dead deliveries, failing ones."""
    from crmguard.sinks.cli import outbox_command

    return outbox_command(resolve(home, None, state), out, json_out, retry_dead)


def _alert_table(rows: list[dict], title: str) -> None:
    table = Table(title=title)
    for col in ("id", "severity", "rule", "actor", "first_seen", "events"):
        table.add_column(col)
    for a in rows:
        table.add_row(a["id"][:12], a["severity"], a["title"], a["actor"] or "-", str(a["first_seen"])[:19],
                      f"{a['event_count']:,}")
    out.print(table)


rules_app = typer.Typer(help="List, show and test detection rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("list")
def rules_list(rules: RulesOpt = None) -> int:
    """List the built-in rules and those under --rules."""
    from crmguard.engine.rules import load_rules

    table = Table(title="rules")
    for col in ("id", "name", "level", "kind", "title"):
        table.add_column(col)
    loaded = load_rules([Path(r) for r in rules or []])
    for r in loaded:
        kind = f"correlation:{r.correlation.type}" if r.correlation else ("base" if r.hidden else "detection")
        table.add_row(r.id[:8], r.name, r.level, kind, r.title)
    out.print(table)
    out.print(f"{len(loaded)} rules")
    if loaded.skipped:
        err.print(loaded.skipped_note(), markup=False, highlight=False)
    return EXIT_OK


@rules_app.command("show")
def rules_show(
    rule_id: Annotated[str, typer.Argument(help="Rule id (or prefix) or name.")],
    rules: RulesOpt = None,
    sql: Annotated[bool, typer.Option("--sql", help="Print the SQL the rule compiles to.")] = False,
) -> int:
    """Show a rule's settings and, with --sql, the DuckDB SQL it compiles to."""
    from crmguard.engine.rules import load_rules
    from crmguard.engine.sqltext import rule_sql

    loaded = load_rules([Path(r) for r in rules or []])
    found = [r for r in loaded if r.name == rule_id or r.id.startswith(rule_id)]
    if len(found) != 1:
        err.print(f"[red]{'no' if not found else 'ambiguous'} rule[/red] {rule_id!r}")
        return EXIT_ERROR
    r = found[0]
    if sql:
        sys.stdout.write(rule_sql(r, loaded) + "\n")
        return EXIT_OK
    out.print(f"[bold]{r.title}[/bold] ({r.level})  id {r.id}  name {r.name}  file {r.path}")
    out.print(r.description)
    if r.correlation:
        out.print(f"correlation: {r.correlation.describe()}, grouped by {', '.join(r.correlation.group_by) or '-'}",
                  markup=False)
    out.print(f"tags: {', '.join(r.tags)}")
    out.print(f"false positives: {'; '.join(r.falsepositives)}")
    out.print(f"dedup: {', '.join(r.dedup_fields)} per {r.dedup_period}; threshold {r.threshold}; allowlist {r.allowlist or '-'}")
    return EXIT_OK


@rules_app.command("test")
def rules_test(rules: RulesOpt = None) -> int:
    """Check every rule against its own example events (must match / must not match)."""
    from crmguard.engine.ruletest import rules_test_command

    return rules_test_command([Path(r) for r in rules or []], out)


intel_app = typer.Typer(no_args_is_help=True, help="IP intel: anonymizer networks (TOR, VPN, hosting), ASN, country.")
app.add_typer(intel_app, name="intel")


@intel_app.command("update")
def intel_update(home: HomeOpt = None) -> int:
    """Download the TOR exit, VPN / datacenter and IP-to-ASN lists into <home>/intel."""
    from crmguard.intel.cli import update_command

    return update_command(resolve(home).home, out)


@intel_app.command("lookup")
def intel_lookup(
    ips: Annotated[list[str], typer.Argument(help="IP addresses (IPv4 or IPv6).")],
    home: HomeOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> int:
    """Show what the intel says about each address: anonymizer kind and list, ASN, AS organisation, country."""
    from crmguard.intel.cli import lookup_command

    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("must be table, csv or json", param_hint="--format")
    return lookup_command(ips, resolve(home).home, out, fmt)


from crmguard.response.cli import incident_app  # noqa: E402  (sub-app in its own module)

app.add_typer(incident_app, name="incident")

from crmguard.response.notify_cli import notify_app  # noqa: E402  (sub-app in its own module)

app.add_typer(notify_app, name="notify")

from crmguard.anomaly.cli import baseline_app  # noqa: E402  (sub-app in its own module)

app.add_typer(baseline_app, name="baseline")

from crmguard.realtime.cli import watch_command  # noqa: E402  (command in its own module)

app.command("watch", short_help="Detect in real time: ingest dropped files and POSTed events, run the rules "
            "incrementally, store and deliver alerts; crash-safe.")(watch_command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="crmguard", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:
        # Usage errors (a missing argument, an unknown command or option, a bad value): Typer raises
        # them as its own copy of Click's exceptions, which print the usage and the error.
        exc.show(file=sys.stderr)  # type: ignore[attr-defined]
        return exc.exit_code
    except typer.Abort:
        err.print("aborted")
        return EXIT_ERROR
    except CrmguardError as exc:
        err.print(f"[red]error[/red] {exc}")
        return EXIT_ERROR
    return rv if isinstance(rv, int) else EXIT_OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
