"""``crmguard intel update``: download the public lists and rewrite the intel files from them.

Each :class:`Source` is one downloadable list in a known format, feeding one intel file
(``anonymizers.csv`` or ``asn.csv``). A file is rewritten only when every one of its sources was
downloaded and gave rows; otherwise the previous file (and its manifest entry) stays and the
failure is reported, so a network error or a moved URL never empties the lists detection relies
on. Bad lines inside a list are set aside and reported with their line number; they never stop
the update.

The download function is a parameter (``fetch(url) -> bytes``) so tests, air-gapped mirrors and
proxies can supply their own; the default uses :mod:`urllib`. Gzip downloads are recognised by
their magic bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmguard import __version__
from crmguard.intel.formats import (
    ANONYMIZERS_FILE,
    ASN_FILE,
    HEADERS,
    KINDS,
    MANIFEST_FORMAT,
    IntelError,
    Problem,
    read_manifest,
    sha256_file,
    utc_now,
    write_csv_atomic,
    write_manifest,
)
from crmguard.intel.parsers import PARSERS, ParseResult, Row

Fetcher = Callable[[str], bytes]
"""Downloads one URL and returns its bytes; raises on any failure."""

MAX_DOWNLOAD = 512 * 1024 * 1024
"""Largest download accepted (bytes): the IP-to-ASN dumps are tens of MB."""

_TARGETS = {"addresses": ANONYMIZERS_FILE, "ip2asn": ASN_FILE}

TOR_LICENCE = "Tor Project data (Tor Metrics data is CC0; no licence stated on the list itself: check)"
X4B_LICENCE = "MIT (X4BNet/lists_vpn)"
IPTOASN_LICENCE = "PDDL 1.0 (iptoasn.com)"
_X4B = "https://raw.githubusercontent.com/X4BNet/lists_vpn/main/output"


@dataclass(frozen=True)
class Source:
    """One public list: a ``name`` (also the ``source`` column of ``anonymizers.csv``), its
    ``url``, its ``format`` (``addresses`` or ``ip2asn``), for ``addresses`` lists the anonymizer
    ``kind`` of every network listed, and its ``licence`` (recorded in the manifest)."""

    name: str
    url: str
    format: str
    kind: str | None = None
    licence: str = ""

    def __post_init__(self) -> None:
        if self.format not in _TARGETS:
            raise ValueError(f"source {self.name}: unknown format {self.format!r} (addresses or ip2asn)")
        if self.format == "addresses" and self.kind not in KINDS:
            raise ValueError(f"source {self.name}: kind must be one of {', '.join(KINDS)}")

    @property
    def target(self) -> str:
        """The intel file this source feeds."""
        return _TARGETS[self.format]

    def row_values(self) -> tuple[str, ...]:
        """The values written after the CIDR in every row of this source."""
        return (self.kind or "", self.name) if self.format == "addresses" else ()


DEFAULT_SOURCES: tuple[Source, ...] = (
    Source("tor-exits", "https://check.torproject.org/torbulkexitlist", "addresses", "tor", TOR_LICENCE),
    Source("x4bnet-vpn-v4", f"{_X4B}/vpn/ipv4.txt", "addresses", "vpn", X4B_LICENCE),
    Source("x4bnet-vpn-v6", f"{_X4B}/vpn/ipv6.txt", "addresses", "vpn", X4B_LICENCE),
    Source("x4bnet-datacenter-v4", f"{_X4B}/datacenter/ipv4.txt", "addresses", "hosting", X4B_LICENCE),
    Source("x4bnet-datacenter-v6", f"{_X4B}/datacenter/ipv6.txt", "addresses", "hosting", X4B_LICENCE),
    Source("iptoasn-v4", "https://iptoasn.com/data/ip2asn-v4.tsv.gz", "ip2asn", None, IPTOASN_LICENCE),
    Source("iptoasn-v6", "https://iptoasn.com/data/ip2asn-v6.tsv.gz", "ip2asn", None, IPTOASN_LICENCE),
)


@dataclass
class SourceResult:
    """What happened to one source: when it was fetched, the sha256 of the download, rows
    parsed, lines skipped on purpose and set aside (with the first problems), or the ``error``
    that made it unusable."""

    source: Source
    fetched_at: str
    sha256: str | None = None
    rows: int = 0
    skipped: int = 0
    bad_lines: int = 0
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None

    def manifest_entry(self) -> dict[str, Any]:
        """This source as recorded in the manifest."""
        return {
            "name": self.source.name, "url": self.source.url, "format": self.source.format,
            "fetched_at": self.fetched_at, "sha256": self.sha256, "rows": self.rows, "skipped": self.skipped,
            "bad_lines": self.bad_lines, "licence": self.source.licence,
        }


@dataclass(frozen=True)
class FileResult:
    """One intel file after the update: its ``rows`` (now on disk) and whether it was
    ``replaced`` (False: a source failed and the previous file was kept, or none existed)."""

    name: str
    path: Path
    rows: int
    replaced: bool


@dataclass
class UpdateReport:
    """The outcome of :func:`update`: per source and per file."""

    folder: Path
    sources: list[SourceResult]
    files: list[FileResult]

    @property
    def failed(self) -> list[SourceResult]:
        """Sources that could not be used (download error, not gzip, no valid rows)."""
        return [s for s in self.sources if s.error]

    @property
    def bad_lines(self) -> int:
        """Lines set aside over all sources."""
        return sum(s.bad_lines for s in self.sources)

    @property
    def problems(self) -> list[Problem]:
        """The kept problems of all sources, in source order."""
        return [p for s in self.sources for p in s.problems]


def urllib_fetch(url: str, timeout: float = 120.0) -> bytes:
    """Download ``url`` (http, https or file) with :mod:`urllib` and return its bytes.

    Raises :class:`IntelError` for another scheme or a download over :data:`MAX_DOWNLOAD`, and
    urllib's own errors (``URLError``, ``TimeoutError`` ...) when the download fails.
    """
    if urllib.parse.urlsplit(url).scheme not in ("http", "https", "file"):
        raise IntelError(f"refusing to download {url!r}: only http, https and file URLs")
    request = urllib.request.Request(url, headers={"User-Agent": f"crmguard/{__version__} (intel update)"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # scheme checked above
        data: bytes = response.read(MAX_DOWNLOAD + 1)
    if len(data) > MAX_DOWNLOAD:
        raise IntelError(f"download larger than {MAX_DOWNLOAD} bytes", file=url)
    return data


def update(
    folder: str | Path,
    sources: Sequence[Source] = DEFAULT_SOURCES,
    fetch: Fetcher = urllib_fetch,
    on_source: Callable[[Source], None] | None = None,
) -> UpdateReport:
    """Download ``sources`` with ``fetch`` and rewrite the intel files in ``folder`` from them.

    Each file is written to a temporary name and renamed into place, then the manifest is
    rewritten the same way; a file whose sources did not all succeed is left as it was.
    ``on_source`` is called before each download (for progress display). Returns the
    :class:`UpdateReport`; raises :class:`IntelError` only when the folder cannot be written, and
    ValueError when two sources share a name.
    """
    folder = Path(folder)
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique: {', '.join(sorted(n for n in set(names) if names.count(n) > 1))}")
    try:
        manifest = read_manifest(folder)
    except IntelError:
        manifest = {"files": {}}  # a damaged manifest is rebuilt; the files it described are rewritten
    results: list[SourceResult] = []
    parsed: dict[str, ParseResult] = {}
    for source in sources:
        if on_source:
            on_source(source)
        result, parse = _fetch_and_parse(source, fetch)
        results.append(result)
        if parse is not None:
            parsed[source.name] = parse
    files: list[FileResult] = []
    for target in dict.fromkeys(s.target for s in sources):
        mine = [r for r in results if r.source.target == target]
        path = folder / target
        if any(r.error for r in mine):
            files.append(FileResult(target, path, manifest["files"].get(target, {}).get("rows", 0), False))
            continue
        rows = _merge([row for r in mine for row in parsed.pop(r.source.name).rows])
        try:
            write_csv_atomic(path, HEADERS[target], ((row[3], *row[4]) for row in rows))
        except OSError as exc:
            raise IntelError(f"could not write: {exc}", file=str(path)) from exc

        manifest["files"][target] = {
            "rows": len(rows), "sha256": sha256_file(path), "written_at": utc_now(),
            "sources": [r.manifest_entry() for r in mine],
        }
        files.append(FileResult(target, path, len(rows), True))
    if any(f.replaced for f in files):
        manifest["format"] = MANIFEST_FORMAT
        manifest["updated_at"] = utc_now()
        try:
            write_manifest(folder, manifest)
        except OSError as exc:
            raise IntelError(f"could not write the manifest: {exc}", file=str(folder)) from exc
    return UpdateReport(folder, results, files)


def _fetch_and_parse(source: Source, fetch: Fetcher) -> tuple[SourceResult, ParseResult | None]:
    result = SourceResult(source, utc_now())
    try:
        data = fetch(source.url)
    except Exception as exc:  # any download failure is reported; the others go on
        result.error = f"download failed: {exc}"
        return result, None
    result.sha256 = hashlib.sha256(data).hexdigest()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            result.error = f"not a readable gzip file: {exc}"
            return result, None
    parsed = PARSERS[source.format](data.decode("utf-8", errors="replace"), source.name, source.row_values())
    result.rows, result.skipped = len(parsed.rows), parsed.skipped
    result.bad_lines, result.problems = parsed.bad_lines, parsed.problems
    if not parsed.rows:
        result.error = f"no valid rows in {parsed.lines} lines (not a {source.format} list?)"
        return result, None
    return result, parsed


def _merge(rows: list[Row]) -> list[Row]:
    """Rows of one file ordered by network, duplicates (same network and values) once. Sorting
    puts duplicates side by side, so no second copy of a million rows is needed to find them."""
    rows.sort(key=lambda r: (r[0], r[1], r[2], r[4]))
    return [r for i, r in enumerate(rows) if i == 0 or r != rows[i - 1]]
