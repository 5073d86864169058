"""Small public-list samples in their real formats, a fake downloader serving them, and an intel
folder built from them by ``update`` (no network anywhere)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

from crmguard.intel import DEFAULT_SOURCES, IntelDB, load, update

# check.torproject.org/torbulkexitlist: one exit address per line.
TOR = "185.220.101.1\n185.220.101.2\n2a0b:f4c2:2::1\n"
# X4BNet lists_vpn output/vpn/ipv4.txt, output/datacenter/ipv4.txt (and ipv6.txt): one CIDR per line.
VPN_V4 = "198.51.100.0/24\n203.0.113.0/25\n"
VPN_V6 = "2001:db8:100::/48\n"
DATACENTER_V4 = "198.51.0.0/16\n185.220.0.0/16\n"
DATACENTER_V6 = "2001:db8:200::/40\n"
# iptoasn.com ip2asn-v4.tsv / ip2asn-v6.tsv: start, end, AS number, country, AS description.
IP2ASN_V4 = (
    "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n"
    "10.0.5.0\t10.0.5.255\t0\tNone\tNot routed\n"
    "185.220.100.0\t185.220.101.255\t205100\tDE\tF3NETZE\n"
    "198.51.100.0\t198.51.100.255\t64500\tNL\tVPN-A, Inc.\n"
    "203.0.113.0\t203.0.113.9\t64501\tFR\tODD-RANGE\n"
)
IP2ASN_V6 = (
    "2001:db8::\t2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\t64502\tDE\tV6NET\n"
    "2a0b:f4c2::\t2a0b:f4c2:ffff:ffff:ffff:ffff:ffff:ffff\t208323\tCH\tAPPLIEDPRIVACY-AS\n"
)

SAMPLES: dict[str, bytes] = {
    "tor-exits": TOR.encode(),
    "x4bnet-vpn-v4": VPN_V4.encode(),
    "x4bnet-vpn-v6": VPN_V6.encode(),
    "x4bnet-datacenter-v4": DATACENTER_V4.encode(),
    "x4bnet-datacenter-v6": DATACENTER_V6.encode(),
    "iptoasn-v4": gzip.compress(IP2ASN_V4.encode()),  # served gzipped, as iptoasn.com does
    "iptoasn-v6": gzip.compress(IP2ASN_V6.encode()),
}


def fake_fetch(overrides: dict[str, bytes | Exception] | None = None) -> Callable[[str], bytes]:
    """A downloader serving :data:`SAMPLES` by the default sources' URLs; ``overrides`` (by source
    name) replace a body or make the download raise."""
    by_url: dict[str, bytes | Exception] = {s.url: SAMPLES[s.name] for s in DEFAULT_SOURCES}
    for s in DEFAULT_SOURCES:
        if overrides and s.name in overrides:
            by_url[s.url] = overrides[s.name]

    def fetch(url: str) -> bytes:
        body = by_url[url]
        if isinstance(body, Exception):
            raise body
        return body

    return fetch


@pytest.fixture
def samples() -> dict[str, bytes]:
    """:data:`SAMPLES`: the body each default source's URL serves, by source name."""
    return dict(SAMPLES)


@pytest.fixture
def fetch_with() -> Callable[..., Callable[[str], bytes]]:
    """:func:`fake_fetch`, for tests that change what a source serves."""
    return fake_fetch


@pytest.fixture
def intel_dir(tmp_path: Path) -> Path:
    """An intel folder written by ``update`` from :data:`SAMPLES` (the test may change it)."""
    return _updated(tmp_path / "intel")


@pytest.fixture(scope="session")
def db(tmp_path_factory: pytest.TempPathFactory) -> IntelDB:
    """The intel of :data:`SAMPLES`, loaded once for the session (tests only read it)."""
    return load(_updated(tmp_path_factory.mktemp("intel")))


def _updated(folder: Path) -> Path:
    report = update(folder, fetch=fake_fetch())
    assert not report.failed
    return folder
