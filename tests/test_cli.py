"""The CLI end to end, in-process: workspace resolution, ingest summary, query formats."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from crmguard.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main

LOG = (
    '"EVENT_TYPE","TIMESTAMP","REQUEST_ID","ORGANIZATION_ID","USER_ID","USER_NAME","SOURCE_IP","CLIENT_IP","LOGIN_STATUS"\n'
    '"Login","20250401093000.000","r1","00D5j000000VI3n","0055j000000utlP","ana@example.com","81.2.69.142","Salesforce.com IP","LOGIN_NO_ERROR"\n'
    '"Login","20250401093100.000","r2","00D5j000000VI3n","0055j000000utlP","ana@example.com","81.2.69.143","Salesforce.com IP","LOGIN_ERROR_INVALID_PASSWORD"\n'
)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "Login.csv"
    path.parent.mkdir()
    path.write_text(LOG)
    return path


def test_ingest_defaults_to_the_workspace_from_the_environment(tmp_path: Path, log: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CRMGUARD_HOME", str(tmp_path / "home"))
    assert main(["ingest", "--json", str(log.parent)]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert {k: summary[k] for k in ("read", "stored", "duplicate", "quarantined")} == {
        "read": 2, "stored": 2, "duplicate": 0, "quarantined": 0,
    }
    assert summary["by_source"]["salesforce_elf"]["stored"] == 2
    assert any((tmp_path / "home" / "lake" / "events" / "source=salesforce_elf").rglob("*.parquet"))


def test_ingest_prints_a_table_and_glob_paths_work(tmp_path: Path, log: Path, capsys) -> None:
    assert main(["ingest", "--home", str(tmp_path / "h"), str(log.parent / "*.csv")]) == EXIT_OK
    out = capsys.readouterr().out
    assert "salesforce_elf" in out and "total" in out


def test_query_formats(tmp_path: Path, log: Path, capsys) -> None:
    home = str(tmp_path / "h")
    main(["ingest", "--home", home, str(log)])
    capsys.readouterr()
    sql = "SELECT username, src_ip, outcome, time FROM events ORDER BY time"
    assert main(["query", "--home", home, "--format", "json", sql]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {"username": "ana@example.com", "src_ip": "81.2.69.142", "outcome": "success", "time": "2025-04-01T09:30:00Z"},
        {"username": "ana@example.com", "src_ip": "81.2.69.143", "outcome": "failure", "time": "2025-04-01T09:31:00Z"},
    ]
    assert main(["query", "--home", home, "--format", "csv", sql]) == EXIT_OK
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["outcome"] for r in parsed] == ["success", "failure"]
    assert main(["query", "--home", home, "SELECT count(*) AS n FROM quarantine"]) == EXIT_OK
    assert "0" in capsys.readouterr().out


def test_query_csv_writes_lists_and_structs_as_json(tmp_path: Path, log: Path, capsys) -> None:
    home = str(tmp_path / "h")
    main(["ingest", "--home", home, str(log)])
    capsys.readouterr()
    sql = "SELECT list(outcome ORDER BY time) AS outcomes, {'n': count(*)} AS s FROM events"
    assert main(["query", "--home", home, "--format", "csv", sql]) == EXIT_OK
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert json.loads(row["outcomes"]) == ["success", "failure"] and json.loads(row["s"]) == {"n": 2}


def test_query_on_an_empty_lake_has_the_schema(tmp_path: Path, capsys) -> None:
    assert main(["query", "--home", str(tmp_path), "--format", "json", "SELECT count(*) AS n, count(event_id) AS e FROM events"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == [{"n": 0, "e": 0}]


def test_query_error_is_reported_not_raised(tmp_path: Path, capsys) -> None:
    assert main(["query", "--home", str(tmp_path), "SELECT nope FROM events"]) == EXIT_ERROR
    assert "nope" in capsys.readouterr().err


def test_missing_path_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["ingest", "--home", str(tmp_path), str(tmp_path / "absent.csv")]) == EXIT_ERROR
    assert "absent.csv" in capsys.readouterr().err


def test_version_prints_the_version_without_a_command(capsys) -> None:
    from crmguard import __version__

    assert main(["--version"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"crmguard {__version__}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest"], "Missing argument 'paths'"),
        (["nosuch"], "No such command 'nosuch'"),
        (["ingest", "--bogus", "x.csv"], "No such option: --bogus"),
        (["detect", "--since", "yesterday"], "Invalid value for --since: use ISO 8601"),
        (["detect", "--since", "2025-03-08", "--until", "2025-03-01"], "Invalid value for --since/--until: --since (2025-03-08) must be before --until"),
        (["baseline", "update", "--since", "2025-03-08", "--until", "2025-03-08"], "Invalid value for --since/--until"),
        (["intel", "lookup", "192.0.2.1", "--format", "xml"], "Invalid value for --format: must be table, csv or json"),
    ],
)
def test_a_usage_error_prints_the_usage_and_the_error_not_a_traceback(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("Usage: crmguard") and f"Error: {message}" in err
