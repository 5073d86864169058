"""Each public-list format parsed from small in-test strings: rows, skipped lines, bad lines with
their line numbers."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from crmguard.intel.parsers import parse_addresses, parse_ip2asn, range_to_cidrs


def cidrs(result) -> list[str]:
    return [row[3] for row in result.rows]


def test_tor_exit_list_gives_host_networks_for_ipv4_and_ipv6() -> None:
    result = parse_addresses("185.220.101.1\n2a0b:f4c2:2::1\n", "tor-exits", ("tor", "tor-exits"))
    assert cidrs(result) == ["185.220.101.1/32", "2a0b:f4c2:2::1/128"]
    assert [row[4] for row in result.rows] == [("tor", "tor-exits")] * 2
    assert (result.lines, result.skipped, result.bad_lines) == (2, 0, 0)


def test_x4bnet_cidr_list_with_comments_blanks_and_host_bits() -> None:
    text = "# VPN ranges\n198.51.100.0/24\n\n203.0.113.7/25  # host bits set\n2001:db8:100::/48\n"
    result = parse_addresses(text, "x4bnet-vpn-v4")
    assert cidrs(result) == ["198.51.100.0/24", "203.0.113.0/25", "2001:db8:100::/48"]
    assert (result.skipped, result.bad_lines) == (2, 0)


def test_bad_address_lines_are_counted_with_their_line_numbers_and_the_rest_kept() -> None:
    text = "185.220.101.1\n<html>\n10.0.0.0/33\n1.2.3.4 5.6.7.8\n256.1.1.1\n01.2.3.4\n185.220.101.2\n"
    result = parse_addresses(text, "tor-exits")
    assert cidrs(result) == ["185.220.101.1/32", "185.220.101.2/32"]
    assert result.bad_lines == 5
    assert [(p.file, p.line) for p in result.problems] == [("tor-exits", n) for n in (2, 3, 4, 5, 6)]
    assert result.problems[0].text == "<html>"
    assert "one address" in result.problems[2].reason


def test_ip2asn_v4_ranges_become_exact_cidrs() -> None:
    text = "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n203.0.113.0\t203.0.113.9\t64501\tfr\tODD, Ltd\n"
    result = parse_ip2asn(text, "iptoasn-v4")
    assert [(row[3], row[4]) for row in result.rows] == [
        ("1.0.0.0/24", ("13335", "CLOUDFLARENET", "US")),
        ("203.0.113.0/29", ("64501", "ODD, Ltd", "FR")),
        ("203.0.113.8/31", ("64501", "ODD, Ltd", "FR")),
    ]


def test_ip2asn_v6_and_not_routed_and_unknown_country() -> None:
    text = (
        "2001:db8::\t2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\t64502\tDE\tV6NET\n"
        "2001:db9::\t2001:db9::ffff\t0\tNone\tNot routed\n"
        "2001:dba::\t2001:dba::1\t64503\tNone\tNO-COUNTRY\n"
    )
    result = parse_ip2asn(text, "iptoasn-v6")
    assert [(row[3], row[4]) for row in result.rows] == [
        ("2001:db8::/32", ("64502", "V6NET", "DE")),
        ("2001:dba::/127", ("64503", "NO-COUNTRY", "")),
    ]
    assert (result.skipped, result.bad_lines) == (1, 0)


def test_ip2asn_bad_lines_are_reported_not_fatal() -> None:
    text = (
        "1.0.0.0\t1.0.0.255\t13335\tUS\n"  # 4 fields
        "1.0.1.0\t1.0.0.255\t13335\tUS\tBACKWARDS\n"
        "1.0.2.0\t2001:db8::\t13335\tUS\tMIXED\n"
        "1.0.3.0\t1.0.3.255\tAS13335\tUS\tNOT-A-NUMBER\n"
        "1.0.4.0\t1.0.4.255\t4294967296\tUS\tTOO-BIG\n"
        "1.0.5\t1.0.5.255\t13335\tUS\tSHORT-IP\n"
        "1.0.6.0\t1.0.6.255\t13335\tUS\tGOOD\n"
    )
    result = parse_ip2asn(text, "iptoasn-v4")
    assert cidrs(result) == ["1.0.6.0/24"]
    assert result.bad_lines == 6
    assert [p.line for p in result.problems] == [1, 2, 3, 4, 5, 6]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**20))
def test_range_to_cidrs_is_pythons_summarize_address_range(start: int, length: int) -> None:
    end = min(start + length, 2**32 - 1)
    expected = [
        (int(n.network_address), n.prefixlen)
        for n in ipaddress.summarize_address_range(ipaddress.IPv4Address(start), ipaddress.IPv4Address(end))
    ]
    assert range_to_cidrs(start, end, 32) == expected


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**128 - 1), st.integers(0, 2**70))
def test_range_to_cidrs_ipv6(start: int, length: int) -> None:
    end = min(start + length, 2**128 - 1)
    expected = [
        (int(n.network_address), n.prefixlen)
        for n in ipaddress.summarize_address_range(ipaddress.IPv6Address(start), ipaddress.IPv6Address(end))
    ]
    assert range_to_cidrs(start, end, 128) == expected
