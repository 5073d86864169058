"""``crmguard incident ...``: open, scope, report on and journal personal-data breach incidents.

Every command takes ``--by NAME`` (default ``$USER``) for the journal, and the usual
``--home/--state/--lake`` workspace options. Incident files go to ``<home>/incidents/<ID>/``.
Customer PII is never printed: tables show counts; the affected-customer list is written to files.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Optional

import orjson
import pyarrow as pa
import typer
from rich.console import Console
from rich.table import Table

from crmguard.cli_time import parse_when, parse_window
from crmguard.errors import ResponseError
from crmguard.response.incidents import (
    PLACEHOLDER,
    Controller,
    Incident,
    IncidentStore,
    Observables,
    breach_window,
    default_actor,
)
from crmguard.workspace import Workspace, resolve

incident_app = typer.Typer(no_args_is_help=True, help="Incidents: open, scope, report to the regulator, journal.")
task_app = typer.Typer(no_args_is_help=True, help="Tasks on an incident.")
incident_app.add_typer(task_app, name="task")
out = Console()
err = Console(stderr=True)

HomeOpt = Annotated[Optional[str], typer.Option("--home", help="Workspace folder (default: $CRMGUARD_HOME or ./crmguard-data).")]
LakeOpt = Annotated[Optional[str], typer.Option("--lake", help="Lake folder (default: <home>/lake).")]
StateOpt = Annotated[Optional[str], typer.Option("--state", help="State SQLite DB (default: <home>/state.db).")]
ByOpt = Annotated[Optional[str], typer.Option("--by", help="Who acts, for the journal (default: $USER).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
IdArg = Annotated[str, typer.Argument(help="Incident id (e.g. INC-0001) or a unique prefix.")]


def _store(ws: Workspace) -> IncidentStore:
    return IncidentStore(ws.state, ws.home / "incidents")


def _json(doc: object) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def _snapshot_controller(path: Optional[str]) -> dict[str, str]:
    """Controller defaults from an org snapshot (``org/snapshot.json``): the organisation's name."""
    if not path:
        return {}
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ResponseError(f"cannot read the org snapshot: {exc}", file=path) from exc
    name = (doc.get("organization") or {}).get("Name")
    return {"name": name} if name else {}


