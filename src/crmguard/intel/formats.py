"""The intel folder's files: names, CSV headers, the manifest, and how they are written.

Layout of the intel folder (default ``<home>/intel``)::

    anonymizers.csv   cidr,kind,source              networks of anonymizing services
    asn.csv           cidr,asn,as_org,country       network -> autonomous system
    manifest.json     where each file came from, when, how many rows, its sha256

Both CSV files are UTF-8 with a header line, one network per row in CIDR notation (IPv4 or IPv6;
a single address is a /32 or /128). They are plain on purpose: a user can read, grep and hand-edit
them, and any tool can produce them. See docs/intel.md.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from crmguard.errors import CrmguardError
from crmguard.utc import iso_z

ANONYMIZERS_FILE = "anonymizers.csv"
ASN_FILE = "asn.csv"
MANIFEST_FILE = "manifest.json"

ANONYMIZERS_HEADER: tuple[str, ...] = ("cidr", "kind", "source")
ASN_HEADER: tuple[str, ...] = ("cidr", "asn", "as_org", "country")
HEADERS: dict[str, tuple[str, ...]] = {ANONYMIZERS_FILE: ANONYMIZERS_HEADER, ASN_FILE: ASN_HEADER}

KINDS: tuple[str, ...] = ("tor", "vpn", "proxy", "hosting")
"""Anonymizer kinds, most telling first: when an address is on several lists, the first kind here
wins (a TOR exit inside a datacenter range is reported as ``tor``)."""

ANONYMIZING_KINDS: tuple[str, ...] = ("tor", "vpn", "proxy")
"""Kinds that set ``is_anonymizer``. ``hosting`` (datacenter, cloud) does not: integration users
and cloud apps legitimately run there, so rules that care test ``anonymizer_kind = 'hosting'``."""

MANIFEST_FORMAT = 1


class IntelError(CrmguardError):
    """The intel folder or one of its sources could not be read or written."""


@dataclass(frozen=True)
class Problem:
    """One input line set aside: in which file or source (``file``), at which line (1-based, the
    header counts), why, and its text as read."""

    file: str
    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}: {self.text[:120]!r}"


def intel_folder(home: str | Path) -> Path:
    """Return the intel folder of the workspace ``home`` (``<home>/intel``); nothing is created."""
    return Path(home) / "intel"


def utc_now() -> str:
    """Return the current UTC time as ISO 8601 with a ``Z`` (seconds precision)."""
    return iso_z(dt.datetime.now(dt.UTC).replace(microsecond=0))


def write_csv_atomic(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write ``rows`` under ``header`` as CSV to ``path`` (UTF-8, ``\\n`` line ends, quoting only
    when needed), streamed through a temporary file and renamed into place like
    :func:`write_atomic`. Line breaks inside values become spaces, so one row is one line."""

    def write(fh: BinaryIO) -> None:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if v is None else str(v).replace("\r", " ").replace("\n", " ") for v in row])
        text.flush()
        text.detach()

    _replace(path, write)


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, so
    readers see the old file or the new one, never half of it."""
    _replace(path, lambda fh: fh.write(data))


def _replace(path: Path, write: Callable[[BinaryIO], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_manifest(folder: Path) -> dict[str, Any]:
    """Return the folder's manifest (``{"format": 1, "files": {}}`` when there is none yet).

    Raises :class:`IntelError` when the manifest exists but is not valid JSON.
    """
    path = folder / MANIFEST_FILE
    if not path.exists():
        return {"format": MANIFEST_FORMAT, "files": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IntelError(f"unreadable manifest: {exc}", file=str(path)) from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise IntelError("manifest has no 'files' object", file=str(path))
    return manifest


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` as the folder's ``manifest.json`` (atomically, keys sorted)."""
    write_atomic(folder / MANIFEST_FILE, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))
