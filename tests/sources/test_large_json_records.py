"""Large JSON records (RTEM events listing hundreds of record ids) are mapped in slices small
enough for the ingest connection's memory limit: DuckDB's JSON functions hold what they parse
until their query ends, about 40 times the text of such records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crmguard.ingest import ingest
from crmguard.lake import Lake


def api_event(i: int, ids: int) -> dict:
    records = {"totalSize": ids, "done": True,
               "records": [{"attributes": {"type": "Contact"}, "Id": f"0035j{n:013d}"} for n in range(ids)]}
    return {"attributes": {"type": "ApiEvent"}, "EventIdentifier": f"evt-{i}", "ApiType": "REST",
            "EventDate": f"2025-03-03T10:{i % 60:02d}:{i % 59:02d}.000+0000", "Operation": "Query",
            "QueriedEntities": "Contact", "Query": "SELECT Id, Email FROM Contact", "RowsProcessed": float(ids),
            "Records": json.dumps(records), "SourceIp": "3.216.23.220", "UserId": "0055j0000000VlOAAU",
            "Username": "integration@example.com", "SessionKey": "5jr7pDsEx66QOwN/"}


@pytest.fixture(scope="module")
def large_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rtem") / "ApiEvent.json"
    path.write_text("".join(json.dumps(api_event(i, 500)) + "\n" for i in range(1500)))  # 57 MB
    return path


def test_large_records_are_ingested_within_the_memory_limit(large_records: Path, tmp_path: Path) -> None:
    summary = ingest([str(large_records)], Lake(tmp_path / "lake"))
    assert summary.total.as_dict() == {"read": 1500, "stored": 1500, "duplicate": 0, "quarantined": 0}


def test_running_out_of_memory_fails_the_batch_with_a_clear_error(
    large_records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that needs more than the ingest connection's memory limit is reported failed with
    what to do about it; the other batches are ingested, and the counts still add up."""
    login = tmp_path / "LoginEvent.csv"
    login.write_text('"EVENT_TYPE","TIMESTAMP","REQUEST_ID","USER_ID","CLIENT_IP"\n'
                     '"Login","20250303100000.000","r1","0055j0000000VlOAAU","3.216.23.220"\n')
    monkeypatch.setenv("CRMGUARD_INGEST_MEMORY_LIMIT", "30MB")
    summary = ingest([str(large_records), str(login)], Lake(tmp_path / "lake"))
    [failed] = summary.failed
    assert failed.path == str(large_records)
    assert failed.error is not None and failed.error.startswith("out of memory: parsing reached DuckDB's ingest limit of 30MB")
    assert "CRMGUARD_INGEST_MEMORY_LIMIT" in failed.error
    assert summary.total.as_dict() == {"read": 1, "stored": 1, "duplicate": 0, "quarantined": 0}
    monkeypatch.delenv("CRMGUARD_INGEST_MEMORY_LIMIT")
    again = ingest([str(large_records), str(login)], Lake(tmp_path / "lake"))
    assert again.total.as_dict() == {"read": 1501, "stored": 1500, "duplicate": 1, "quarantined": 0}
