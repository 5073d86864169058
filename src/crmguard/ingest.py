"""Ingest log files into the lake, with counts that always add up.

For every input: ``read = stored + duplicate + quarantined``. A file that cannot be read at all
(unknown format, unreadable gzip/JSON document) is reported in ``failed`` with the reason and
adds nothing to the counts.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from duckdb import DuckDBPyConnection

from crmguard.errors import CrmguardError
from crmguard.lake import Lake
from crmguard.sources.inputs import batches, expand, open_input
from crmguard.sources.sql import connect, sql_list
from crmguard.sources.staging import FileStager, StagedFiles, create_staging


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
    by_source: dict[str, Counts] = field(default_factory=dict)
    """The counts per source (``counts`` is their sum)."""


@dataclass
class IngestSummary:
    """Totals, per-source and per-file results of one ingest run."""

    total: Counts = field(default_factory=Counts)
    by_source: dict[str, Counts] = field(default_factory=dict)
    files: list[FileResult] = field(default_factory=list)

    def add(self, result: FileResult) -> None:
        """Count one file's ``result`` in the totals and list it."""
        for source, c in result.by_source.items():
            self.by_source.setdefault(source, Counts()).add(c)
        self.total.add(result.counts)
        self.files.append(result)

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


INGEST_MEMORY_LIMIT = "1GB"
"""DuckDB memory limit of an ingest connection (parsing is streamed in bounded chunks), unless
``$CRMGUARD_INGEST_MEMORY_LIMIT`` sets another (e.g. ``4GB``)."""
MEMORY_ENV = "CRMGUARD_INGEST_MEMORY_LIMIT"


def ingest_memory_limit() -> str:
    """The DuckDB memory limit ingest connections get: ``$CRMGUARD_INGEST_MEMORY_LIMIT`` or
    :data:`INGEST_MEMORY_LIMIT`."""
    return os.environ.get(MEMORY_ENV) or INGEST_MEMORY_LIMIT


def ingest_connection(lake: Lake) -> DuckDBPyConnection:
    """Return a DuckDB connection set up for ingesting into ``lake`` (memory cap, spill folder under
    the lake, macros). :func:`ingest` opens one per call; a caller that ingests every second (the
    watcher) keeps one and passes it, saving its set-up each time."""
    lake.root.mkdir(parents=True, exist_ok=True)
    (lake.root / "_tmp").mkdir(exist_ok=True)
    con = connect(memory_limit=ingest_memory_limit(), temp_dir=str(lake.root / "_tmp"))
    # A batch's queries run for seconds: DuckDB's own progress bar would cut through the caller's.
    con.execute("SET enable_progress_bar = false")
    return con


def ingest(
    paths: list[str],
    lake: Lake,
    *,
    encoding: str | None = None,
    on_file: Callable[[FileResult], None] | None = None,
    con: DuckDBPyConnection | None = None,
) -> IngestSummary:
    """Ingest every file under ``paths`` (files, folders, globs; plain or gzip) into ``lake``.

    Files of one format (same kind, encoding and CSV header) are parsed in batches, one mapping
    query for many files (see :func:`crmguard.sources.inputs.batches`); every count, quarantine
    row and error is still per file and the same as when the file is ingested alone. An event in
    two files of a batch is stored once, credited to the earlier file.

    ``encoding`` overrides the detected text encoding (e.g. ``latin-1``); ``on_file`` is called
    with each file's result once its batch is done (for progress); ``con``, a connection from
    :func:`ingest_connection` to reuse (it stays open). Returns the
    :class:`IngestSummary`, files in input order. Raises ``SourceParseError`` only when a path
    matches no file.
    """
    files = expand(paths)
    summary = IngestSummary()
    own = con is None
    con = ingest_connection(lake) if con is None else con
    try:
        create_staging(con)
        order = {str(path): n for n, path in enumerate(files)}
        for batch in batches(files, encoding):
            for result in _ingest_batch(con, lake, batch, encoding):
                summary.add(result)
                if on_file:
                    on_file(result)
    finally:
        if own:
            con.close()
    summary.files.sort(key=lambda f: order[f.path])
    return summary


