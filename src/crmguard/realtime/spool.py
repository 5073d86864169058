"""The spool: a durable folder of accepted inputs waiting to be ingested.

Layout under ``<home>/spool``::

    tmp/     bodies being written (removed at start-up: never acknowledged)
    ready/   accepted inputs, named ``<arrival ns>-<receipt>.http.<ndjson|json>`` (HTTP bodies) or
             ``<arrival ns>-<receipt>.<original name>`` (inbox files): name order is arrival order

An HTTP body is written to ``tmp/``, fsynced, renamed into ``ready/`` and the folder fsynced
*before* the client is told 202, so an acknowledged body survives a crash. Inbox files are claimed
by an atomic rename into ``ready/`` (copy, fsync, rename, then unlink when the inbox is on another
file system: a crash in between only makes a duplicate, which ingest skips by event id).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from crmguard.sources.inputs import expand


@dataclass(frozen=True)
class SpoolFile:
    """One accepted input in ``ready/``: its path, receipt id, arrival time (epoch s) and size."""

    path: Path
    receipt: str
    arrived: float
    size: int

    @property
    def kind(self) -> str:
        """``ndjson`` (HTTP NDJSON bodies, concatenated per batch) or ``file`` (anything else)."""
        return "ndjson" if self.path.name.endswith(".http.ndjson") else "file"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """The spool folder ``root`` (created on first use)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.ready = self.root / "ready"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.ready.mkdir(parents=True, exist_ok=True)

    def clean(self) -> int:
        """Remove half-written bodies left in ``tmp/`` by a crash (they were never acknowledged);
        returns how many."""
        n = 0
        for p in self.tmp.iterdir():
            p.unlink(missing_ok=True)
            n += 1
        return n

    def put(self, body: bytes, kind: str) -> SpoolFile:
        """Durably store one accepted ``body`` of ``kind`` (``ndjson`` or ``json``); returns its
        :class:`SpoolFile` once it is on disk."""
        receipt = uuid.uuid4().hex
        arrived = time.time_ns()
        name = f"{arrived:020d}-{receipt}.http.{kind}"
        tmp = self.tmp / name
        with open(tmp, "wb") as fh:
            fh.write(body)
            if kind == "ndjson" and body and not body.endswith(b"\n"):
                fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.ready / name)
        _fsync_dir(self.ready)
        return SpoolFile(self.ready / name, receipt, arrived / 1e9, len(body))

    def claim(self, inbox: Path, min_age_s: float = 0.0) -> list[SpoolFile]:
        """Move every file under ``inbox`` (recursively; hidden and ``.tmp``/``.part`` files, which
        a writer is still filling, are left alone) into ``ready/``, oldest first; files modified less
        than ``min_age_s`` ago are left for the next call. Returns the claimed files."""
        if not inbox.is_dir():
            return []
        now = time.time()
        found = []
        for p in expand([str(inbox)]):
            if p.suffix in (".tmp", ".part"):
                continue
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            if now - st.st_mtime >= min_age_s:
                found.append((st.st_mtime_ns, p))
        claimed = []
        for _mtime, p in sorted(found):
            receipt = uuid.uuid4().hex
            arrived = time.time_ns()
            # The original name is kept after the receipt so quarantine entries still say which file.
            target = self.ready / f"{arrived:020d}-{receipt}.{p.name}"
            try:
                os.rename(p, target)
            except FileNotFoundError:
                continue
            except OSError:
                tmp = self.tmp / target.name
                shutil.copyfile(p, tmp)
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
                _fsync_dir(self.ready)
                p.unlink(missing_ok=True)
            claimed.append(SpoolFile(target, receipt, arrived / 1e9, target.stat().st_size))
        if claimed:
            _fsync_dir(self.ready)
        return claimed

    def pending(self, limit_bytes: int | None = None, skip: set[str] | frozenset[str] = frozenset()) -> list[SpoolFile]:
        """Return the files in ``ready/`` in arrival order (at least one, and then only as many as
        fit in ``limit_bytes`` when given), leaving out the receipts in ``skip``."""
        files = []
        total = 0
        for p in sorted(self.ready.iterdir()):
            arrived_ns, _, rest = p.name.partition("-")
            if rest.split(".", 1)[0] in skip:
                continue
            try:
                size = p.stat().st_size
            except FileNotFoundError:
                continue
            if limit_bytes is not None and files and total + size > limit_bytes:
                break
            total += size
            files.append(SpoolFile(p, rest.split(".", 1)[0], int(arrived_ns) / 1e9, size))
        return files

    def depth(self) -> tuple[int, int]:
        """Return (files, bytes) waiting in ``ready/``."""
        n = size = 0
        for p in self.ready.iterdir():
            try:
                size += p.stat().st_size
            except FileNotFoundError:
                continue
            n += 1
        return n, size

    def remove(self, files: list[SpoolFile]) -> None:
        """Delete processed files (a file already gone is fine)."""
        for f in files:
            f.path.unlink(missing_ok=True)
