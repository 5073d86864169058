"""Reading times given on the command line (``--since``, ``--at`` ...), shared by the CLI modules."""

from __future__ import annotations

import datetime as dt

import typer


def parse_when(text: str | None, option: str) -> dt.datetime | None:
    """Parse ISO 8601 ``text`` (a date, or a time with or without zone; naive means UTC) given for
    ``option``; returns an aware datetime, or None for no text. Raises ``typer.BadParameter``
    naming the option on bad input."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter("use ISO 8601, e.g. 2025-03-04 or 2025-03-04T08:00:00Z", param_hint=option) from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_window(since: str | None, until: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Parse ``--since`` and ``--until`` (see :func:`parse_when`); returns both, either None when
    not given. Raises ``typer.BadParameter`` when the window is empty (``--since`` not before
    ``--until``), which would otherwise quietly select nothing."""
    start, end = parse_when(since, "--since"), parse_when(until, "--until")
    if start is not None and end is not None and start >= end:
        raise typer.BadParameter(f"--since ({since}) must be before --until ({until})", param_hint="--since/--until")
    return start, end
