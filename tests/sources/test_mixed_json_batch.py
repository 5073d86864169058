"""A JSON batch holding several formats is mapped format by format, each format's records in
slices of bounded size, side by side (each query on its own cursor) or one after the other: every
record must come out as it does when its format is alone in the batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crmguard.ingest import ingest
from crmguard.lake import Lake
from crmguard.sources import staging

OKTA = {"uuid": "e-okta-1", "published": "2025-03-03T10:00:00.000Z", "eventType": "user.session.start",
        "displayMessage": "User login to Okta", "outcome": {"result": "SUCCESS"},
        "actor": {"id": "00u1", "type": "User", "alternateId": "ana@example.com"},
        "client": {"ipAddress": "198.51.100.7", "userAgent": {"rawUserAgent": "Mozilla/5.0"},
                   "geographicalContext": {"country": "United States", "city": "Ashburn"}}}
# ELF times carry no zone: they are UTC whatever the machine's zone.
ELF = {"EVENT_TYPE": "Login", "TIMESTAMP": "20250303100500.123", "USER_ID": "005000000000001",
       "USER_NAME": "ana@example.com", "SOURCE_IP": "203.0.113.9", "COUNTRY_CODE": "FR", "LOGIN_STATUS": "LOGIN_NO_ERROR"}
RTEM = {"EventIdentifier": "r-1", "EventDate": "2025-03-03T10:10:00.000+0000", "attributes": {"type": "LoginEvent"},
        "UserId": "005000000000001AAA", "Username": "ana@example.com", "SourceIp": "203.0.113.10",
        "CountryIso": "DE", "Status": "Success", "LoginType": "Application"}


def _stored(tmp_path: Path, name: str, records: list[dict]) -> dict[str, tuple]:
    path = tmp_path / f"{name}.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    lake = Lake(tmp_path / f"lake-{name}")
    summary = ingest([str(path)], lake)
    assert summary.total.stored == len(records)
    con = lake.connect()
    rows = con.execute("SELECT source, event_id, time, src_country, user_id, username, src_ip FROM events").fetchall()
    return {r[0]: r[1:] for r in rows}


@pytest.mark.parametrize("workers", [2, 1], ids=["side-by-side", "one-after-the-other"])
@pytest.mark.parametrize("slice_bytes", [12 << 20, 1], ids=["a query per format", "a query per record"])
def test_a_mixed_batch_maps_each_record_as_its_format_alone(tmp_path: Path, workers: int, slice_bytes: int,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "MAP_WORKERS", workers)
    monkeypatch.setattr(staging, "MAP_SLICE_BYTES", slice_bytes)
    mixed = _stored(tmp_path, "mixed", [OKTA, ELF, RTEM])
    alone = {**_stored(tmp_path, "okta", [OKTA]), **_stored(tmp_path, "elf", [ELF]), **_stored(tmp_path, "rtem", [RTEM])}
    assert mixed == alone
    assert mixed["okta"][2] == "US"  # the country name, through the country table
    assert mixed["salesforce_elf"][1].isoformat() == "2025-03-03T10:05:00.123000+00:00"
