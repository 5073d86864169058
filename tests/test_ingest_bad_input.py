"""Bad input: each case gets a clear message naming file, line and field; good records of the
same file are kept; counts add up; the exit status is non-zero only when a whole input is unusable."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb

from crmguard.cli import EXIT_INPUT_UNREADABLE, EXIT_OK, main
from crmguard.ingest import ingest
from crmguard.lake import Lake

HEADER = ["EVENT_TYPE", "TIMESTAMP", "REQUEST_ID", "ORGANIZATION_ID", "USER_ID", "CLIENT_IP", "TIMESTAMP_DERIVED"]


def elf_line(*values: str) -> str:
    return ",".join(f'"{v}"' for v in values) + "\n"


def good_row(i: int) -> str:
    return elf_line("API", f"20250401{i:06d}.000", f"req{i}", "00D5j000000VI3n", "0055j000000utlP", "81.2.69.142", "")


def quarantine(lake: Lake) -> list[dict]:
    con = lake.connect()
    return con.sql("SELECT file, line, record, field, reason, content FROM quarantine ORDER BY line, record").to_arrow_table().to_pylist()


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["ingest", "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def assert_adds_up(summary: dict) -> None:
    assert summary["read"] == summary["stored"] + summary["duplicate"] + summary["quarantined"]


def test_ragged_rows_are_quarantined_with_line_and_field(tmp_path: Path, capsys) -> None:
    log = tmp_path / "API.csv"
    log.write_text(
        elf_line(*HEADER) + good_row(1) + elf_line("API", "20250401000002.000", "req2") + good_row(3)
        + elf_line("API", "20250401000004.000", "req4", "00D5j000000VI3n", "0055j000000utlP", "1.2.3.4", "", "extra")
    )
    code, summary = run_json(capsys, "--lake", str(tmp_path / "lake"), str(log))
    assert code == EXIT_OK
    assert (summary["read"], summary["stored"], summary["quarantined"]) == (4, 2, 2)
    rows = quarantine(Lake(tmp_path / "lake"))
    assert [(r["line"], r["field"]) for r in rows] == [(3, "ORGANIZATION_ID"), (5, None)]
    assert "MISSING COLUMNS" in rows[0]["reason"] and "Found: 3" in rows[0]["reason"]
    assert "TOO MANY COLUMNS" in rows[1]["reason"]
    assert rows[0]["file"] == str(log) and rows[0]["content"].startswith('"API","20250401000002.000"')


def test_wrong_encoding_is_named_and_recoverable_with_encoding_option(tmp_path: Path, capsys) -> None:
    log = tmp_path / "Login.csv"
    body = elf_line(*HEADER, "USER_NAME") + good_row(1).rstrip("\n") + ',"ok@example.com"\n'
    body += good_row(2).rstrip("\n") + ',"rené@example.fr"\n'
    log.write_bytes(body.encode("latin-1"))
    code, summary = run_json(capsys, "--lake", str(tmp_path / "lake"), str(log))
    assert code == EXIT_OK and (summary["stored"], summary["quarantined"]) == (1, 1)
    [row] = quarantine(Lake(tmp_path / "lake"))
    assert row["line"] == 3 and row["field"] == "USER_NAME"
    assert "not UTF-8" in row["reason"] and "--encoding" in row["reason"]

    code, summary = run_json(capsys, "--lake", str(tmp_path / "lake2"), "--encoding", "latin-1", str(log))
    assert (summary["stored"], summary["quarantined"]) == (2, 0)
    names = Lake(tmp_path / "lake2").connect().execute("SELECT list(raw ORDER BY time) FROM events").fetchall()[0][0]
    assert "rené@example.fr" in names[1]


def test_utf16_with_bom_is_detected(tmp_path: Path, capsys) -> None:
    log = tmp_path / "API.csv"
    log.write_bytes((elf_line(*HEADER) + good_row(1) + good_row(2)).encode("utf-16"))
    code, summary = run_json(capsys, "--lake", str(tmp_path / "lake"), str(log))
    assert code == EXIT_OK and summary["stored"] == 2


def test_truncated_gzip_keeps_complete_lines(tmp_path: Path, capsys) -> None:
    lines = [
        json.dumps({"uuid": f"u{i}", "published": f"2025-04-01T10:00:{i:02d}.000Z", "eventType": "user.session.start",
                    "actor": {"alternateId": f"user{i}@example.com", "id": f"00u{i}"}, "outcome": {"result": "SUCCESS"}})
        for i in range(40)
    ]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    log = tmp_path / "okta.ndjson.gz"
    log.write_bytes(data[: len(data) * 2 // 3])
    code, summary = run_json(capsys, "--lake", str(tmp_path / "lake"), str(log))
    assert code == EXIT_OK
    assert_adds_up(summary)
    assert summary["quarantined"] == 1 and 0 < summary["stored"] < 40
    [row] = quarantine(Lake(tmp_path / "lake"))
    assert "truncated" in row["reason"] and row["line"] == summary["stored"] + 1


def test_gz_name_but_not_gzip_is_an_unreadable_input(tmp_path: Path, capsys) -> None:
    log = tmp_path / "x.csv.gz"
    log.write_text("not gzip at all")
    code, summary = run_json(capsys, "--lake", str(tmp_path / "lake"), str(log))
    assert code == EXIT_INPUT_UNREADABLE
    assert summary["files_failed"] == 1 and "not a gzip file" in summary["by_file"][0]["error"]


def test_garbage_json_lines_are_quarantined_and_good_lines_kept(tmp_path: Path, capsys) -> None:
    good = json.dumps({"published": "2025-04-01T10:00:00Z", "eventType": "user.session.start", "uuid": "a"})
    log = tmp_path / "okta.ndjson"
    log.write_text(good + "\n{not json\n\n[1, 2]\n" + good.replace('"a"', '"b"') + '\n{"hello": "world"}\n')
    code, summary = run_json(capsys, "--lake", str(tmp_path / "lake"), str(log))
    assert code == EXIT_OK
    assert (summary["read"], summary["stored"], summary["quarantined"]) == (5, 2, 3)
    rows = quarantine(Lake(tmp_path / "lake"))
    assert [(r["line"], r["reason"]) for r in rows] == [
        (2, "invalid JSON"),
        (4, "not a JSON object"),
        (6, rows[2]["reason"]),
    ]
    assert rows[2]["reason"].startswith("unrecognised record")


def test_file_of_garbage_is_an_unreadable_input(tmp_path: Path, capsys) -> None:
    log = tmp_path / "junk.json"
    log.write_text("{garbage\n{more garbage\n")
    code, summary = run_json(capsys, "--lake", str(tmp_path / "lake"), str(log))
    assert code == EXIT_INPUT_UNREADABLE
    assert (summary["read"], summary["quarantined"]) == (2, 2)


def test_csv_that_is_not_a_salesforce_log_names_file_line_and_field(tmp_path: Path, capsys) -> None:
    log = tmp_path / "sales.csv"
    log.write_text("region,amount\nEMEA,10\n")
    good = tmp_path / "API.csv"
    good.write_text(elf_line(*HEADER) + good_row(1))
    code, summary = run_json(capsys, "--lake", str(tmp_path / "lake"), str(log), str(good))
    assert code == EXIT_INPUT_UNREADABLE
    assert summary["stored"] == 1
    error = next(f["error"] for f in summary["by_file"] if f["path"] == str(log))
    assert str(log) in error and "line 1" in error and "EVENT_TYPE" in error and "region, amount" in error


def test_impossible_timestamps_are_quarantined_with_their_field(tmp_path: Path) -> None:
    elf_log = tmp_path / "API.csv"
    elf_log.write_text(
        elf_line(*HEADER) + good_row(1)
        + elf_line("API", "20251345000000.000", "r2", "00D5j000000VI3n", "0055j000000utlP", "1.2.3.4", "")
        + elf_line("API", "", "r3", "00D5j000000VI3n", "0055j000000utlP", "1.2.3.4", "2025-02-30T00:00:00.000Z")
        + elf_line("API", "", "r4", "00D5j000000VI3n", "0055j000000utlP", "1.2.3.4", "")
    )
    okta_log = tmp_path / "okta.ndjson"
    okta_log.write_text(json.dumps({"published": "1970-01-01T00:00:00Z", "eventType": "user.session.start"}) + "\n")
    lake = Lake(tmp_path / "lake")
    summary = ingest([str(elf_log), str(okta_log)], lake)
    assert (summary.total.read, summary.total.stored, summary.total.quarantined) == (5, 1, 4)
    rows = {(Path(r["file"]).name, r["line"]): (r["field"], r["reason"]) for r in quarantine(lake)}
    assert rows[("API.csv", 3)] == ("TIMESTAMP", 'impossible or missing timestamp: "20251345000000.000"')
    assert rows[("API.csv", 4)] == ("TIMESTAMP_DERIVED", 'impossible or missing timestamp: "2025-02-30T00:00:00.000Z"')
    assert rows[("API.csv", 5)] == ("TIMESTAMP", "impossible or missing timestamp: no value")
    assert rows[("okta.ndjson", 1)][0] == "published"


def test_replaying_bad_input_adds_nothing_to_the_quarantine(tmp_path: Path) -> None:
    log = tmp_path / "API.csv"
    log.write_text(elf_line(*HEADER) + good_row(1) + elf_line("API", "x", "r"))
    lake = Lake(tmp_path / "lake")
    first = ingest([str(log)], lake)
    second = ingest([str(log)], lake)
    assert first.total.as_dict() == {"read": 2, "stored": 1, "duplicate": 0, "quarantined": 1}
    assert second.total.as_dict() == {"read": 2, "stored": 0, "duplicate": 1, "quarantined": 1}
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM read_parquet('{lake.quarantine_dir}/*.parquet')").fetchall()[0][0] == 1
