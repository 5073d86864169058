"""DuckDB macros for IP addresses and networks: text -> 128-bit number, CIDR -> range, membership.

Every address lives in one number space, ``UHUGEINT`` (128 bits): an IPv6 address is its own
number; an IPv4 address a.b.c.d is its IPv4-mapped IPv6 address ``::ffff:a.b.c.d``. So one range
table and one range join serve both families, and ``::ffff:1.2.3.4`` (how dual-stack servers log
IPv4 clients) is the same address as ``1.2.3.4``. A network keeps its family: an IPv6 network
never contains an IPv4 address, even ``::/0``, so ``cidr_match`` answers as Python's
``ipaddress`` does.

Macros (all NULL-safe, vectorised, no Python per row):

- ``ip_num(text) -> UHUGEINT``: the address as a number; NULL unless ``text`` is exactly an IPv4
  literal (dotted quad, no leading zeros) or an IPv6 literal (``::`` compression, upper or lower
  case, a dotted IPv4 tail, an ignored ``%zone``); surrounding spaces are not trimmed (the
  ``src_ip`` column never has them).
- ``ip4_num(text) -> UBIGINT`` and ``ip6_num(text) -> UHUGEINT``: the same per family.
- ``ip_is_v4(num) -> BOOLEAN``: whether a number from ``ip_num`` is an IPv4 address.
- ``cidr_range(text) -> STRUCT(lo UHUGEINT, hi UHUGEINT)``: first and last address of a network
  (``10.0.0.0/8``, ``2001:db8::/32``, or a single address); host bits are ignored
  (``10.1.2.3/8`` is ``10.0.0.0/8``); NULL when ``text`` is not a network.
- ``cidr_match(ip, cidr) -> BOOLEAN``: true when ``ip`` is an address inside network ``cidr``;
  false when it is outside or ``ip`` is not an address at all; NULL when ``ip`` is NULL or
  ``cidr`` is not a network (rule compilers should reject those up front). This is the Sigma
  ``cidr`` modifier.

Lambda parameters start with ``_`` so they never shadow a column of the caller's table.
"""

from __future__ import annotations

import duckdb

V4_LO = 0xFFFF_0000_0000
"""``ip_num('0.0.0.0')``: IPv4 addresses are the block ``::ffff:0:0/96``."""
V4_HI = 0xFFFF_FFFF_FFFF
"""``ip_num('255.255.255.255')``."""

_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4_RE = f"({_OCTET}\\.){{3}}{_OCTET}"
_U128 = "UHUGEINT"

