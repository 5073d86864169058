"""``crmguard intel update`` and ``crmguard intel lookup`` as functions, with a fake downloader."""

from __future__ import annotations

import io
import json
import urllib.error
from pathlib import Path

from rich.console import Console

from crmguard.intel.cli import EXIT_ERROR, EXIT_INPUT_UNREADABLE, EXIT_OK, lookup_command, update_command


def console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, color_system=None), buf


def test_update_then_lookup(tmp_path: Path, fetch_with) -> None:
    out, buf = console()
    assert update_command(tmp_path, out, fetch=fetch_with()) == EXIT_OK
    text = buf.getvalue()
    assert "tor-exits" in text and "iptoasn-v6" in text
    assert text.strip().splitlines()[-1].startswith(f"intel updated in {tmp_path / 'intel'}: anonymizers.csv 9 rows")
    assert (tmp_path / "intel" / "manifest.json").exists()

    out, buf = console()
    assert lookup_command(["185.220.101.1", "Salesforce.com IP"], tmp_path, out) == EXIT_OK
    table = buf.getvalue()
    assert "185.220.101.1" in table and "tor-exits" in table and "F3NETZE" in table
    assert "Salesforce.com IP" in table
    assert "intel from" in table


def test_lookup_as_json_has_every_field(tmp_path: Path, fetch_with, capsys) -> None:
    update_command(tmp_path, console()[0], fetch=fetch_with())
    assert lookup_command(["2001:db8:100::5"], tmp_path, console()[0], fmt="json") == EXIT_OK
    [row] = json.loads(capsys.readouterr().out)
    assert row == {
        "ip": "2001:db8:100::5", "is_anonymizer": True, "anonymizer_kind": "vpn", "src_asn": 64502,
        "src_isp": "V6NET", "src_country": "DE", "anonymizer_source": "x4bnet-vpn-v6",
        "anonymizer_network": "2001:db8:100::/48", "asn_network": "2001:db8::/32",
    }


def test_update_reports_failed_sources_and_set_aside_lines(tmp_path: Path, fetch_with) -> None:
    out, buf = console()
    fetch = fetch_with({"tor-exits": urllib.error.URLError("no route to host"), "x4bnet-vpn-v4": b"198.51.100.0/24\nnope\n"})
    assert update_command(tmp_path, out, fetch=fetch) == EXIT_INPUT_UNREADABLE
    text = buf.getvalue()
    assert "no route to host" in text
    assert "set aside x4bnet-vpn-v4:2: not an IP address or CIDR network: 'nope'" in text
    assert "1 source(s) failed" in text


def test_lookup_without_intel_data_says_how_to_get_it(tmp_path: Path) -> None:
    out, buf = console()
    assert lookup_command(["1.2.3.4"], tmp_path, out) == EXIT_ERROR
    assert "crmguard intel update" in buf.getvalue()
