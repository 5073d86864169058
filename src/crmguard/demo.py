"""``crmguard demo``: simulate a small retailer org with one attack campaign, ingest it, and tell
what is in the lake — all local (DuckDB + Parquet), no server to start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from crmguard.anomaly.run import run_baselines
from crmguard.detect import detect, engine_connection
from crmguard.engine.run import Alert
from crmguard.ingest import IngestSummary, ingest
from crmguard.lake import Lake


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its logs and lake, what the ingest counted, how many alerts fired."""

    logs: Path
    lake: Path
    summary: IngestSummary
    alerts: int
    anomalies: int


def run_demo(home: Path, console: Console, *, users: int = 80, days: int = 6, seed: int = 7,
             campaign: str = "vishing", quiet_days: int = 4) -> DemoResult:
    """Simulate ``users`` × ``days`` of telemetry with ``campaign`` (after ``quiet_days`` of normal
    work) into ``home``/demo-logs, ingest it into ``home``/lake, print a short story of the lake to
    ``console``, then run the rules and the behavioural baselines. Returns a :class:`DemoResult`."""
    from crmguard.simulate import simulate

    logs, lake = home / "demo-logs", Lake(home / "lake")
    with console.status(f"simulating {users} users × {days} days with a '{campaign}' campaign"):
        sim = simulate(logs, users=users, days=days, seed=seed, campaigns=[campaign], quiet_days=quiet_days)
    with console.status("ingesting into the lake"):
        summary = ingest([str(logs / "salesforce"), str(logs / "okta")], lake)
    tell_story(lake, summary, console)
    with console.status("running the detection rules"):
        found = detect(lake, home / "state.db")
    tell_alerts(found.alerts, found.rules, console)
    with console.status("learning each identity's normal behaviour"):
        base = run_baselines(engine_connection(lake), lake, home / "state.db",
                             directory=logs / "org" / "snapshot.json")
    tell_anomalies(base.alerts, len(base.days), console)
    console.print(f"\nground truth for the campaign: {logs / 'labels.json'} ({sim.total_events:,} events simulated)")
    return DemoResult(logs, lake.root, summary, len(found.alerts), len(base.alerts))


def tell_story(lake: Lake, summary: IngestSummary, console: Console) -> None:
    """Print what the lake holds: volume, span, sources, heavy readers, risky sign-ins, app installs."""
    con = lake.connect()
    t = summary.total
    console.print(
        f"[bold]ingested[/bold] {t.read:,} records: {t.stored:,} stored, {t.duplicate:,} duplicate, "
        f"{t.quarantined:,} quarantined"
    )
    n, first, last, users = con.execute(
        "SELECT count(*), min(time)::VARCHAR, max(time)::VARCHAR, count(DISTINCT coalesce(username, user_id)) FROM events"
    ).fetchall()[0]
    console.print(f"[bold]the lake[/bold] holds {n:,} events from {first} to {last}, {users:,} identities")
    for source, k in con.execute("SELECT source, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC").fetchall():
        console.print(f"  {source:<18} {k:>10,}")
    console.print("[bold]who read the most CRM rows[/bold] (API, bulk, reports):")
    for who, rows, apps in con.execute(
        """WITH names AS (SELECT user_id, any_value(username) AS name FROM events
                          WHERE user_id IS NOT NULL AND username IS NOT NULL GROUP BY 1)
           SELECT coalesce(e.username, n.name, e.user_id), sum(rows), string_agg(DISTINCT app, ', ')
           FROM events e LEFT JOIN names n USING (user_id)
           WHERE source = 'salesforce_elf' AND rows > 0 AND action IN ('query', 'query_more', 'export', 'report_run')
           GROUP BY 1 ORDER BY 2 DESC LIMIT 5"""
    ).fetchall():
        console.print(f"  {who:<40} {rows:>12,} rows  via {apps or '-'}")
    proxied = con.execute(
        "SELECT count(*), count(DISTINCT username) FROM events WHERE is_anonymizer AND action IN ('login', 'sso')"
    ).fetchall()[0]
    console.print(f"[bold]sign-ins flagged as proxy/VPN[/bold]: {proxied[0]:,} by {proxied[1]:,} identities")
    resets = con.execute("SELECT count(*) FROM events WHERE action IN ('mfa_reset', 'factor_enroll')").fetchall()[0][0]
    console.print(f"[bold]MFA resets and new factors[/bold]: {resets:,}")
    for when, who, what in con.execute(
        "SELECT time::VARCHAR, username, outcome_reason FROM events WHERE action = 'app_change' ORDER BY time LIMIT 5"
    ).fetchall():
        console.print(f"[bold]connected-app change[/bold] {when} by {who}: {what}")
    console.print("\nexplore: crmguard query \"SELECT action, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC\"")


SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "informational": 4}


def tell_alerts(alerts: list[Alert], rules: int, console: Console) -> None:
    """Print how many alerts the rules raised, who they are about, and the most severe one explained."""
    console.print(f"\n[bold]detection[/bold]: {rules} rules raised {len(alerts)} alerts")
    if not alerts:
        return
    by_actor: dict[str, list[Alert]] = {}
    for a in alerts:
        by_actor.setdefault(a.actor or "?", []).append(a)
    for actor, items in sorted(by_actor.items(), key=lambda kv: min(SEVERITY_ORDER.get(a.severity, 9) for a in kv[1])):
        titles = sorted({a.title for a in items})
        console.print(f"  {actor:<42} {len(items):>3} alerts: {'; '.join(titles)[:120]}")
    top = min(alerts, key=lambda a: (SEVERITY_ORDER.get(a.severity, 9), a.first_seen))
    console.print(f"[bold]most severe[/bold] ({top.severity}): {top.explanation}")
    console.print("inspect: crmguard alerts list   |   crmguard alerts show <id>")


def tell_anomalies(alerts: list[Alert], days: int, console: Console) -> None:
    """Print the baselines' anomalies: who, when they fired, and why."""
    console.print(f"\n[bold]behavioural baselines[/bold]: {len(alerts)} anomalies over {days} scored day(s)")
    for a in alerts:
        console.print(f"  {a.actor} at {a.context['fired_at']}: {a.explanation.split(': ', 1)[-1][:220]}")
    console.print("inspect: crmguard baseline show <username>")
