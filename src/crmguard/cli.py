"""The ``crmguard`` command line: a thin Typer layer over the library.

``main(argv) -> int`` runs a command in-process and returns its exit code (see ``EXIT_*``), so
tests call it directly; ``run()`` is the console-script entry point.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crmguard import __version__
from crmguard.errors import CrmguardError
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


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    if version:
        out.print(f"crmguard {__version__}")
        raise typer.Exit(EXIT_OK)


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
    with Progress(
        TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[name]}"),
        TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal,
    ) as progress:
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
        raise click.BadParameter("must be table, csv or json", param_hint="--format")
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
) -> int:
    """Write realistic Salesforce + Okta logs of a retailer org with labelled attack campaigns."""
    import datetime as dt

    from crmguard.simulate import simulate as run_simulate

    campaigns = None if not campaign else [c for c in campaign if c != "none"]
    try:
        first = dt.date.fromisoformat(start) if start else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--start") from exc
    with Progress(
        TextColumn("[bold]simulate"), BarColumn(), MofNCompleteColumn(), TextColumn("days"), TimeElapsedColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("simulate", total=days)
        try:
            summary = run_simulate(Path(out), users=users, days=days, seed=seed, campaigns=campaigns, start=first,
                                   progress=lambda done, total: progress.update(task, completed=done))
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="crmguard", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show(file=sys.stderr)
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("aborted")
        return EXIT_ERROR
    except CrmguardError as exc:
        err.print(f"[red]error[/red] {exc}")
        return EXIT_ERROR
    return rv if isinstance(rv, int) else EXIT_OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
