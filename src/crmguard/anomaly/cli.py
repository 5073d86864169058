"""``crmguard baseline ...``: update the behavioural baselines, raise their alerts, show an identity."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from crmguard.anomaly.score import ALERT_SCORE, HISTORY_DAYS, MIN_FACT_BITS, VOLUME_ALONE_BITS
from crmguard.cli_time import parse_window
from crmguard.workspace import resolve

baseline_app = typer.Typer(help="Behavioural baselines: learn each identity's normal, alert on deviations.",
                           no_args_is_help=True)
out = Console()
err = Console(stderr=True)

_Home = Annotated[Optional[str], typer.Option("--home", help="Workspace folder (default: $CRMGUARD_HOME or ./crmguard-data).")]
_Lake = Annotated[Optional[str], typer.Option("--lake", help="Lake folder (default: <home>/lake).")]
_State = Annotated[Optional[str], typer.Option("--state", help="State SQLite DB (default: <home>/state.db).")]
_Directory = Annotated[Optional[str], typer.Option(
    "--directory", help="Peer groups from a directory export: org snapshot JSON (users + profiles) or a CSV with "
    "Username and Profile (or Role) columns. Kept for later runs.")]


@baseline_app.command("update")
def update_command(
    home: _Home = None, lake: _Lake = None, state: _State = None, directory: _Directory = None,
    since: Annotated[Optional[str], typer.Option("--since", help="Score the days from this time (ISO 8601, UTC); "
                                                 "without --since/--until, only the days the update changed.")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Score days before this time.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Rebuild and score every day, not only the changed ones.")] = False,
    no_alerts: Annotated[bool, typer.Option("--no-alerts", help="Only update the features; raise no alerts.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the alerts as a JSON array on stdout.")] = False,
    history_days: Annotated[int, typer.Option("--history-days", min=3, help="Days of history a day is judged "
                                              "against (own and peer p99, first-seen facts).")] = HISTORY_DAYS,
    alert_score: Annotated[float, typer.Option("--alert-score", min=0.5, help="Score (bits) at which an hour alerts, "
                                               "with --infra-bits of them from never-seen infrastructure.")] = ALERT_SCORE,
    infra_bits: Annotated[float, typer.Option("--infra-bits", min=0.0, help="Never-seen infrastructure an alert "
                                              "needs (bits).")] = MIN_FACT_BITS,
    volume_alone: Annotated[float, typer.Option("--volume-alone", min=1.0, help="Deviation (bits) that alerts "
                                                "without new infrastructure.")] = VOLUME_ALONE_BITS,
) -> int:
    """Update the baselines from the lake (only days whose files changed), score the days and store
    the anomalies as alerts (same store, dedup and delivery as rule alerts)."""
    from crmguard.anomaly.run import run_baselines
    from crmguard.anomaly.score import Settings
    from crmguard.detect import engine_connection
    from crmguard.intel import load
    from crmguard.lake import Lake
    from crmguard.output import alerts_json

    ws = resolve(home, lake, state)
    lake_obj = Lake(ws.lake)
    con = engine_connection(lake_obj)
    intel = load(ws.intel) if ws.intel.exists() else None
    with err.status("updating baselines"):
        result = run_baselines(con, lake_obj, None if no_alerts else ws.state, *parse_window(since, until),
                               directory=Path(directory) if directory else None,
                               settings=Settings(history_days=history_days, alert_score=alert_score,
                                                 min_fact_bits=infra_bits, volume_alone_bits=volume_alone),
                               full=full, intel=intel, score=not no_alerts)
    u = result.update
    err.print(f"baselines: {len(u.rebuilt)} day(s) rebuilt from {u.events:,} events, {u.current} already current, "
              f"{len(u.dropped)} dropped; {u.hourly_rows:,} feature rows, {u.fact_rows:,} facts in {u.seconds:.1f} s")
    if no_alerts:
        return 0
    if json_out:
        sys.stdout.write(alerts_json([a.__dict__ for a in result.alerts]) + "\n")
        return 0
    table = Table(title=f"{len(result.alerts)} anomalies over {len(result.days)} scored day(s)")
    for col in ("id", "severity", "actor", "fired at", "score", "why"):
        table.add_column(col)
    for a in result.alerts:
        table.add_row(a.id[:12], a.severity, a.actor or "", str(a.context["fired_at"]), str(a.context["score"]),
                      a.explanation.split(": ", 1)[-1][:160])
    out.print(table)
    out.print(f"stored in {ws.state}: {result.stored.created} new, {result.stored.updated} updated, "
              f"{result.stored.unchanged} already known")
    return 0


@baseline_app.command("show")
def show_command(
    user: Annotated[str, typer.Argument(help="Username (e-mail) or user id.")],
    home: _Home = None, lake: _Lake = None,
    days: Annotated[int, typer.Option("--days", help="History to describe, in days.")] = 30,
    hours: Annotated[int, typer.Option("--hours", help="Recent hours to list.")] = 24,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> int:
    """Print an identity's normal behaviour (own p99 per feature, places, apps and agents it uses)
    and its recent hours."""
    from crmguard.anomaly.run import profile
    from crmguard.anomaly.store import BaselineStore
    from crmguard.lake import Lake
    from crmguard.sources.sql import connect

    ws = resolve(home, lake, None)
    store = BaselineStore(Lake(ws.lake))
    p = profile(connect(), store, user, days, hours)
    if json_out:
        sys.stdout.write(json.dumps(p, default=str, indent=2) + "\n")
        return 0
    out.print(f"[bold]{p['identity']}[/bold] — peer group {p['peer_group'] or '(none: no directory loaded)'}; "
              f"{p['active_hours']} active hours on {p['active_days']} days since {p['history_from']:%Y-%m-%d %H:%M}Z")
    share = p["channel_share"]
    out.print(f"data access by channel: API {share['api']:.0%}, UI {share['ui']:.0%}, reports {share['report']:.0%}")
    normal = Table(title="normal (per active hour)")
    for col in ("feature", "own p99", "own max", "hours with it"):
        normal.add_column(col, justify="right" if col != "feature" else "left")
    for r in p["normal"]:
        normal.add_row(r["feature"], f"{r['own_hour_p99']:,}", f"{r['own_hour_max']:,}", str(r["hours_with"]))
    out.print(normal)
    known = Table(title="places, apps and agents used")
    for col in ("kind", "distinct", "examples"):
        known.add_column(col)
    for r in p["known"]:
        known.add_row(r["kind"], str(r["distinct"]), ", ".join(map(str, r["examples"])))
    out.print(known)
    recent = Table(title=f"last {hours} h")
    for col in ("hour", "feature", "value"):
        recent.add_column(col)
    for r in p["recent"]:
        recent.add_row(f"{r['hour']:%Y-%m-%d %H:00}Z", r["feature"], f"{r['value']:,}")
    out.print(recent)
    return 0
