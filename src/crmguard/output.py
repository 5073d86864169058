"""Render Arrow tables for people (Rich table) and machines (CSV, JSON), shared by CLI commands."""

from __future__ import annotations

import io
import sys

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

MAX_CELL = 80


def _jsonable(value: object) -> object:
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    return str(value)


def to_json(table: pa.Table) -> str:
    """Return ``table`` as a JSON array of objects (timestamps in ISO 8601 UTC)."""
    return orjson.dumps(table.to_pylist(), default=_jsonable, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z).decode()


def render(table: pa.Table, fmt: str, console: Console) -> None:
    """Print ``table`` as ``table`` (Rich), ``csv`` or ``json`` to ``console`` / stdout."""
    if fmt == "json":
        sys.stdout.write(to_json(table) + "\n")
    elif fmt == "csv":
        buf = io.BytesIO()
        # CSV has no nested values: lists, structs and maps are written as their JSON text.
        nested = [i for i, f in enumerate(table.schema) if pa.types.is_nested(f.type)]
        for i in nested:
            texts = [None if v is None else orjson.dumps(v, default=_jsonable).decode() for v in table.column(i).to_pylist()]
            table = table.set_column(i, table.field(i).name, pa.array(texts, pa.string()))
        pacsv.write_csv(table, buf)
        sys.stdout.write(buf.getvalue().decode())
    else:
        rich_table = Table()
        for name in table.column_names:
            rich_table.add_column(name)
        for row in table.to_pylist():
            rich_table.add_row(*("" if v is None else _cell(v) for v in row.values()))
        console.print(rich_table)
        console.print(f"{table.num_rows:,} rows")


def _cell(value: object) -> str:
    text = _jsonable(value) if hasattr(value, "isoformat") else str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"  # type: ignore[return-value]


def alerts_json(alerts: list[dict]) -> str:
    """Return alerts as a JSON array: ISO 8601 UTC times, ``event_ids`` etc. as lists."""
    return orjson.dumps(alerts, default=_jsonable, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC).decode()


def progress_bar(label: str, console: Console, unit: str = "{task.fields[name]}") -> Progress:
    """The progress bar every long command shows: label, bar, done/total, ``unit`` text (by default
    the task's ``name`` field, e.g. the current file) and elapsed time; hidden when ``console`` is
    not a terminal."""
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                    TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal)
