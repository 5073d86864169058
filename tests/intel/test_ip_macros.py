"""The IP macros agree with Python's ``ipaddress``: ``ip_num`` on any address text, ``cidr_match``
on IPv4 and IPv6 networks (examples, then generated cases)."""

from __future__ import annotations

import ipaddress

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmguard.intel import register_macros
from crmguard.intel.macros import V4_LO


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    register_macros(con)
    register_macros(con)  # idempotent
    return con


def sql_ip_num(con: duckdb.DuckDBPyConnection, text: str | None) -> int | None:
    return con.execute("SELECT ip_num(?)", [text]).fetchall()[0][0]


def py_ip_num(text: str) -> int | None:
    """The reference: IPv4 at its IPv4-mapped IPv6 number, IPv6 as itself, None if not an address."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return V4_LO + int(address) if address.version == 4 else int(address)


@pytest.mark.parametrize(
    "text",
    [
        "1.2.3.4", "0.0.0.0", "255.255.255.255", "::", "::1", "1::", "2001:db8::1", "2001:DB8::ABCD",
        "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4",
        # not addresses
        "Salesforce.com IP", "", "null", "w.x.y.z", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1::2::3", "1:::2",
        ":1:2:3:4:5:6:7", "1:2:3:4:5:6:7:", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "12345::", "g::1", "::ffff:1.2.3",
        "1:2:3:4:5:6:7:1.2.3.4", "1.2.3.4::", " 10.0.0.1", "::1 ", "1.2.3.-4",
    ],
)
def test_ip_num_matches_python(con, text: str) -> None:
    assert sql_ip_num(con, text) == py_ip_num(text)


def test_ip_num_ignores_a_zone_and_null_is_null(con) -> None:
    assert sql_ip_num(con, "fe80::1%eth0") == int(ipaddress.IPv6Address("fe80::1"))
    assert sql_ip_num(con, None) is None


def test_ipv4_mapped_ipv6_is_the_ipv4_address(con) -> None:
    assert sql_ip_num(con, "::ffff:10.1.2.3") == sql_ip_num(con, "10.1.2.3")
    assert con.execute("SELECT ip_is_v4(ip_num('::ffff:10.1.2.3')), ip_is_v4(ip_num('::1'))").fetchall() == [(True, False)]


addresses_v4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
addresses_v6 = st.builds(
    lambda n, shift, form: form(ipaddress.IPv6Address(n >> shift)),
    st.integers(0, 2**128 - 1), st.sampled_from([0, 0, 16, 64, 100, 120]),
    st.sampled_from([lambda a: a.compressed, lambda a: a.exploded, lambda a: a.compressed.upper()]),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(addresses_v4, addresses_v6), min_size=1, max_size=100))
def test_ip_num_generated(con, texts: list[str]) -> None:
    # One query per batch: planning the macros costs more than running them on 100 rows.
    got = con.execute(
        "SELECT CAST(ip_num(c.t) AS VARCHAR) FROM (SELECT unnest(?) AS c) ORDER BY c.i",
        [[{"i": i, "t": t} for i, t in enumerate(texts)]],
    ).fetchall()
    assert [None if n is None else int(n) for (n,) in got] == [py_ip_num(t) for t in texts]


def cidr_match(con, ip: str | None, cidr: str) -> bool | None:
    return con.execute("SELECT cidr_match(?, ?)", [ip, cidr]).fetchall()[0][0]


@pytest.mark.parametrize(
    ("ip", "cidr", "expected"),
    [
        ("10.1.2.3", "10.0.0.0/8", True),
        ("10.0.0.0", "10.0.0.0/8", True),  # first address
        ("10.255.255.255", "10.0.0.0/8", True),  # last address
        ("11.0.0.0", "10.0.0.0/8", False),
        ("9.255.255.255", "10.0.0.0/8", False),
        ("10.1.2.3", "10.1.2.3", True),  # a bare address is a /32
        ("10.1.2.3", "10.1.2.3/32", True),
        ("10.1.2.4", "10.1.2.3/32", False),
        ("10.1.2.3", "10.9.9.9/8", True),  # host bits of the network are ignored
        ("8.8.8.8", "0.0.0.0/0", True),
        ("2001:db8::7", "2001:db8::/32", True),
        ("2001:db9::7", "2001:db8::/32", False),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::/32", True),
        ("::1", "::/0", True),
        ("1.2.3.4", "::/0", False),  # an IPv6 network holds no IPv4 address
        ("2001:db8::1", "0.0.0.0/0", False),
        ("::ffff:10.0.0.1", "10.0.0.0/8", True),  # IPv4-mapped is the IPv4 address
        ("10.0.0.1", "::ffff:10.0.0.0/104", True),
        ("Salesforce.com IP", "10.0.0.0/8", False),  # not an address: not in any network
        (None, "10.0.0.0/8", None),
        ("10.0.0.1", "10.0.0.0/33", None),  # not a network
        ("10.0.0.1", "10.0.0.0/8/1", None),
        ("10.0.0.1", "garbage", None),
        ("2001:db8::1", "2001:db8::/129", None),
    ],
)
def test_cidr_match(con, ip: str | None, cidr: str, expected: bool | None) -> None:
    assert cidr_match(con, ip, cidr) is expected


def py_cidr_match(ip: str, cidr: str) -> bool:
    address = ipaddress.ip_address(ip)
    network = ipaddress.ip_network(cidr, strict=False)
    return address.version == network.version and address in network


@st.composite
def address_and_network(draw: st.DrawFn) -> tuple[str, str]:
    """A network of either family, and an address at its edges, just outside, anywhere, or of the
    other family."""
    version = draw(st.sampled_from([4, 6]))
    bits = 32 if version == 4 else 128
    base = draw(st.integers(0, 2**bits - 1))
    network = ipaddress.ip_network((base, draw(st.integers(0, bits))), strict=False)
    first, size = int(network.network_address), network.num_addresses
    number = draw(st.sampled_from([first, first + size - 1, first - 1, first + size, base])) % 2**bits
    if draw(st.booleans()):  # the other family: never a match
        return str(ipaddress.IPv6Address(number) if version == 4 else ipaddress.IPv4Address(number % 2**32)), str(network)
    return str(ipaddress.ip_address(number) if version == 4 else ipaddress.IPv6Address(number)), str(network)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(address_and_network(), min_size=1, max_size=100))
def test_cidr_match_generated(con, cases: list[tuple[str, str]]) -> None:
    got = con.execute(
        "SELECT cidr_match(c.ip, c.cidr) FROM (SELECT unnest(?) AS c) ORDER BY c.i",
        [[{"i": i, "ip": ip, "cidr": cidr} for i, (ip, cidr) in enumerate(cases)]],
    ).fetchall()
    assert [m for (m,) in got] == [py_cidr_match(ip, cidr) for ip, cidr in cases]


def test_macros_do_not_trip_over_columns_named_like_their_lambda_variables(con) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE t AS SELECT 'a' AS n, 'b' AS r, 'c' AS s, '10.0.0.1' AS ip")
    assert con.execute("SELECT cidr_match(ip, '10.0.0.0/8'), ip_num(ip) = ip_num('10.0.0.1') FROM t").fetchall() == [
        (True, True)
    ]
