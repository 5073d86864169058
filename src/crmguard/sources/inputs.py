"""Finding input files and opening them: paths/folders/globs, gzip, encodings, format sniffing."""

from __future__ import annotations

import codecs
import glob
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from crmguard.errors import SourceParseError

_CHUNK = 1 << 20
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
        head = fh.read(64 * 1024)
    enc = encoding or _sniff_encoding(head)
    text = head.decode(enc if enc != "utf-16" else "utf-16", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("["):
        kind = "json_array"
    elif text.startswith("{"):
        first_line = text.split("\n", 1)[0].strip()
        kind = "ndjson" if _is_json_object(first_line) else "json_document"
    else:
        kind = "csv"
    return Opened(path, readable, kind, enc, truncated, truncated_line)


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