MACROS: tuple[str, ...] = (
    # Macro arguments are pasted wherever they are used, so each macro names its argument as few
    # times as it can (string_split once beats split_part four times, ~2x on a million CIDRs).
    f"CREATE OR REPLACE TEMP MACRO ip4_num(s) AS CASE WHEN regexp_full_match(s, '{_V4_RE}') THEN "
    "list_reduce(list_transform(string_split(s, '.'), lambda _o: CAST(_o AS UBIGINT)), lambda _a, _b: _a * 256 + _b) END",
    # An IPv6 text ending in a dotted IPv4 part (::ffff:1.2.3.4) with that part as two hex groups.
    "CREATE OR REPLACE TEMP MACRO ip6_hex_tail(s) AS CASE WHEN strpos(s, '.') = 0 THEN s ELSE "
    "list_transform([ip4_num(regexp_extract(s, '[^:]*$'))], lambda _v: "
    "regexp_replace(s, '[^:]*$', '') || printf('%x:%x', _v // 65536, _v % 65536))[1] END",
    # The 8 groups of a lower-case hex IPv6 text, '::' expanded; NULL (or not 8) when malformed.
    "CREATE OR REPLACE TEMP MACRO ip6_groups(s) AS CASE "
    "WHEN NOT regexp_full_match(s, '[0-9a-f:]{2,39}') OR strpos(s, ':::') > 0 THEN NULL "
    "WHEN strpos(s, '::') = 0 THEN string_split(s, ':') "
    "WHEN strpos(substr(s, strpos(s, '::') + 2), '::') > 0 THEN NULL "
    "ELSE list_transform([[list_filter(string_split(split_part(s, '::', 1), ':'), lambda _g: _g <> ''), "
    "list_filter(string_split(split_part(s, '::', 2), ':'), lambda _g: _g <> '')]], lambda _p: CASE "
    "WHEN len(_p[1]) + len(_p[2]) <= 7 THEN "
    "list_concat(_p[1], list_transform(range(8 - len(_p[1]) - len(_p[2])), lambda _i: '0'), _p[2]) END)[1] END",
    # The lambdas bind each intermediate once.
    "CREATE OR REPLACE TEMP MACRO ip6_num(s) AS "
    "list_transform([ip6_hex_tail(split_part(lower(s), '%', 1))], lambda _t: "
    "list_transform([ip6_groups(_t)], lambda _g: CASE "
    "WHEN len(_g) = 8 AND len(list_filter(_g, lambda _x: NOT regexp_full_match(_x, '[0-9a-f]{1,4}'))) = 0 THEN "
    f"list_reduce(list_transform(_g, lambda _x: CAST('0x' || _x AS {_U128})), lambda _a, _b: _a * 65536 + _b) "
    "END)[1])[1]",
    f"CREATE OR REPLACE TEMP MACRO ip_num(s) AS CASE WHEN strpos(s, ':') > 0 THEN ip6_num(s) "
    f"ELSE CAST(ip4_num(s) AS {_U128}) + CAST({V4_LO} AS {_U128}) END",
    f"CREATE OR REPLACE TEMP MACRO ip_is_v4(n) AS n BETWEEN CAST({V4_LO} AS {_U128}) AND CAST({V4_HI} AS {_U128})",
    # Host bits of a CIDR text: 0 for a bare address, NULL for a bad prefix.
    "CREATE OR REPLACE TEMP MACRO cidr_host_bits(s) AS CASE "
    "WHEN strpos(s, '/') = 0 THEN 0 "
    "WHEN NOT regexp_full_match(s, '[^/]+/[0-9]{1,3}') THEN NULL "
    "WHEN strpos(s, ':') > 0 THEN CASE WHEN CAST(split_part(s, '/', 2) AS INTEGER) <= 128 "
    "THEN 128 - CAST(split_part(s, '/', 2) AS INTEGER) END "
    "ELSE CASE WHEN CAST(split_part(s, '/', 2) AS INTEGER) <= 32 THEN 32 - CAST(split_part(s, '/', 2) AS INTEGER) END "
    "END",
    f"CREATE OR REPLACE TEMP MACRO cidr_host_mask(b) AS CASE WHEN b >= 128 THEN ~CAST(0 AS {_U128}) "
    f"ELSE (CAST(1 AS {_U128}) << CAST(b AS {_U128})) - CAST(1 AS {_U128}) END",
    # One lambda level only: nesting another to bind trim(c) once measured 2-3x slower.
    "CREATE OR REPLACE TEMP MACRO cidr_range(c) AS "
    "list_transform([[ip_num(split_part(trim(c), '/', 1)), cidr_host_mask(cidr_host_bits(trim(c)))]], lambda _p: "
    "CASE WHEN _p[1] IS NOT NULL AND _p[2] IS NOT NULL THEN {'lo': _p[1] & ~_p[2], 'hi': _p[1] | _p[2]} END)[1]",
    f"CREATE OR REPLACE TEMP MACRO cidr_match(ip, cidr) AS list_transform([cidr_range(cidr)], lambda _r: "
    "CASE WHEN ip IS NULL OR _r IS NULL THEN NULL ELSE list_transform([ip_num(ip)], lambda _n: "
    f"coalesce(_n BETWEEN _r.lo AND _r.hi AND (NOT ip_is_v4(_n) OR (_r.lo >= CAST({V4_LO} AS {_U128}) "
    f"AND _r.hi <= CAST({V4_HI} AS {_U128}))), false))[1] END)[1]",
)


def register_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Define the IP macros (``ip_num``, ``cidr_range``, ``cidr_match`` ...) in ``con``, as
    temporary macros (nothing is written into a database file). Safe to call again."""
    for macro in MACROS:
        con.execute(macro)