def _ingest_batch(con: DuckDBPyConnection, lake: Lake, batch: list[Path], encoding: str | None) -> list[FileResult]:
    """Parse ``batch`` into ``lake`` using ``con``; return each file's result, in batch order."""
    results = {str(path): FileResult(str(path)) for path in batch}
    with tempfile.TemporaryDirectory(prefix="crmguard-", dir=lake.root / "_tmp") as tmp:
        opened = []
        for n, path in enumerate(batch):
            # A folder per file: inputs decompressed from different folders may share a name.
            workdir = Path(tmp) / str(n)
            workdir.mkdir()
            try:
                opened.append(open_input(path, workdir, encoding))
            except CrmguardError as exc:
                results[str(path)].error = str(exc)
        if opened:
            _commit_batch(con, lake, FileStager(con, opened), results)
    return list(results.values())


def stage_file(path: Path, lake: Lake, con: DuckDBPyConnection) -> StagedFiles:
    """Parse the file at ``path`` (small: it is held in memory) with ``con`` (an
    :func:`ingest_connection` of ``lake``) without writing anything; :func:`commit_staged` then
    stores it as :func:`ingest` would have. ``path`` may be deleted once this returns. A file that
    cannot be opened, or whose parse runs out of the connection's memory, gives a
    :class:`StagedFiles` holding only its error."""
    create_staging(con)
    with tempfile.TemporaryDirectory(prefix="crmguard-", dir=lake.root / "_tmp") as tmp:
        try:
            opened = open_input(path, Path(tmp))
            return StagedFiles.of(FileStager(con, [opened]))
        except CrmguardError as exc:
            return StagedFiles.failed(con, str(path), exc)
        except duckdb.OutOfMemoryException as exc:
            con.execute("DELETE FROM qstaged")
            return StagedFiles.failed(con, str(path), CrmguardError(_out_of_memory(exc)))


def _out_of_memory(exc: duckdb.OutOfMemoryException) -> str:
    """The error of a file whose parse ran out of the ingest connection's memory."""
    return (f"out of memory: parsing reached DuckDB's ingest limit of {ingest_memory_limit()} "
            f"({str(exc).splitlines()[0]}); raise ${MEMORY_ENV} and ingest it again "
            "(what was stored is not stored twice)")


def commit_staged(staged: StagedFiles, lake: Lake, con: DuckDBPyConnection) -> IngestSummary:
    """Store what :func:`stage_file` parsed (one file, or several joined by
    :meth:`StagedFiles.combine`) in ``lake`` with ``con``; returns the summary :func:`ingest` would
    have given for the staged files."""
    results = {name: FileResult(name) for name in staged.names}
    create_staging(con)
    _commit_batch(con, lake, staged, results)
    summary = IngestSummary()
    for result in results.values():
        summary.add(result)
    return summary


def _commit_batch(con: DuckDBPyConnection, lake: Lake, stager: FileStager | StagedFiles,
                  results: dict[str, FileResult]) -> None:
    """Stage ``stager``'s files chunk by chunk into ``lake`` and fill in their ``results``."""
    per_file: dict[tuple[str, str], Counts] = {}
    try:
        lake.start_batch(con)
        for chunk in stager.chunks():
            committed = lake.commit_events(con, chunk)
            for key, n in committed.stored.items():
                per_file.setdefault(key, Counts()).stored += n
            for key, n in committed.duplicate.items():
                per_file.setdefault(key, Counts()).duplicate += n
        stager.finish()
        if stager.errors:
            con.execute(f"DELETE FROM qstaged WHERE file IN (SELECT unnest({sql_list(list(stager.errors))}))")
        for key, n in lake.commit_quarantine(con).items():
            per_file.setdefault(key, Counts()).quarantined += n
    except (CrmguardError, duckdb.OutOfMemoryException) as exc:
        # Whatever chunks were committed stay (a replay dedupes them); the batch's files are reported failed.
        con.execute("DELETE FROM qstaged")
        message = str(exc) if isinstance(exc, CrmguardError) else _out_of_memory(exc)
        for name in stager.names:
            results[name].error = message
    for name, error in stager.errors.items():
        results[name].error = str(error)
    for (name, source), c in per_file.items():
        c.read = c.stored + c.duplicate + c.quarantined
        results[name].by_source[source] = c
        results[name].counts.add(c)
    for name in stager.names:
        result = results[name]
        if result.error:
            continue
        result.sources = sorted(stager.sources[name])
        if result.counts.read != stager.read[name]:
            raise AssertionError(f"{name}: {stager.read[name]} records read but {result.counts.read} accounted for")
