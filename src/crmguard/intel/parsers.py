"""Parsers for the public lists ``crmguard intel update`` downloads, into intel-file rows.

Two input formats cover the default sources:

- ``addresses``: one IP address or CIDR network per line; blank lines and ``#`` comments are
  skipped. The TOR bulk exit list (one IPv4 address per line) and X4BNet's VPN / datacenter lists
  (one CIDR per line) are both this format.
- ``ip2asn``: iptoasn.com's ``ip2asn-v4.tsv`` / ``ip2asn-v6.tsv``: tab-separated
  ``range_start, range_end, AS_number, country_code, AS_description`` with inclusive ranges of
  addresses. Ranges are converted to the fewest CIDR networks covering exactly the same
  addresses; AS 0 ("Not routed") is skipped.

A parser takes the downloaded text and a name for messages, and returns a :class:`ParseResult`:
the rows, how many lines were skipped on purpose, and the lines set aside with their number and
reason (a bad line never stops the rest).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from crmguard.intel.formats import Problem

MAX_PROBLEMS = 100
"""Problems kept per source (all are counted)."""

Row = tuple[int, int, int, str, tuple[str, ...]]
"""One network: (IP version, first address as int, prefix length, CIDR text, the other CSV values).
The first three give the sort order of the written file."""

_COUNTRY = re.compile(r"[A-Z]{2}")
_MAX_ASN = 2**32 - 1


@dataclass
class ParseResult:
    """What one downloaded list gave: ``rows``, ``lines`` read, ``skipped`` on purpose (blank,
    comment, not routed), ``bad_lines`` set aside, and the first :data:`MAX_PROBLEMS` of them."""

    rows: list[Row] = field(default_factory=list)
    lines: int = 0
    skipped: int = 0
    bad_lines: int = 0
    problems: list[Problem] = field(default_factory=list)

    def set_aside(self, origin: str, line: int, reason: str, text: str) -> None:
        """Count one bad line (and keep it while fewer than :data:`MAX_PROBLEMS` are kept)."""
        self.bad_lines += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(origin, line, reason, text))


def parse_addresses(text: str, origin: str, values: tuple[str, ...] = ()) -> ParseResult:
    """Parse a list of IP addresses / CIDR networks, one per line (``#`` starts a comment).

    Takes the list's text, a name for messages (``origin``) and the values to put after the CIDR
    in every row (for ``anonymizers.csv``: kind and source). A single address becomes a /32 or
    /128; host bits of a network are cleared (``10.1.2.3/8`` -> ``10.0.0.0/8``). Returns the rows.
    """
    result = ParseResult()
    for number, line in enumerate(text.splitlines(), start=1):
        result.lines += 1
        content = line.split("#", 1)[0].strip()
        if not content:
            result.skipped += 1
            continue
        if len(content.split()) != 1:
            result.set_aside(origin, number, "expected one address or network per line", line)
            continue
        try:
            network = ipaddress.ip_network(content, strict=False)
        except ValueError:
            result.set_aside(origin, number, "not an IP address or CIDR network", line)
            continue
        start = int(network.network_address)
        result.rows.append((network.version, start, network.prefixlen, network.with_prefixlen, values))
    return result


def parse_ip2asn(text: str, origin: str, values: tuple[str, ...] = ()) -> ParseResult:
    """Parse iptoasn.com's ``ip2asn-v4.tsv`` / ``ip2asn-v6.tsv`` (tab-separated range_start,
    range_end, AS number, country code, AS description; no header).

    Takes the file's text and a name for messages (``values`` is unused; every parser takes it).
    Returns rows for ``asn.csv`` (cidr, asn, as_org, country): each range as the fewest CIDR
    networks covering it exactly. AS 0 ("Not routed") is skipped; a country that is not a two-letter
    code ("None", "Unknown") is left empty.
    """
    del values
    result = ParseResult()
    for number, line in enumerate(text.splitlines(), start=1):
        result.lines += 1
        if not line.strip():
            result.skipped += 1
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 5:
            result.set_aside(origin, number, f"expected 5 tab-separated fields, found {len(fields)}", line)
            continue
        try:
            version, start = ip_to_int(fields[0].strip())
            end_version, end = ip_to_int(fields[1].strip())
        except ValueError:
            result.set_aside(origin, number, "range start or end is not an IP address", line)
            continue
        if version != end_version or start > end:
            result.set_aside(origin, number, "range end is before its start or of another IP version", line)
            continue
        try:
            asn = int(fields[2].strip())
        except ValueError:
            asn = -1
        if not 0 <= asn <= _MAX_ASN:
            result.set_aside(origin, number, "AS number is not an integer in 0..4294967295", line)
            continue
        if asn == 0:
            result.skipped += 1
            continue
        country = fields[3].strip().upper()
        row_values = (str(asn), fields[4].strip(), country if _COUNTRY.fullmatch(country) else "")
        for first, prefix in range_to_cidrs(start, end, 32 if version == 4 else 128):
            result.rows.append((version, first, prefix, f"{int_to_ip(version, first)}/{prefix}", row_values))
    return result


PARSERS: dict[str, Callable[[str, str, tuple[str, ...]], ParseResult]] = {
    "addresses": parse_addresses,
    "ip2asn": parse_ip2asn,
}
"""Source format name -> parser."""


def ip_to_int(text: str) -> tuple[int, int]:
    """Return (IP version, address as int) of an IPv4 or IPv6 literal; raises ValueError otherwise.

    Uses the C ``inet_pton`` (strict: no shortened IPv4 forms like ``10.1``), which is many times
    faster than :mod:`ipaddress` on the million lines of an IP-to-ASN dump.
    """
    family, version = (socket.AF_INET6, 6) if ":" in text else (socket.AF_INET, 4)
    try:
        packed = socket.inet_pton(family, text)
    except OSError as exc:
        raise ValueError(f"not an IPv{version} address: {text!r}") from exc
    return version, int.from_bytes(packed, "big")


def int_to_ip(version: int, number: int) -> str:
    """Return the canonical text of address ``number`` of IP ``version`` (4 or 6)."""
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, number.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, number.to_bytes(16, "big"))


def range_to_cidrs(start: int, end: int, bits: int) -> list[tuple[int, int]]:
    """Split the inclusive address range ``start..end`` of a ``bits``-bit family (32 or 128) into
    the fewest CIDR networks, returned in order as (first address, prefix length)."""
    networks: list[tuple[int, int]] = []
    while start <= end:
        aligned = (start & -start).bit_length() - 1 if start else bits  # largest block starting here
        fits = (end - start + 1).bit_length() - 1  # largest block not passing the end
        size = min(aligned, fits)
        networks.append((start, bits - size))
        start += 1 << size
    return networks
