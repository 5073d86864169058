"""The ``crmguard intel`` commands, as plain functions the Typer layer wires up.

``update_command`` refreshes the intel folder from the public lists; ``lookup_command`` shows
what the intel says about a few addresses. Both print to the given Rich console and return an
exit code (the values of ``crmguard.cli.EXIT_*``, repeated here so this module does not import
the CLI it is part of).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from crmguard.intel.db import load
from crmguard.intel.formats import intel_folder
from crmguard.intel.updater import DEFAULT_SOURCES, Fetcher, Source, UpdateReport, update, urllib_fetch
from crmguard.output import progress_bar

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INPUT_UNREADABLE = 3
"""Some source could not be downloaded or used (the others were applied)."""

SHOWN_PROBLEMS = 10
LOOKUP_SCHEMA = pa.schema([
    ("ip", pa.string()), ("is_anonymizer", pa.bool_()), ("anonymizer_kind", pa.string()), ("src_asn", pa.int64()),
    ("src_isp", pa.string()), ("src_country", pa.string()), ("anonymizer_source", pa.string()),
    ("anonymizer_network", pa.string()), ("asn_network", pa.string()),
])
"""Columns of :meth:`IntelDB.lookup` rows (all of them in JSON output)."""
LOOKUP_COLUMNS = ("ip", "is_anonymizer", "anonymizer_kind", "anonymizer_source", "src_asn", "src_isp", "src_country")
"""Columns shown in table and CSV output."""


def update_command(
    home: Path, console: Console, sources: Sequence[Source] = DEFAULT_SOURCES, fetch: Fetcher = urllib_fetch
) -> int:
    """``crmguard intel update``: download ``sources`` into ``<home>/intel`` and print a table
    per source, the first lines set aside, and one summary line. Returns ``EXIT_OK``, or
    ``EXIT_INPUT_UNREADABLE`` when a source failed (its file was kept as it was)."""
    folder = intel_folder(home)
    with progress_bar("intel update", console) as progress:
        task = progress.add_task("update", total=len(sources), name="")

        def on_source(source: Source) -> None:
            progress.update(task, advance=1, name=source.name)

        report = update(folder, sources, fetch=fetch, on_source=on_source)
    _print_report(report, console)
    return EXIT_INPUT_UNREADABLE if report.failed else EXIT_OK


def lookup_command(ips: Sequence[str], home: Path, console: Console, fmt: str = "table") -> int:
    """``crmguard intel lookup IP...``: print, per address, the anonymizer kind and list, ASN,
    AS organisation and country from ``<home>/intel`` as ``fmt`` (table, csv or json). Returns
    ``EXIT_ERROR`` when there is no intel data yet."""
    from crmguard.output import render

    folder = intel_folder(home)
    db = load(folder)
    if db.empty:
        console.print(f"[red]no intel data[/red] in {folder}: run crmguard intel update")
        return EXIT_ERROR
    for problem in db.problems[:SHOWN_PROBLEMS]:
        console.print(f"[yellow]set aside[/yellow] {problem}")
    rows = db.lookup(list(ips))
    schema = LOOKUP_SCHEMA if fmt == "json" else pa.schema([LOOKUP_SCHEMA.field(c) for c in LOOKUP_COLUMNS])
    render(pa.Table.from_pylist(rows, schema=schema), fmt, console)
    if fmt == "table":
        updated = db.manifest.get("updated_at", "unknown")
        console.print(f"intel from {folder} (updated {updated}; {', '.join(f'{k} {v:,} rows' for k, v in db.rows.items())})")
    return EXIT_OK


def _print_report(report: UpdateReport, console: Console) -> None:
    table = Table(title=f"intel update into {report.folder}")
    for column in ("source", "file", "rows", "skipped", "set aside", "status"):
        table.add_column(column, justify="right" if column in ("rows", "skipped", "set aside") else "left")
    for s in report.sources:
        status = f"[red]{s.error}[/red]" if s.error else "ok"
        table.add_row(s.source.name, s.source.target, f"{s.rows:,}", f"{s.skipped:,}", f"{s.bad_lines:,}", status)
    console.print(table)
    for problem in report.problems[:SHOWN_PROBLEMS]:
        console.print(f"[yellow]set aside[/yellow] {problem}")
    if report.bad_lines > SHOWN_PROBLEMS:
        console.print(f"... {report.bad_lines - SHOWN_PROBLEMS:,} more lines set aside")
    files = ", ".join(f"{f.name} {f.rows:,} rows{'' if f.replaced else ' (kept, not replaced)'}" for f in report.files)
    failed = f"; {len(report.failed)} source(s) failed" if report.failed else ""
    console.print(f"intel updated in {report.folder}: {files}; {report.bad_lines:,} lines set aside{failed}")
