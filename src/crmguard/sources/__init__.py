"""Parsers: one module per log format, all producing the one event schema.

Every format module exposes ``SOURCE`` (its ``source`` value), ``MAPPING`` (a
:class:`~crmguard.sources.mapping.SourceMapping`) and, for JSON records, ``JSON_KEYS`` (the
:data:`~crmguard.sources.mapping.Shape` of keys that recognises the format) with ``JSON_SHAPE``, its
SQL predicate over the record's text ``rec`` (:func:`~crmguard.sources.mapping.shape_sql`), and
``JSON_ROOT`` (the SQL expression of
the object the mapping reads, e.g. a streaming envelope's payload). Adding a format means adding a
sibling module and listing it in :data:`JSON_FORMATS` / the CSV detection in
:mod:`crmguard.sources.staging`.

``read(path)`` streams one file's events as Arrow record batches in the event schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pyarrow as pa

from crmguard.sources.mapping import shape_matches
from crmguard.sources.okta import system_log
from crmguard.sources.salesforce import audit_trail, elf, rtem

JSON_FORMATS: tuple[ModuleType, ...] = (system_log, elf, audit_trail, rtem)
"""JSON record formats in the order they are tried (first shape that matches wins)."""

FORMAT_SQL = "CASE " + " ".join(f"WHEN {m.JSON_SHAPE} THEN '{m.SOURCE}'" for m in JSON_FORMATS) + " END"
"""SQL over a record's text ``rec``: the ``source`` of the first format whose shape it has, or NULL."""


def recognise(record: object) -> str | None:
    """Return the ``source`` of the first format whose key shape ``record`` (a parsed JSON value)
    has, or None: :data:`FORMAT_SQL` for a record already in Python (the HTTP endpoint checks the
    first record of each body it has parsed)."""
    return next((m.SOURCE for m in JSON_FORMATS if shape_matches(m.JSON_KEYS, record)), None)


def read(path: str | Path, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
    """Parse one log file (any supported format, plain or gzip) and yield its valid events as
    Arrow record batches in :data:`crmguard.schema.EVENT_SCHEMA`. Quarantined records are not
    yielded; use :func:`crmguard.ingest.ingest` to get them with counts."""
    from crmguard.sources.staging import read_file

    yield from read_file(Path(path), batch_rows=batch_rows)
