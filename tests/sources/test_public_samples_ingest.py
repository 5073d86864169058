"""Every public sample ingested at once: the counts add up, every file is read, and the only
records set aside are Panther's Okta cases whose `published` is redacted or missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmguard.ingest import Counts, IngestSummary, ingest
from crmguard.lake import Lake

PANTHER = "okta/system-log-panther-rule-tests.ndjson"
REDACTED_LINES = {41, 42, 43, 44}  # "published": "redacted"
NO_TIME_LINES = {50, 51, 53, 61}  # no "published" (nor p_event_time) at all


@pytest.fixture(scope="module")
def ingested(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[IngestSummary, Lake]:
    lake = Lake(tmp_path_factory.mktemp("lake"))
    summary = ingest([str(shared_data / "salesforce"), str(shared_data / "okta" / "*.ndjson")], lake)
    return summary, lake


def _adds_up(counts: Counts) -> bool:
    return counts.read == counts.stored + counts.duplicate + counts.quarantined


def test_counts_add_up_for_the_whole_corpus(ingested) -> None:
    summary, _ = ingested
    assert _adds_up(summary.total)
    assert all(_adds_up(c) for c in summary.by_source.values())
    assert all(_adds_up(f.counts) for f in summary.files)
    assert summary.failed == []
    assert all(f.counts.read > 0 for f in summary.files), [f.path for f in summary.files if not f.counts.read]
    assert set(summary.by_source) == {"salesforce_elf", "salesforce_rtem", "salesforce_audit", "okta"}
    assert len(summary.files) == 37  # 7 ELF CSV + 13 RTEM + 13 other + 4 Okta NDJSON (indexes skipped)
    assert summary.total.read == 17 + 25 + 41 + 130  # ELF CSV rows, RTEM records, other/ lines, Okta lines
    assert summary.by_source["salesforce_elf"].stored == 37  # 17 CSV + 20 JSON rows: none a duplicate or set aside


def test_only_panther_records_without_a_usable_published_are_quarantined(ingested) -> None:
    summary, lake = ingested
    assert summary.total.quarantined == len(REDACTED_LINES | NO_TIME_LINES)
    rows = lake.connect().sql("SELECT file, line, source, field, reason FROM quarantine ORDER BY line").fetchall()
    assert {(Path(file).name, source) for file, _, source, _, _ in rows} == {(Path(PANTHER).name, "okta")}
    assert {line for _, line, _, _, _ in rows} == REDACTED_LINES | NO_TIME_LINES
    for _, line, _, field, reason in rows:
        assert field == "published", (line, field)
        assert "timestamp" in reason, (line, reason)
        assert ("redacted" in reason) == (line in REDACTED_LINES), (line, reason)