@incident_app.command("open")
def open_incident(
    from_alert: Annotated[Optional[str], typer.Option("--from-alert", help="Alert id (or prefix) to open from.")] = None,
    actor: Annotated[Optional[list[str]], typer.Option("--actor", help="Staff username or user id (repeatable).")] = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Window start (ISO 8601; default: the alert's first event).")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Window end (ISO 8601; default: the alert's last event).")] = None,
    ip: Annotated[Optional[list[str]], typer.Option("--ip", help="Attacker source IP (repeatable).")] = None,
    app_: Annotated[Optional[list[str]], typer.Option("--app", help="Connected app / client (repeatable).")] = None,
    token: Annotated[Optional[list[str]], typer.Option("--token", help="OAuth token id (repeatable).")] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="Incident title (default: the alert's).")] = None,
    controller_name: Annotated[Optional[str], typer.Option("--controller-name", help="Data controller's legal name.")] = None,
    contact_email: Annotated[Optional[str], typer.Option("--contact-email", help="Contact point e-mail.")] = None,
    dpo_email: Annotated[Optional[str], typer.Option("--dpo-email", help="Data protection officer e-mail.")] = None,
    phone: Annotated[Optional[str], typer.Option("--phone", help="Contact point phone.")] = None,
    snapshot: Annotated[Optional[str], typer.Option("--snapshot", help="Org snapshot JSON for controller defaults.")] = None,
    by: ByOpt = None, home: HomeOpt = None, state: StateOpt = None, lake: LakeOpt = None, json_out: JsonOpt = False,
) -> int:
    """Open an incident from an alert (--from-alert) or from actors and a window (--actor --since --until)."""
    from crmguard.alerts.store import Store
    from crmguard.lake import Lake

    ws = resolve(home, lake, state)
    who = by or default_actor()
    users, ips, apps = list(actor or []), list(ip or []), list(app_ or [])
    (start, end), detected, alert_id = parse_window(since, until), None, None
    timeline: list[tuple[dt.datetime, str, str]] = []
    if from_alert:
        alerts = Store(ws.state)
        alert = alerts.get(from_alert)
        alerts.close()
        if alert is None:
            err.print(f"[red]no alert[/red] with id {from_alert!r} (or the prefix is ambiguous) in {ws.state}")
            return 1
        alert_id = alert["id"]
        ctx = alert.get("context") or {}
        users += [alert["actor"]] if alert.get("actor") else []
        ips += [str(i) for i in ctx.get("src_ips") or []]
        apps += [str(a) for a in ctx.get("apps") or []]
        start = start or parse_when(alert["first_seen"], "first_seen")
        end = end or parse_when(alert["last_seen"], "last_seen")
        detected = parse_when(alert["created_at"], "created_at")
        title = title or alert["title"]
        timeline.append((parse_when(alert["first_seen"], "first_seen"), f"first event of alert {alert_id[:12]}: {alert['title']}",  # type: ignore[arg-type]
                         "alert"))
    if not users:
        raise typer.BadParameter("give --from-alert or at least one --actor")
    users = list(dict.fromkeys(users))
    breach_start, breach_end = breach_window(Lake(ws.lake), users, start, end)
    timeline += _related_alerts(ws, users, breach_start, breach_end, alert_id)
    controller = Controller(**{**_snapshot_controller(snapshot), **{k: v for k, v in (
        ("name", controller_name), ("contact_email", contact_email), ("dpo_email", dpo_email), ("phone", phone)) if v}})
    with _store(ws) as store:
        inc = store.open(title=title or f"Suspected customer-data breach by {', '.join(users)}", who=who,
                         observables=Observables(users=users, ips=list(dict.fromkeys(ips)), apps=list(dict.fromkeys(apps)),
                                                 tokens=list(token or [])),
                         breach_start=breach_start, breach_end=breach_end, detected_at=detected, controller=controller,
                         source_alert=alert_id, timeline=timeline)
    if json_out:
        _json(inc.model_dump())
        return 0
    _print_incident(inc, ws)
    if breach_start is None:
        err.print("[yellow]no events of these actors in the window[/yellow]: the breach window is unknown; "
                  "scope needs one (open again with --since/--until)")
    return 0


def _related_alerts(ws: Workspace, users: list[str], start: dt.datetime | None, end: dt.datetime | None,
                    skip: str | None) -> list[tuple[dt.datetime, str, str]]:
    """Timeline entries for the other stored alerts about these users inside the breach window."""
    from crmguard.alerts.store import Store

    if start is None or end is None or not ws.state.is_file():
        return []
    store = Store(ws.state)
    try:
        alerts = store.list()
    finally:
        store.close()
    entries = []
    for a in alerts:
        first = parse_when(a["first_seen"], "first_seen")
        if a["id"] != skip and a["actor"] in users and first is not None and start <= first <= end:
            entries.append((first, f"alert {a['id'][:12]} ({a['severity']}): {a['title']}", "alert"))
    return entries


def _print_incident(inc: Incident, ws: Workspace) -> None:
    out.print(f"[bold]{inc.id}[/bold] {inc.title} ({inc.status})")
    table = Table(title="clocks (UTC)")
    for col in ("clock", "time"):
        table.add_column(col)
    for name in ("breach_start", "breach_end", "detected_at", "aware_at", "deadline"):
        table.add_row(name, getattr(inc, name) or "-")
    out.print(table)
    obs = inc.observables
    out.print(f"users: {', '.join(obs.users) or '-'}\nips: {', '.join(obs.ips) or '-'}\napps: {', '.join(obs.apps) or '-'}\n"
              f"tokens: {', '.join(obs.tokens) or '-'}")
    unset = inc.controller.unset()
    if unset:
        out.print(f"[yellow]controller fields not set[/yellow]: {', '.join(unset)} "
                  f"(crmguard incident controller {inc.id} --name ... --contact-email ... --dpo-email ... --phone ...)")
    if not inc.aware_at:
        out.print(f"72 h clock not started: crmguard incident aware {inc.id} --by NAME when a breach is confirmed")
    out.print(f"files: {ws.home / 'incidents' / inc.id}")


