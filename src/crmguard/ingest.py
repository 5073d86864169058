"""Ingest log files into the lake, with counts that always add up.

For every input: ``read = stored + duplicate + quarantined``. A file that cannot be read at all
(unknown format, unreadable gzip/JSON document) is reported in ``failed`` with the reason and
adds nothing to the counts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from crmguard.errors import CrmguardError
from crmguard.lake import Lake
from crmguard.sources.inputs import expand, open_input
from crmguard.sources.sql import connect
from crmguard.sources.staging import FileStager, create_staging


@dataclass
class Counts:
    """Record counts: read = stored + duplicate + quarantined."""

    read: int = 0
    stored: int = 0
    duplicate: int = 0
    quarantined: int = 0

    def add(self, other: Counts) -> None:
        """Add ``other``'s counts to these."""
        self.read += other.read
        self.stored += other.stored
        self.duplicate += other.duplicate
        self.quarantined += other.quarantined

    def as_dict(self) -> dict[str, int]:
        """Return the counts as a plain dict."""
        return {"read": self.read, "stored": self.stored, "duplicate": self.duplicate, "quarantined": self.quarantined}


@dataclass
class FileResult:
    """The outcome of one input file: counts, or the error that stopped it being read."""

    path: str
    counts: Counts = field(default_factory=Counts)
    sources: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class IngestSummary:
    """Totals, per-source and per-file results of one ingest run."""

    total: Counts = field(default_factory=Counts)
    by_source: dict[str, Counts] = field(default_factory=dict)
    files: list[FileResult] = field(default_factory=list)

    @property
    def failed(self) -> list[FileResult]:
        """Inputs that could not be read at all."""
        return [f for f in self.files if f.error or (f.counts.read and f.counts.read == f.counts.quarantined)]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary: top-level read/stored/duplicate/quarantined, then breakdowns."""
        return {
            **self.total.as_dict(),
            "files": len(self.files),
            "files_failed": len(self.failed),
            "by_source": {s: c.as_dict() for s, c in sorted(self.by_source.items())},
            "by_file": [
                {"path": f.path, **f.counts.as_dict(), "sources": f.sources, "error": f.error} for f in self.files
            ],
        }


def ingest(
    paths: list[str],
    lake: Lake,
    *,
    encoding: str | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> IngestSummary:
    """Ingest every file under ``paths`` (files, folders, globs; plain or gzip) into ``lake``.

    ``encoding`` overrides the detected text encoding (e.g. ``latin-1``); ``on_file`` is called
    after each file (for progress). Returns the :class:`IngestSummary`. Raises
    ``SourceParseError`` only when a path matches no file.
    """
    files = expand(paths)
    summary = IngestSummary()
    lake.root.mkdir(parents=True, exist_ok=True)
    (lake.root / "_tmp").mkdir(exist_ok=True)
    con = connect(memory_limit="1GB", temp_dir=str(lake.root / "_tmp"))
    create_staging(con)
    for path in files:
        result = FileResult(str(path))
        by_source: dict[str, Counts] = {}
        with tempfile.TemporaryDirectory(prefix="crmguard-", dir=lake.root / "_tmp") as tmp:
            try:
                stager = FileStager(con, open_input(path, Path(tmp), encoding))
                lake.start_file(con)
                for chunk in stager.chunks():
                    committed = lake.commit_events(con, chunk)
                    for source, n in committed.stored.items():
                        by_source.setdefault(source, Counts()).stored += n
                    for source, n in committed.duplicate.items():
                        by_source.setdefault(source, Counts()).duplicate += n
                stager.finish()
                for source, n in lake.commit_quarantine(con).items():
                    by_source.setdefault(source, Counts()).quarantined += n
            except CrmguardError as exc:
                # Whatever chunks were committed stay (a replay dedupes them); the file is reported failed.
                con.execute("DELETE FROM qstaged")
                result.error = str(exc)
            else:
                result.sources = sorted(stager.sources)
        for source, c in by_source.items():
            c.read = c.stored + c.duplicate + c.quarantined
            summary.by_source.setdefault(source, Counts()).add(c)
            result.counts.add(c)
        if not result.error and result.counts.read != stager.read:
            raise AssertionError(f"{path}: {stager.read} records read but {result.counts.read} accounted for")
        summary.total.add(result.counts)
        summary.files.append(result)
        if on_file:
            on_file(result)
    con.close()
    return summary
