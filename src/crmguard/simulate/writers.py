"""Writing one simulated day to disk, laid out like a real export.

- ``salesforce/elf/<day>/<EventType>.csv``: ELF CSV, header then rows, every value double-quoted.
- ``salesforce/rtem/<day>/<Object>.json``: RTEM records, one JSON object per line.
- ``salesforce/audit/<day>.json``: SetupAuditTrail records, one per line.
- ``okta/<day>.json``: the System Log events of the day as one JSON array.

A day may be written in several parts (user chunks); files are appended to, the CSV header and the
JSON array brackets written once. A type with no event that day gets no file, as in a real export.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from crmguard.simulate.columns import join

_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="all_valid", batch_size=65_536)


def _write_lines(fh: BinaryIO, lines: pa.Array, skip: int = 0) -> None:
    """Write the concatenated bytes of a string array (its values buffer) in one call."""
    if len(lines) == 0:
        return
    lines = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    width = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    offsets = np.frombuffer(lines.buffers()[1], dtype=width, count=len(lines) + 1, offset=lines.offset * width().itemsize)
    data = lines.buffers()[2]
    fh.write(memoryview(data)[int(offsets[0]) + skip : int(offsets[-1])])


class DayFiles:
    """Open output files of one day; ``stats`` counts rows per output kind (``elf/Login``,
    ``rtem/ApiEvent``, ``okta``, ``audit``)."""

    def __init__(self, out: Path, day: dt.date) -> None:
        self.out = out
        self.day = day.isoformat()
        self.handles: dict[str, BinaryIO] = {}
        self.paths: dict[str, Path] = {}
        self.rows: dict[str, int] = defaultdict(int)
        self.okta_started = False

    def _open(self, kind: str, path: Path, header: bytes = b"") -> tuple[BinaryIO, bool]:
        fresh = kind not in self.handles
        if fresh:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handles[kind] = open(path, "wb")  # noqa: SIM115 - closed in close()
            self.paths[kind] = path
            self.handles[kind].write(header)
        return self.handles[kind], fresh

    def elf(self, event_type: str, table: pa.Table) -> None:
        """Append ELF rows (a table whose columns are the file's header)."""
        if table.num_rows == 0:
            return
        header = (",".join(f'"{c}"' for c in table.column_names) + "\n").encode()
        fh, _ = self._open(f"elf/{event_type}", self.out / "salesforce" / "elf" / self.day / f"{event_type}.csv", header)
        pacsv.write_csv(table, fh, _CSV_OPTIONS)
        self.rows[f"elf/{event_type}"] += table.num_rows

    def rtem(self, obj: str, pieces: list[pa.Array]) -> None:
        """Append RTEM records (string arrays whose lines already end with a newline)."""
        rows = sum(len(p) for p in pieces)
        if rows == 0:
            return
        fh, _ = self._open(f"rtem/{obj}", self.out / "salesforce" / "rtem" / self.day / f"{obj}.json")
        for p in pieces:
            _write_lines(fh, p)
        self.rows[f"rtem/{obj}"] += rows

    def audit(self, pieces: list[pa.Array]) -> None:
        """Append SetupAuditTrail records (each line ends with a newline)."""
        rows = sum(len(p) for p in pieces)
        if rows == 0:
            return
        fh, _ = self._open("audit", self.out / "salesforce" / "audit" / f"{self.day}.json")
        for p in pieces:
            _write_lines(fh, p)
        self.rows["audit"] += rows

    def okta(self, pieces: list[pa.Array]) -> None:
        """Append Okta events (JSON objects, no separators) to the day's JSON array."""
        fh, _ = self._open("okta", self.out / "okta" / f"{self.day}.json", b"[")
        for p in pieces:
            if len(p) == 0:
                continue
            _write_lines(fh, join(",\n", p), skip=0 if self.okta_started else 1)
            self.okta_started = True
            self.rows["okta"] += len(p)

    def close(self) -> dict[str, int]:
        """Finish and close every file; returns bytes written per output kind."""
        if "okta" not in self.handles:
            self.okta([])
        self.handles["okta"].write(b"\n]\n")
        written: dict[str, int] = {}
        for kind, fh in self.handles.items():
            fh.close()
            written[kind] = self.paths[kind].stat().st_size
        return written
