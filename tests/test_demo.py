"""`crmguard demo` end to end: simulate, ingest with nothing quarantined, tell the story."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crmguard.cli import EXIT_OK, main
from crmguard.lake import Lake


@pytest.mark.integration
def test_demo_simulates_ingests_everything_and_tells_the_story(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--home", str(tmp_path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "0 quarantined" in out and "who read the most CRM rows" in out
    labels_now = json.loads((tmp_path / "demo-logs" / "labels.json").read_text())
    victim = labels_now["campaigns"][0]["actors"][0]["username"].lower()
    assert "behavioural baselines" in out and f"  {victim} at " in out
    labels = json.loads((tmp_path / "demo-logs" / "labels.json").read_text())
    con = Lake(tmp_path / "lake").connect()
    assert con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0] == 0
    stored = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
    assert stored > 10_000
    # Replaying the demo's logs stores nothing new.
    assert main(["ingest", "--json", "--home", str(tmp_path), str(tmp_path / "demo-logs" / "salesforce"),
                 str(tmp_path / "demo-logs" / "okta")]) == EXIT_OK
    replay = json.loads(capsys.readouterr().out)
    assert replay["stored"] == 0 and replay["duplicate"] == stored
    assert [c["name"] for c in labels["campaigns"]] == ["vishing"]