@incident_app.command("list")
def list_incidents(home: HomeOpt = None, state: StateOpt = None, json_out: JsonOpt = False) -> int:
    """List incidents, newest first."""
    ws = resolve(home, None, state)
    with _store(ws) as store:
        rows = store.summaries()
    if json_out:
        _json(rows)
        return 0
    table = Table(title=f"{len(rows)} incidents in {ws.state}")
    for col in ("id", "status", "title", "breach_start", "aware_at", "deadline"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["status"], r["title"], r["breach_start"] or "-", r["aware_at"] or "-", r["deadline"] or "-")
    out.print(table)
    return 0


@incident_app.command("show")
def show(incident_id: IdArg, home: HomeOpt = None, state: StateOpt = None, json_out: JsonOpt = False) -> int:
    """Show an incident: clocks, observables, tasks, timeline and journal."""
    ws = resolve(home, None, state)
    with _store(ws) as store:
        inc = store.require(incident_id)
    if json_out:
        _json(inc.model_dump())
        return 0
    _print_incident(inc, ws)
    for title, rows, cols in (
        ("tasks", [t.model_dump() for t in inc.tasks], ("number", "status", "title", "owner")),
        ("timeline", [t.model_dump() for t in inc.timeline], ("at", "what", "origin")),
        ("journal", [j.model_dump() for j in inc.journal], ("at", "who", "action", "result")),
    ):
        if rows:
            table = Table(title=title)
            for c in cols:
                table.add_column(c, overflow="fold")
            for r in rows:
                table.add_row(*(str(r[c]) if r[c] is not None else "-" for c in cols))
            out.print(table)
    return 0


@incident_app.command("aware")
def aware(
    incident_id: IdArg,
    by: Annotated[str, typer.Option("--by", help="Who decided that a personal-data breach happened.")],
    at: Annotated[Optional[str], typer.Option("--at", help="When the decision was taken (ISO 8601; default now).")] = None,
    home: HomeOpt = None, state: StateOpt = None,
) -> int:
    """Record the decision that a personal-data breach happened: starts the GDPR 72 h clock."""
    ws = resolve(home, None, state)
    with _store(ws) as store:
        inc = store.aware(incident_id, by, parse_when(at, "--at"))
    out.print(f"{inc.id}: aware at {inc.aware_at} ({inc.aware_by}); regulator deadline {inc.deadline}")
    return 0


