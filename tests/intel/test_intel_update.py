"""``update`` with a fake downloader: the files and manifest it writes, bad lines reported, and a
failed source leaving the previous file in place."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import urllib.error
from pathlib import Path

import pytest

from crmguard.intel import DEFAULT_SOURCES, IntelError, Source, load, update, urllib_fetch


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


def test_update_writes_both_files_and_a_manifest(intel_dir: Path, samples) -> None:
    anonymizers = read_rows(intel_dir / "anonymizers.csv")
    assert anonymizers[0] == ["cidr", "kind", "source"]
    assert ["185.220.101.1/32", "tor", "tor-exits"] in anonymizers
    assert ["2a0b:f4c2:2::1/128", "tor", "tor-exits"] in anonymizers
    assert ["198.51.100.0/24", "vpn", "x4bnet-vpn-v4"] in anonymizers
    assert ["2001:db8:200::/40", "hosting", "x4bnet-datacenter-v6"] in anonymizers
    asn = read_rows(intel_dir / "asn.csv")
    assert asn[0] == ["cidr", "asn", "as_org", "country"]
    assert ["198.51.100.0/24", "64500", "VPN-A, Inc.", "NL"] in asn  # the comma survives CSV quoting
    assert ["203.0.113.0/29", "64501", "ODD-RANGE", "FR"] in asn and ["203.0.113.8/31", "64501", "ODD-RANGE", "FR"] in asn
    assert not [r for r in asn if r[0].startswith("10.0.5.")]  # not routed

    manifest = json.loads((intel_dir / "manifest.json").read_text())
    for name, rows in (("anonymizers.csv", anonymizers), ("asn.csv", asn)):
        entry = manifest["files"][name]
        assert entry["rows"] == len(rows) - 1
        assert entry["sha256"] == hashlib.sha256((intel_dir / name).read_bytes()).hexdigest()
        assert entry["written_at"].endswith("Z")
    sources = {s["name"]: s for f in manifest["files"].values() for s in f["sources"]}
    assert set(sources) == {s.name for s in DEFAULT_SOURCES}
    tor = sources["tor-exits"]
    assert tor["url"] == "https://check.torproject.org/torbulkexitlist"
    assert tor["rows"] == 3 and tor["bad_lines"] == 0 and tor["fetched_at"].endswith("Z")
    assert tor["sha256"] == hashlib.sha256(samples["tor-exits"]).hexdigest()
    assert sources["iptoasn-v4"]["licence"].startswith("PDDL")
    assert sorted(p.name for p in intel_dir.iterdir()) == ["anonymizers.csv", "asn.csv", "manifest.json"]  # no temp files


def test_bad_lines_are_counted_and_reported_with_file_and_line(tmp_path: Path, fetch_with) -> None:
    report = update(tmp_path, fetch=fetch_with({"tor-exits": b"185.220.101.1\nExitAddress junk\n\n185.220.101.9\n"}))
    tor = next(s for s in report.sources if s.source.name == "tor-exits")
    assert (tor.rows, tor.bad_lines, tor.skipped, tor.error) == (2, 1, 1, None)
    assert report.bad_lines == 1
    assert [(p.file, p.line, p.text) for p in report.problems] == [("tor-exits", 2, "ExitAddress junk")]
    assert json.loads((tmp_path / "manifest.json").read_text())["files"]["anonymizers.csv"]["sources"][0]["bad_lines"] == 1


def test_a_failed_source_keeps_the_previous_file_and_the_others_update(intel_dir: Path, fetch_with) -> None:
    before = (intel_dir / "anonymizers.csv").read_bytes()
    manifest_before = json.loads((intel_dir / "manifest.json").read_text())
    vpn = b"192.0.2.0/24\n"
    report = update(intel_dir, fetch=fetch_with({
        "tor-exits": urllib.error.URLError("network is unreachable"),
        "iptoasn-v4": gz(b"1.0.0.0\t1.0.0.255\t13335\tUS\tRENAMED\n"),
        "x4bnet-vpn-v4": vpn,
    }))
    assert [s.source.name for s in report.failed] == ["tor-exits"]
    assert "network is unreachable" in (report.failed[0].error or "")
    assert (intel_dir / "anonymizers.csv").read_bytes() == before  # not half-updated without TOR exits
    files = {f.name: f for f in report.files}
    assert not files["anonymizers.csv"].replaced and files["asn.csv"].replaced
    assert ["1.0.0.0/24", "13335", "RENAMED", "US"] in read_rows(intel_dir / "asn.csv")
    manifest = json.loads((intel_dir / "manifest.json").read_text())
    assert manifest["files"]["anonymizers.csv"] == manifest_before["files"]["anonymizers.csv"]
    assert manifest["files"]["asn.csv"]["sha256"] != manifest_before["files"]["asn.csv"]["sha256"]


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"<html><body>Rate limited</body></html>\n", "no valid rows"), (b"\x1f\x8bnot really gzip", "gzip")],
)
def test_a_source_giving_no_rows_or_broken_gzip_fails_instead_of_emptying_the_file(
    intel_dir: Path, fetch_with, body: bytes, message: str
) -> None:
    before = (intel_dir / "asn.csv").read_bytes()
    report = update(intel_dir, fetch=fetch_with({"iptoasn-v6": body}))
    assert [s.source.name for s in report.failed] == ["iptoasn-v6"]
    assert message in (report.failed[0].error or "")
    assert (intel_dir / "asn.csv").read_bytes() == before


def test_first_update_with_a_failed_source_writes_no_file_for_it(tmp_path: Path, fetch_with) -> None:
    report = update(tmp_path, fetch=fetch_with({"iptoasn-v4": OSError("timed out")}))
    assert not (tmp_path / "asn.csv").exists()
    assert (tmp_path / "anonymizers.csv").exists()
    assert "asn.csv" not in json.loads((tmp_path / "manifest.json").read_text())["files"]
    assert load(tmp_path).rows == {"anonymizers.csv": 9, "asn.csv": 0}
    assert {f.name: f.replaced for f in report.files} == {"anonymizers.csv": True, "asn.csv": False}


def test_custom_sources_and_a_damaged_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    mine = Source("corp-proxies", "file:///nowhere/proxies.txt", "addresses", "proxy", "internal")
    report = update(tmp_path, [mine], fetch=lambda url: b"192.0.2.11\n192.0.2.10\n192.0.2.11/32\n")  # a duplicate
    assert not report.failed
    assert read_rows(tmp_path / "anonymizers.csv")[1:] == [
        ["192.0.2.10/32", "proxy", "corp-proxies"], ["192.0.2.11/32", "proxy", "corp-proxies"]
    ]
    assert json.loads((tmp_path / "manifest.json").read_text())["files"]["anonymizers.csv"]["rows"] == 2


def test_sources_are_validated() -> None:
    with pytest.raises(ValueError, match="kind"):
        Source("x", "https://example.org/x.txt", "addresses", "evil")
    with pytest.raises(ValueError, match="format"):
        Source("x", "https://example.org/x.txt", "maxmind")
    twice = Source("x", "https://example.org/x.txt", "addresses", "vpn")
    with pytest.raises(ValueError, match="unique: x"):
        update("/nonexistent", [twice, twice], fetch=lambda url: b"")


def test_urllib_fetch_refuses_other_schemes_and_reads_file_urls(tmp_path: Path) -> None:
    with pytest.raises(IntelError, match="only http"):
        urllib_fetch("ftp://example.org/list.txt")
    local = tmp_path / "list.txt"
    local.write_bytes(b"192.0.2.1\n")
    assert urllib_fetch(local.as_uri()) == b"192.0.2.1\n"


def test_written_csv_is_read_back_by_the_csv_module(intel_dir: Path) -> None:
    with open(intel_dir / "asn.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["asn"] for r in rows} >= {"13335", "64500", "64502"}
