"""``IntelDB.lookup`` over the sample intel: TOR exits, VPN and hosting ranges, ASN range edges,
IPv4 and IPv6, addresses on no list and strings that are not addresses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crmguard.intel import IntelDB, load

KEYS = ("is_anonymizer", "anonymizer_kind", "src_asn", "src_isp", "src_country")


def facts(db: IntelDB, ip: str | None) -> tuple[Any, ...]:
    [row] = db.lookup([ip])
    assert row["ip"] == ip
    return tuple(row[k] for k in KEYS)


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        # TOR exit inside a datacenter range: the TOR list wins
        ("185.220.101.1", (True, "tor", 205100, "F3NETZE", "DE")),
        ("::ffff:185.220.101.1", (True, "tor", 205100, "F3NETZE", "DE")),  # IPv4-mapped form
        ("2a0b:f4c2:2::1", (True, "tor", 208323, "APPLIEDPRIVACY-AS", "CH")),
        ("185.220.101.3", (False, "hosting", 205100, "F3NETZE", "DE")),  # same AS, not an exit
        # commercial VPN range (also in the datacenter list: the VPN list wins)
        ("198.51.100.77", (True, "vpn", 64500, "VPN-A, Inc.", "NL")),
        ("2001:db8:100:ffff::1", (True, "vpn", 64502, "V6NET", "DE")),
        # hosting only: flagged by kind, not as an anonymizer
        ("198.51.7.7", (False, "hosting", None, None, None)),
        ("2001:db8:2ff::1", (False, "hosting", 64502, "V6NET", "DE")),
        # ASN range edges: first and last address in, the neighbours out
        ("1.0.0.0", (False, None, 13335, "CLOUDFLARENET", "US")),
        ("1.0.0.255", (False, None, 13335, "CLOUDFLARENET", "US")),
        ("0.255.255.255", (False, None, None, None, None)),
        ("1.0.1.0", (False, None, None, None, None)),
        ("203.0.113.9", (True, "vpn", 64501, "ODD-RANGE", "FR")),  # end of a range that is not one CIDR
        ("203.0.113.10", (True, "vpn", None, None, None)),
        ("2001:db8::", (False, None, 64502, "V6NET", "DE")),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", (False, None, 64502, "V6NET", "DE")),
        ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", (False, None, None, None, None)),
        ("2001:db9::", (False, None, None, None, None)),
        # on no list at all
        ("8.8.8.8", (False, None, None, None, None)),
        ("10.0.5.1", (False, None, None, None, None)),  # "Not routed" in ip2asn
        # not addresses
        ("Salesforce.com IP", (None,) * 5),
        ("", (None,) * 5),
        ("null", (None,) * 5),
        ("1.2.3", (None,) * 5),
        ("2001:db8::g", (None,) * 5),
        (None, (None,) * 5),
    ],
)
def test_lookup(db: IntelDB, ip: str | None, expected: tuple[Any, ...]) -> None:
    assert facts(db, ip) == expected


def test_lookup_keeps_input_order_and_duplicates_and_says_which_entry_matched(db: IntelDB) -> None:
    rows = db.lookup(["8.8.8.8", "185.220.101.1", "8.8.8.8", "Salesforce.com IP"])
    assert [r["ip"] for r in rows] == ["8.8.8.8", "185.220.101.1", "8.8.8.8", "Salesforce.com IP"]
    tor = rows[1]
    assert (tor["anonymizer_source"], tor["anonymizer_network"], tor["asn_network"]) == (
        "tor-exits", "185.220.101.1/32", "185.220.100.0/23",
    )
    assert db.lookup([]) == []


def test_empty_or_missing_folder_loads_and_knows_nothing(tmp_path: Path) -> None:
    db = load(tmp_path / "never-updated")
    assert db.empty and db.rows == {"anonymizers.csv": 0, "asn.csv": 0}
    assert facts(db, "185.220.101.1") == (None,) * 5  # unknown, not "not an anonymizer"


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_hand_edited_files_bad_rows_are_set_aside_with_line_numbers(tmp_path: Path) -> None:
    write(tmp_path, "anonymizers.csv", (
        "cidr,kind,source\n"
        "192.0.2.0/24,proxy,corp\n"
        "192.0.2.300/32,proxy,corp\n"  # line 3: not a network
        "198.51.100.0/24,evil,corp\n"  # line 4: unknown kind
        "203.0.113.5,tor\n"  # line 5: source missing: fine, a bare address is a /32
        '"2001:db8::/32",vpn,"quoted, with comma"\n'
    ))
    write(tmp_path, "asn.csv", "cidr,asn,as_org,country\n192.0.2.0/24,AS64500,X,NL\n192.0.2.0/25,64501,Y,nl\n")
    db = load(tmp_path)
    assert db.rows == {"anonymizers.csv": 3, "asn.csv": 1}
    assert db.bad_rows == 3
    assert [(Path(p.file).name, p.line, p.reason) for p in db.problems] == [
        ("anonymizers.csv", 3, "not a CIDR network"),
        ("anonymizers.csv", 4, "kind is not one of tor, vpn, proxy, hosting"),
        ("asn.csv", 2, "asn is not an integer"),
    ]
    assert facts(db, "192.0.2.1") == (True, "proxy", 64501, "Y", "NL")
    assert facts(db, "203.0.113.5") == (True, "tor", None, None, None)
    assert db.lookup(["2001:db8::1"])[0]["anonymizer_source"] == "quoted, with comma"


def test_most_specific_asn_network_wins_and_ipv6_precision_holds(tmp_path: Path) -> None:
    write(tmp_path, "asn.csv", (
        "cidr,asn,as_org,country\n10.0.0.0/8,1,WIDE,US\n10.1.0.0/16,2,NARROW,US\n"
        "2001:db8::1/128,11,ONE,DE\n2001:db8::2/128,12,TWO,DE\n"  # neighbours 1 apart at 128 bits
    ))
    db = load(tmp_path)
    assert [r["src_asn"] for r in db.lookup(["10.2.0.1", "10.1.0.1", "2001:db8::1", "2001:db8::2", "2001:db8::3"])] == [
        1, 2, 11, 12, None,
    ]


def test_an_ipv6_network_never_contains_ipv4_addresses(tmp_path: Path) -> None:
    write(tmp_path, "anonymizers.csv", "cidr,kind,source\n::/0,proxy,everything-v6\n")
    db = load(tmp_path)
    assert facts(db, "2001:db8::1")[:2] == (True, "proxy")
    assert facts(db, "::1")[:2] == (True, "proxy")
    assert facts(db, "192.0.2.1")[:2] == (False, None)
    assert facts(db, "::ffff:192.0.2.1")[:2] == (False, None)


def test_unreadable_manifest_is_an_error(tmp_path: Path) -> None:
    from crmguard.intel import IntelError

    write(tmp_path, "manifest.json", "{")
    with pytest.raises(IntelError, match="manifest"):
        load(tmp_path)