@incident_app.command("observe")
def observe(
    incident_id: IdArg,
    user: Annotated[Optional[list[str]], typer.Option("--user", help="Staff username or id (repeatable).")] = None,
    ip: Annotated[Optional[list[str]], typer.Option("--ip", help="Source IP (repeatable).")] = None,
    app_: Annotated[Optional[list[str]], typer.Option("--app", help="App / client (repeatable).")] = None,
    token: Annotated[Optional[list[str]], typer.Option("--token", help="OAuth token id (repeatable).")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove these observables instead of adding them.")] = False,
    by: ByOpt = None, home: HomeOpt = None, state: StateOpt = None,
) -> int:
    """Add (or with --remove, remove) observables; scoping uses the users and IPs."""
    ws = resolve(home, None, state)
    given = Observables(users=list(user or []), ips=list(ip or []), apps=list(app_ or []), tokens=list(token or []))
    with _store(ws) as store:
        inc = store.observe(incident_id, by or default_actor(), Observables() if remove else given,
                            given if remove else Observables())
    _print_incident(inc, ws)
    return 0


@incident_app.command("controller")
def controller(
    incident_id: IdArg,
    name: Annotated[Optional[str], typer.Option("--name", help="Data controller's legal name.")] = None,
    contact_email: Annotated[Optional[str], typer.Option("--contact-email", help="Contact point e-mail.")] = None,
    dpo_email: Annotated[Optional[str], typer.Option("--dpo-email", help="Data protection officer e-mail.")] = None,
    phone: Annotated[Optional[str], typer.Option("--phone", help="Contact point phone.")] = None,
    by: ByOpt = None, home: HomeOpt = None, state: StateOpt = None,
) -> int:
    """Set the controller's contact point (name, contact e-mail, DPO e-mail, phone)."""
    ws = resolve(home, None, state)
    with _store(ws) as store:
        inc = store.set_controller(incident_id, by or default_actor(), name=name, contact_email=contact_email,
                                   dpo_email=dpo_email, phone=phone)
    unset = inc.controller.unset()
    out.print(f"{inc.id}: controller {inc.controller.name}" + (f"; still {PLACEHOLDER}: {', '.join(unset)}" if unset else ""))
    return 0


@task_app.command("add")
def task_add(
    incident_id: IdArg,
    title: Annotated[str, typer.Argument(help="What has to be done.")],
    owner: Annotated[Optional[str], typer.Option("--owner", help="Who does it.")] = None,
    by: ByOpt = None, home: HomeOpt = None, state: StateOpt = None,
) -> int:
    """Add a task to an incident."""
    ws = resolve(home, None, state)
    with _store(ws) as store:
        task = store.add_task(incident_id, by or default_actor(), title, owner)
    out.print(f"task {task.number} added: {task.title}")
    return 0


@task_app.command("done")
def task_done(
    incident_id: IdArg,
    number: Annotated[int, typer.Argument(help="Task number.")],
    reopen: Annotated[bool, typer.Option("--reopen", help="Mark it open again instead.")] = False,
    by: ByOpt = None, home: HomeOpt = None, state: StateOpt = None,
) -> int:
    """Mark a task done (or --reopen it)."""
    ws = resolve(home, None, state)
    with _store(ws) as store:
        task = store.set_task(incident_id, by or default_actor(), number, "open" if reopen else "done")
    out.print(f"task {task.number} {task.status}: {task.title}")
    return 0


@incident_app.command("note")
def note(
    incident_id: IdArg,
    text: Annotated[str, typer.Argument(help="What happened.")],
    at: Annotated[Optional[str], typer.Option("--at", help="When it happened (ISO 8601; default now).")] = None,
    by: ByOpt = None, home: HomeOpt = None, state: StateOpt = None,
) -> int:
    """Add an entry to the incident's timeline."""
    ws = resolve(home, None, state)
    with _store(ws) as store:
        store.note(incident_id, by or default_actor(), text, parse_when(at, "--at"))
    out.print("timeline entry added")
    return 0


@incident_app.command("export")
def export(
    incident_id: IdArg,
    csv: Annotated[bool, typer.Option("--csv", help="Also write observables, tasks, timeline and journal as CSV.")] = False,
    home: HomeOpt = None, state: StateOpt = None,
) -> int:
    """Write incident.json (and with --csv the case tables) into <home>/incidents/<ID>/."""
    ws = resolve(home, None, state)
    with _store(ws) as store:
        paths = store.export(incident_id, csv_tables=csv)
    for p in paths:
        out.print(str(p))
    return 0


@incident_app.command("close")
def close(
    incident_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why the incident is closed.")],
    by: ByOpt = None, home: HomeOpt = None, state: StateOpt = None,
) -> int:
    """Close an incident."""
    ws = resolve(home, None, state)
    with _store(ws) as store:
        inc = store.close_incident(incident_id, by or default_actor(), reason)
    out.print(f"{inc.id} closed")
    return 0


@incident_app.command("scope")
def scope(
    incident_id: IdArg,
    customers: Annotated[str, typer.Option("--customers", help="CRM customer export CSV (crm/customers.csv).")],
    by: ByOpt = None, home: HomeOpt = None, state: StateOpt = None, lake: LakeOpt = None, json_out: JsonOpt = False,
) -> int:
    """Find which customer records the incident's actors received, which fields, per brand, country and spend tier."""
    from crmguard.lake import Lake
    from crmguard.response.scope import scope_incident

    ws = resolve(home, lake, state)
    who = by or default_actor()
    with _store(ws) as store:
        inc = store.require(incident_id)
        try:
            with err.status("scoping"):
                result = scope_incident(inc, Lake(ws.lake), Path(customers), store.folder(inc.id), store.now())
        except ResponseError as exc:
            store.journal(inc.id, "scope", who, "failed", {"error": str(exc)})
            raise
        s = result.summary
        c = s["customers"]
        store.timeline(inc.id, store.now(), f"scoped: {c['exact']} customers exact, bracket {c['lower']}-{c['upper']}",
                       "journal")
        store.journal(inc.id, "scope", who, "ok", {"customers": c, "records": s["records"],
                                                   "customers_export": s["customers_export"],
                                                   "files": [str(result.parquet), str(result.csv), str(result.summary_path)]})
    if json_out:
        _json(s)
        return 0
    _print_scope(s)
    out.print(f"affected customers: {result.parquet} and {result.csv} (contain PII); summary: {result.summary_path}")
    return 0


def _print_scope(s: dict) -> None:
    c = s["customers"]
    line = f"customers affected: {c['exact']:,} exact"
    if c["is_estimate"]:
        line += f"; estimate {c['lower']:,}–{c['upper']:,} of {c['export_customers']:,} (candidates listed with exact=false)"
    out.print(f"[bold]{line}[/bold]")
    for reason in c["estimate_reasons"] if c["is_estimate"] else []:
        out.print(f"  estimate because: {reason}")
    tables = s["tables"]
    t = Table(title="records by object")
    for col in ("object", "exact ids", "lower", "upper", "why an estimate"):
        t.add_column(col)
    for o in tables["objects"]:
        t.add_row(o["object"], f"{o['records_exact']:,}", f"{o['records_lower']:,}", f"{o['records_upper']:,}",
                  "; ".join(o["estimate_reasons"]) or "-")
    out.print(t)
    for dim in ("brand", "country", "spend_tier"):
        t = Table(title=f"customers by {dim}")
        for col in (dim, "exact", "candidates"):
            t.add_column(col)
        for r in tables[dim]:
            t.add_row(str(r[dim]), f"{r['exact']:,}", f"{r['candidates']:,}")
        out.print(t)
    t = Table(title="fields exposed")
    for col in ("object", "field", "category", "records (exact ids)", "also estimated", "fields assumed"):
        t.add_column(col)
    for f in tables["fields"]:
        t.add_row(f["object"], f["field"], f["category"], f"{f['records_exact']:,}", "yes" if f["via_estimate"] else "",
                  "yes" if f["field_estimated"] else "")
    out.print(t)


@incident_app.command("report")
def report(
    incident_id: IdArg,
    phase: Annotated[str, typer.Option("--phase", help="initial or complementary (GDPR Art. 33(4)).")] = "initial",
    fmt: Annotated[str, typer.Option("--format", help="md or html (print-ready).")] = "md",
    out_file: Annotated[Optional[str], typer.Option("--out", help="Write here (default: <home>/incidents/<ID>/report-<phase>.<fmt>).")] = None,
    late_reason: Annotated[Optional[str], typer.Option("--late-reason", help="Why the initial report is after the 72 h deadline.")] = None,
    proposed: Annotated[Optional[list[str]], typer.Option("--proposed", help="A further proposed measure (repeatable).")] = None,
    nature: Annotated[Optional[str], typer.Option("--nature", help="Describe the breach in your words (default: from the incident).")] = None,
    draft: Annotated[bool, typer.Option("--draft", help="Render only: no register entry.")] = False,
    by: ByOpt = None, home: HomeOpt = None, state: StateOpt = None,
) -> int:
    """Render the GDPR Art. 33 regulator report and file it in the breach register (unless --draft)."""
    from crmguard.response.register import BreachRegister
    from crmguard.response.report import file_report

    if phase not in ("initial", "complementary"):
        raise typer.BadParameter("must be initial or complementary", param_hint="--phase")
    if fmt not in ("md", "html"):
        raise typer.BadParameter("must be md or html", param_hint="--format")
    ws = resolve(home, None, state)
    store, register = _store(ws), BreachRegister(ws.state)
    try:
        path, ctx, entry = file_report(store, register, incident_id, phase, fmt, by or default_actor(),  # type: ignore[arg-type]
                                       Path(out_file) if out_file else None, late_reason, list(proposed or []), nature, draft)
    finally:
        store.close()
        register.close()
    out.print(f"{'draft' if draft else phase} report: {path}" + (f" (register #{entry.seq})" if entry else ""))
    if ctx["late"]:
        out.print(f"[yellow]late[/yellow]: filed after the deadline {ctx['clocks']['deadline']}")
    if ctx["controller_unset"]:
        out.print(f"[yellow]contact point incomplete[/yellow]: {', '.join(ctx['controller_unset'])} still {PLACEHOLDER} "
                  f"(crmguard incident controller {ctx['incident']['id']} ...)")
    if not ctx["scope"]:
        out.print(f"[yellow]not scoped yet[/yellow]: numbers are 'to be determined' (crmguard incident scope "
                  f"{ctx['incident']['id']} --customers FILE)")
    return 0


@incident_app.command("decide")
def decide_cmd(
    incident_id: IdArg,
    notify: Annotated[bool, typer.Option("--notify/--no-notify", help="The decision: notify, or not.")],
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why (required for --no-notify).")] = None,
    audience: Annotated[str, typer.Option("--audience", help="authority (Art. 33) or subjects (Art. 34).")] = "authority",
    by: ByOpt = None, home: HomeOpt = None, state: StateOpt = None,
) -> int:
    """Record a decision to notify or not to notify, with its reason, in the breach register."""
    from crmguard.response.register import BreachRegister
    from crmguard.response.report import decide

    if audience not in ("authority", "subjects"):
        raise typer.BadParameter("must be authority or subjects", param_hint="--audience")
    ws = resolve(home, None, state)
    store, register = _store(ws), BreachRegister(ws.state)
    try:
        entry = decide(store, register, incident_id, by or default_actor(), notify, reason, audience)  # type: ignore[arg-type]
    finally:
        store.close()
        register.close()
    out.print(f"register #{entry.seq}: {entry.decision} ({entry.incident_id})")
    return 0


@incident_app.command("register")
def register_cmd(
    incident_id: Annotated[Optional[str], typer.Option("--incident", help="Only this incident's entries.")] = None,
    home: HomeOpt = None, state: StateOpt = None, json_out: JsonOpt = False,
) -> int:
    """List the Art. 33(5) breach register (append-only): reports filed and notification decisions."""
    from crmguard.response.register import BreachRegister

    ws = resolve(home, None, state)
    register = BreachRegister(ws.state)
    try:
        entries = register.entries(incident_id)
    finally:
        register.close()
    if json_out:
        _json([e.model_dump() for e in entries])
        return 0
    table = Table(title=f"breach register: {len(entries)} entries ({ws.state})")
    for col in ("#", "recorded", "incident", "entry", "who", "reason / late", "document"):
        table.add_column(col, overflow="fold")
    for e in entries:
        what = f"report {e.phase}" if e.kind == "report" else e.decision or "decision"
        why = e.reason or (f"late: {e.late_reason}" if e.late else "")
        table.add_row(str(e.seq), e.recorded_at, e.incident_id, what, e.who, why or "-",
                      f"{Path(e.document).name} {e.document_sha256[:12]}" if e.document and e.document_sha256 else "-")
    out.print(table)
    return 0


@incident_app.command("contain")
def contain(
    incident_id: IdArg,
    execute: Annotated[bool, typer.Option("--execute", help="Send the calls (default: dry run, nothing is sent).")] = False,
    instance_url: Annotated[Optional[str], typer.Option("--instance-url", envvar="SALESFORCE_INSTANCE_URL",
                                                        help="Org URL, e.g. https://acme.my.salesforce.com ($SALESFORCE_INSTANCE_URL).")] = None,
    token_env: Annotated[str, typer.Option("--token-env", help="Environment variable holding an admin access token.")] = "SALESFORCE_ACCESS_TOKEN",
    token_file: Annotated[Optional[str], typer.Option("--token-file", help="File holding the access token (instead of --token-env).")] = None,
    api_version: Annotated[str, typer.Option("--api-version", help="Salesforce REST API version.")] = "62.0",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per HTTP call.")] = 30.0,
    records: Annotated[Optional[list[str]], typer.Option("--records", help="Exported record text to scan for secrets (CSV/JSON with an Id column; repeatable).")] = None,
    by: ByOpt = None, home: HomeOpt = None, state: StateOpt = None, json_out: JsonOpt = False,
) -> int:
    """Containment plan (revoke tokens, end sessions, freeze users, block the app, rotate secrets); --execute runs it."""
    from crmguard.response.containment import build_plan, plan_table, results_table
    from crmguard.response.containment import execute as run_plan
    from crmguard.response.salesforce_api import SalesforceClient, read_token
    from crmguard.response.secrets import findings_list, scan_files

    ws = resolve(home, None, state)
    who = by or default_actor()
    with _store(ws) as store:
        inc = store.require(incident_id)
        folder = store.folder(inc.id)
        customers = folder / "affected_customers.parquet"
        found = scan_files([Path(r) for r in records or []], customers if customers.is_file() else None,
                           folder / "exposed_records.parquet")
        findings = findings_list(found)
        if execute and not instance_url:
            raise typer.BadParameter("give the org URL (or set SALESFORCE_INSTANCE_URL)", param_hint="--instance-url")
        plan = build_plan(inc, instance_url or "<instance URL>", api_version)
        if not execute:
            store.journal(inc.id, "contain.plan", who, "dry-run", {"plan": plan.model_dump(), "secrets_found": len(findings)})
            if json_out:
                _json({"dry_run": True, "plan": plan.model_dump(), "secrets": findings})
                return 0
            out.print(plan_table(plan))
            _print_secrets(found)
            out.print("[bold yellow]DRY RUN: nothing was sent to Salesforce.[/bold yellow] "
                      f"Run again with --execute to contain (crmguard incident contain {inc.id} --execute).")
            return 0
        client = SalesforceClient(instance_url or "", read_token(token_env, token_file), api_version=api_version, timeout=timeout)
        try:
            with err.status("containing"):
                results = run_plan(plan, client, store, who, findings)
        finally:
            client.close()
    if json_out:
        _json({"dry_run": False, "plan": plan.model_dump(), "steps": [r.__dict__ for r in results], "secrets": findings})
    else:
        out.print(results_table(results))
        _print_secrets(found)
    failed = [r for r in results if r.status == "failed"]
    pending = [r for r in results if r.status == "pending"]
    if failed:
        err.print(f"[red]containment stopped[/red] at {failed[0].key}: {failed[0].error}; fix it and run again "
                  "(verified steps are skipped)")
        return 1
    if pending:
        err.print(f"[yellow]manual step pending[/yellow]: {', '.join(r.key for r in pending)} (run again to re-verify)")
    return 0


def _print_secrets(found: pa.Table) -> None:
    """Secret-scanning findings (masked previews only) and where the rotation list goes."""
    from crmguard.output import render

    out.print(f"secrets found in exposed records: {found.num_rows} (masked; added to the rotation list, rotation.json)")
    if found.num_rows:
        render(found.select(["object", "record_id", "field", "kind", "preview", "exposed"]), "table", out)
