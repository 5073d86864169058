"""Finding input files and opening them: paths/folders/globs, gzip, encodings, format sniffing."""

from __future__ import annotations

import codecs
import glob
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from crmguard.errors import SourceParseError

_CHUNK = 1 << 20
_HEAD = 64 * 1024
_SKIP_SUFFIXES = (".md", ".txt", ".index.json", ".parquet", ".duckdb", ".db")


def expand(paths: list[str]) -> list[Path]:
    """Expand files, folders (recursively) and glob patterns into a sorted, de-duplicated list of
    files. Raises ``SourceParseError`` naming a path that matches nothing."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found += [q for q in sorted(p.rglob("*")) if q.is_file() and not _skipped(q)]
        elif p.is_file():
            found.append(p)
        else:
            matches = sorted(glob.glob(raw, recursive=True))
            if not matches:
                raise SourceParseError("no such file, folder or glob match", file=raw)
            for m in matches:
                found += expand([m]) if Path(m).is_dir() else [Path(m)]
    seen: set[Path] = set()
    unique = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _skipped(p: Path) -> bool:
    name = p.name.lower()
    return name.startswith(".") or name.endswith(_SKIP_SUFFIXES) or p.parent.name == "LICENSES"


@dataclass(frozen=True)
class Opened:
    """A file ready to parse: ``path`` is plain text on disk (decompressed when the input was
    gzip), ``kind`` is ``csv``, ``ndjson``, ``json_array`` or ``json_document``, ``encoding`` is what
    DuckDB should decode it as, and ``truncated`` holds the text of a partial last line when a gzip
    stream ended early (``truncated_line`` is its line number)."""

    original: Path
    path: Path
    kind: str
    encoding: str
    truncated: str | None = None
    truncated_line: int | None = None


def open_input(path: Path, workdir: Path, encoding: str | None = None) -> Opened:
    """Decompress (if gzip) into ``workdir`` and sniff ``path``'s format and encoding.

    Returns an :class:`Opened`. A gzip stream cut short keeps every complete line before the cut
    and reports the partial rest in ``truncated``. Raises ``SourceParseError`` for a file that is
    not gzip though named so, or that is gzip but yields nothing.
    """
    with open(path, "rb") as fh:
        magic = fh.read(2)
    truncated: str | None = None
    truncated_line: int | None = None
    readable = path
    if magic == b"\x1f\x8b":
        readable = workdir / (path.name.removesuffix(".gz") or "input")
        truncated, truncated_line = _gunzip(path, readable)
    elif path.suffix == ".gz":
        raise SourceParseError("named .gz but is not a gzip file", file=str(path), line=1)
    with open(readable, "rb") as fh:
        head = fh.read(_HEAD)
    enc = encoding or _sniff_encoding(head)
    return Opened(path, readable, _sniff_kind(head, enc), enc, truncated, truncated_line)


def _sniff_kind(head: bytes, enc: str) -> str:
    """The format of a file that starts with ``head`` (decoded as ``enc``)."""
    text = head.decode(enc, errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("["):
        return "json_array"
    if text.startswith("{"):
        first_line = text.split("\n", 1)[0].strip()
        return "ndjson" if _is_json_object(first_line) else "json_document"
    return "csv"


def _is_json_object(line: str) -> bool:
    import orjson

    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _sniff_encoding(head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8"


def _gunzip(src: Path, dst: Path) -> tuple[str | None, int | None]:
    """Decompress ``src`` (one or more gzip members) to ``dst``.

    On a truncated or corrupt stream keep every complete line decompressed so far and return
    (the partial last line's text, its line number); on a clean stream return (None, None).
    """
    lines = 0
    tail = b""
    problem: str | None = None
    with open(src, "rb") as fh, open(dst, "wb") as out:
        inflater = zlib.decompressobj(wbits=31)
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                if not inflater.eof:
                    problem = "stream ended before its end marker"
                break
            try:
                data = inflater.decompress(chunk)
                while inflater.eof and inflater.unused_data:
                    rest = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=31)
                    data += inflater.decompress(rest)
            except zlib.error as exc:
                problem = f"corrupt data ({exc})"
                break
            out.write(data)
            lines += data.count(b"\n")
            tail = (tail + data)[-_CHUNK:]
    if problem is None:
        return None, None
    if lines == 0 and not tail:
        raise SourceParseError(f"unreadable gzip stream: {problem}", file=str(src), line=1)
    # Half a record must not pass as a record: cut the partial line after the last newline.
    cut = tail.rfind(b"\n")
    partial = tail[cut + 1 :] if cut >= 0 else tail
    with open(dst, "rb+") as out:
        out.truncate(os.path.getsize(dst) - len(partial))
    return partial.decode("utf-8", errors="replace"), lines + 1


BATCH_BYTES = 512 << 20
"""Most input bytes parsed as one batch (a gzip input counts as ten times its size). CSV and NDJSON
stream in chunks whatever the batch; this bounds the temp disk of decompressed inputs."""
DOCUMENT_BATCH_BYTES = 64 << 20
"""Most bytes of JSON arrays in one batch: an array is read whole, so this bounds memory."""
BATCH_FILES = 256
"""Most files in one batch."""


def batches(files: list[Path], encoding: str | None = None) -> list[list[Path]]:
    """Split ``files`` into batches that one read and one mapping query can parse: files of the
    same kind and encoding (and, for CSV, the same header line), within :data:`BATCH_BYTES`,
    :data:`DOCUMENT_BATCH_BYTES` and :data:`BATCH_FILES`.

    Planning a source's mapping query costs more than parsing a small file, so a folder of many
    small logs goes much faster in batches. A file whose head is not clear (JSON that is not one
    object per line or an array, a header longer than the head, not gzip though named so, empty)
    gets a batch of its own, so it is read exactly as alone. Returns the batches in the order of
    their first file, each in input order. Reads only the first 64 kB of each file.
    """
    open_batches: dict[tuple[str, ...], tuple[list[Path], list[int]]] = {}
    planned: list[list[Path]] = []
    for path in files:
        key, size = _batch_key(path, encoding)
        if key is None:
            planned.append([path])
            continue
        limit = DOCUMENT_BATCH_BYTES if key[0] == "json_array" else BATCH_BYTES
        current = open_batches.get(key)
        if current is None or len(current[0]) >= BATCH_FILES or current[1][0] + size > limit:
            current = ([], [0])
            open_batches[key] = current
            planned.append(current[0])
        current[0].append(path)
        current[1][0] += size
    return planned


def _batch_key(path: Path, encoding: str | None) -> tuple[tuple[str, ...] | None, int]:
    """(what a file must share with the others of its batch, its size for the batch limit);
    the key is None when the file must go alone."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
            compressed = head[:2] == b"\x1f\x8b"
            if compressed:
                fh.seek(0)
                head = _gunzip_head(fh)
    except (OSError, zlib.error, EOFError):
        return None, 0
    if not head.strip() or (path.suffix == ".gz" and not compressed):
        return None, 0
    enc = encoding or _sniff_encoding(head)
    kind = _sniff_kind(head, enc)
    if compressed:
        size *= 10
    if kind in ("ndjson", "json_array"):
        return (kind, enc), size
    if kind != "csv":
        return None, size
    first_line = io.StringIO(head.decode(enc, errors="replace"), newline="").readline()
    if not first_line.endswith(("\n", "\r")):
        return None, size
    return (kind, enc, first_line.lstrip("\ufeff").strip()), size


def _gunzip_head(fh: BinaryIO) -> bytes:
    """The first :data:`_HEAD` bytes of gzip stream ``fh`` (fewer if it is shorter)."""
    inflater = zlib.decompressobj(wbits=31)
    head = b""
    data = fh.read(_CHUNK // 16)
    while data and len(head) < _HEAD:
        head += inflater.decompress(data, _HEAD - len(head))
        if inflater.eof:
            # Several gzip members are one stream, as _gunzip reads them.
            data = inflater.unused_data
            inflater = zlib.decompressobj(wbits=31)
        else:
            data = inflater.unconsumed_tail
        data = data or fh.read(_CHUNK // 16)
    return head
