"""Batched ingest: files of one format are parsed together (one read, one mapping query per chunk),
and the lake, the quarantine and every per-file count are exactly what ingesting the files one at
a time gives, bad files in the middle of a batch included."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmguard.ingest import IngestSummary, commit_staged, ingest, ingest_connection, stage_file
from crmguard.lake import Lake
from crmguard.sources import inputs, staging
from crmguard.sources.inputs import batches, expand
from crmguard.sources.staging import StagedFiles

HEADER = ["EVENT_TYPE", "TIMESTAMP", "REQUEST_ID", "ORGANIZATION_ID", "USER_ID", "CLIENT_IP", "TIMESTAMP_DERIVED"]


def elf_line(*values: str) -> str:
    return ",".join(f'"{v}"' for v in values) + "\n"


def api_row(day: int, i: int) -> str:
    return elf_line("API", f"202504{day:02d}{i % 24:02d}{i % 60:02d}00.000", f"req{day}-{i}", "00D5j000000VI3n",
                    "0055j000000utlP", f"81.2.{day}.{i % 250}", "")


def okta_event(i: int, day: int = 1) -> dict:
    return {"uuid": f"u{day}-{i}", "published": f"2025-04-{day:02d}T10:{i % 60:02d}:00.000Z",
            "eventType": "user.session.start", "actor": {"alternateId": f"user{i}@example.com"},
            "outcome": {"result": "SUCCESS"}}


def write_inputs(root: Path) -> list[Path]:
    """A folder of many small files: several batches, each with irregular files in its middle."""
    elf = root / "elf"
    elf.mkdir(parents=True)
    head = elf_line(*HEADER)
    (elf / "a1.csv").write_text(head + "".join(api_row(1, i) for i in range(30)))
    # Ragged rows, an impossible timestamp, a line that is not UTF-8 and a row also in a1.csv.
    (elf / "a2.csv").write_bytes(
        (head + api_row(2, 0) + elf_line("API", "20250402000001.000", "short") + api_row(2, 2)
         + elf_line("API", "20251345000000.000", "r", "00D5j000000VI3n", "0055j000000utlP", "1.2.3.4", "")
         + api_row(1, 5) + api_row(2, 5)).encode()
        + elf_line("API", "20250402000006.000", "r6", "00D5j000000VI3n", "0055j000000utlP", "1.2.3.4",
                   "José").encode("latin-1")
        + (api_row(2, 7) + elf_line(*["x"] * 8)).encode()
    )
    (elf / "a3.csv.gz").write_bytes(gzip.compress((head + "".join(api_row(3, i) for i in range(20))).encode()))
    (elf / "a4.csv").write_text(head + api_row(4, 1) + api_row(4, 1) + elf_line("API", "", "r", "", "", "", ""))
    (elf / "a5.csv").write_text(head)  # header only
    (elf / "b1.csv").write_text(elf_line(*HEADER, "USER_NAME") + api_row(5, 1).rstrip("\n") + ',"a@x.com"\n')
    (elf / "c1.csv").write_text("region,amount\nEMEA,10\n")  # not a Salesforce log
    (elf / "u1.csv").write_bytes((head + api_row(6, 1) + api_row(6, 2)).encode("utf-16"))
    (elf / "u2.csv").write_bytes((head + api_row(7, 1)).encode("utf-16"))

    okta = root / "okta"
    okta.mkdir()
    lines = [json.dumps(okta_event(i)) for i in range(12)]
    (okta / "n1.ndjson").write_text("\n".join(lines[:8]) + "\n")
    (okta / "n2.ndjson").write_bytes(
        (lines[7] + "\n{not json\n\n[1, 2]\n" + lines[8] + '\n{"hello": "world"}\n').encode()
        + b'{"uuid": "\xff\xfe"}\n' + (lines[9] + "\n").encode()
    )
    cut = gzip.compress(("\n".join(json.dumps(okta_event(i, 2)) for i in range(40)) + "\n").encode())
    (okta / "n3.ndjson.gz").write_bytes(cut[: len(cut) * 2 // 3])  # truncated stream
    (okta / "n4.ndjson").write_text(lines[10] + "\n" + lines[11] + "\n")
    (okta / "j1.json").write_text(json.dumps([okta_event(i, 3) for i in range(5)]))
    (okta / "j2.json").write_text('[{"uuid": "x", "published": "2025-04-03T00:00:00Z"}, {broken')
    (okta / "j3.json").write_text(json.dumps([okta_event(i, 3) for i in range(3, 9)] + [[1], {"no": "shape"}]))
    (okta / "s1.json").write_text(json.dumps({"totalSize": 2, "done": True, "records": [okta_event(1, 4), okta_event(2, 4)]},
                                             indent=2))
    (okta / "x.csv.gz").write_text("not gzip at all")
    return expand([str(root)])


def lake_content(lake: Lake) -> tuple[list[tuple], list[tuple]]:
    con = lake.connect()
    events = con.sql("SELECT event_id, source, log_file, time, raw FROM events ORDER BY event_id").fetchall()
    quarantine = con.sql(
        "SELECT file, line, record, source, field, reason, content FROM quarantine "
        "ORDER BY file, line NULLS FIRST, record NULLS FIRST, reason"
    ).fetchall()
    return events, quarantine


def per_file(summary: IngestSummary) -> dict[str, tuple]:
    return {f.path: (f.counts.as_dict(), f.sources, f.error) for f in summary.files}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_inputs(tmp_path_factory.mktemp("logs"))


def test_inputs_are_planned_in_batches(files: list[Path]) -> None:
    planned = batches(files)
    names = [[p.name for p in b] for b in planned]
    assert ["a1.csv", "a2.csv", "a3.csv.gz", "a4.csv", "a5.csv"] in names  # gzip joins its plain siblings
    assert ["u1.csv", "u2.csv"] in names  # UTF-16, same header
    assert ["n1.ndjson", "n2.ndjson", "n3.ndjson.gz", "n4.ndjson"] in names
    assert ["j1.json", "j2.json", "j3.json"] in names
    assert ["s1.json"] in names and ["x.csv.gz"] in names  # alone: not one object per line, not gzip
    assert sorted(p for b in planned for p in b) == sorted(files)


def test_batched_ingest_equals_one_file_at_a_time(files: list[Path], tmp_path: Path) -> None:
    batched_lake, single_lake = Lake(tmp_path / "batched"), Lake(tmp_path / "single")
    seen: list[str] = []
    batched = ingest([str(f) for f in files], batched_lake, on_file=lambda r: seen.append(r.path))
    singles = IngestSummary()
    for f in files:
        one = ingest([str(f)], single_lake)
        singles.files += one.files
        singles.total.add(one.total)

    assert sorted(seen) == sorted(str(f) for f in files)  # progress: once per file
    assert [f.path for f in batched.files] == [str(f) for f in files]  # summary in input order
    assert per_file(batched) == per_file(singles)
    assert batched.total.as_dict() == singles.total.as_dict()
    assert lake_content(batched_lake) == lake_content(single_lake)

    by_name = {Path(f.path).name: f for f in batched.files}
    # The irregular files kept their per-file story in the batch.
    assert by_name["a2.csv"].counts.as_dict() == {"read": 9, "stored": 4, "duplicate": 1, "quarantined": 4}
    assert by_name["a4.csv"].counts.as_dict() == {"read": 3, "stored": 1, "duplicate": 1, "quarantined": 1}
    assert "unreadable JSON array" in (by_name["j2.json"].error or "")
    assert by_name["j3.json"].counts.as_dict() == {"read": 8, "stored": 4, "duplicate": 2, "quarantined": 2}
    assert "EVENT_TYPE" in (by_name["c1.csv"].error or "") and "not a gzip" in (by_name["x.csv.gz"].error or "")
    for f in batched.files:
        assert f.counts.read == f.counts.stored + f.counts.duplicate + f.counts.quarantined
    _, quarantine = lake_content(batched_lake)
    a2 = [(Path(q[0]).name, q[1], q[4]) for q in quarantine if Path(q[0]).name == "a2.csv"]
    assert a2 == [("a2.csv", 3, "ORGANIZATION_ID"), ("a2.csv", 5, "TIMESTAMP"), ("a2.csv", 8, "TIMESTAMP_DERIVED"),
                  ("a2.csv", 10, None)]
    truncated = [q for q in quarantine if Path(q[0]).name == "n3.ndjson.gz"]
    assert len(truncated) == 1 and "truncated" in truncated[0][5]


def test_replaying_a_batch_stores_nothing(files: list[Path], tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    first = ingest([str(f) for f in files], lake)
    events, quarantine = lake_content(lake)
    again = ingest([str(f) for f in files], lake)
    assert again.total.stored == 0
    assert again.total.duplicate == first.total.stored + first.total.duplicate
    assert again.total.quarantined == first.total.quarantined
    assert lake_content(lake) == (events, quarantine)


def test_batch_limits_split_batches_without_changing_the_result(
    files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = ingest([str(f) for f in files], Lake(tmp_path / "whole"))
    monkeypatch.setattr(inputs, "BATCH_FILES", 2)
    planned = batches(files)
    assert max(len(b) for b in planned) == 2
    split = ingest([str(f) for f in files], Lake(tmp_path / "split"))
    assert per_file(split) == per_file(whole)
    assert lake_content(Lake(tmp_path / "split")) == lake_content(Lake(tmp_path / "whole"))


def test_small_chunks_give_the_result_of_one_chunk(
    files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch committed in many chunks dedupes each chunk against the batch's earlier chunks and
    against the files already in the lake (a replay) exactly as one chunk does."""
    whole = ingest([str(f) for f in files], Lake(tmp_path / "whole"))
    monkeypatch.setattr(staging, "CHUNK_ROWS", 3)
    monkeypatch.setattr(staging, "JSON_CHUNK_BYTES", 200)
    chunks: list[int] = []
    commit = Lake.commit_events
    monkeypatch.setattr(Lake, "commit_events", lambda self, con, chunk: (chunks.append(chunk.num_rows), commit(self, con, chunk))[1])
    small = Lake(tmp_path / "small")
    split = ingest([str(f) for f in files], small)
    assert len(chunks) > 20 and max(chunks) < 40
    assert per_file(split) == per_file(whole)
    assert lake_content(small) == lake_content(Lake(tmp_path / "whole"))
    again = ingest([str(f) for f in files], small)
    assert again.total.stored == 0 and again.total.duplicate == whole.total.stored + whole.total.duplicate
    assert lake_content(small) == lake_content(Lake(tmp_path / "whole"))


def test_files_staged_apart_and_committed_together_give_one_batch(files: list[Path], tmp_path: Path) -> None:
    """Files parsed one by one into memory (what the watcher does while a batch fills) and
    committed as one chunk give the lake, quarantine and per-file counts of ingesting them together,
    a duplicate credited to the earlier file even where its line number is the later one."""
    okta = tmp_path / "okta"
    okta.mkdir()
    events = [json.dumps(okta_event(i, day=9)) for i in range(8)]
    (okta / "first.ndjson").write_text("\n".join(events[:6] + ["{not json"]) + "\n")
    (okta / "second.ndjson").write_text("\n".join(events[::-1]) + "\n")
    inputs = [*files, okta / "first.ndjson", okta / "second.ndjson"]
    whole = ingest([str(f) for f in inputs], Lake(tmp_path / "whole"))
    lake = Lake(tmp_path / "apart")
    con = ingest_connection(lake)
    try:
        parts = [stage_file(f, lake, con) for f in inputs]
        assert not lake.event_files()
        apart = commit_staged(StagedFiles.combine(parts), lake, con)
        again = commit_staged(StagedFiles.combine([stage_file(f, lake, con) for f in inputs]), lake, con)
    finally:
        con.close()
    assert per_file(apart) == per_file(whole)
    assert per_file(apart)[str(okta / "second.ndjson")][0] == {"read": 8, "stored": 2, "duplicate": 6, "quarantined": 0}
    assert lake_content(lake) == lake_content(Lake(tmp_path / "whole"))
    assert again.total.stored == 0 and again.total.duplicate == whole.total.stored + whole.total.duplicate


def test_large_files_keep_line_numbers_and_file_order(tmp_path: Path) -> None:
    """Rows of big files arrive in many pieces: a quarantined row still gets its own line number,
    and an event in two files is credited to the first."""
    head = elf_line(*HEADER, "URI")
    # Long rows: DuckDB reads a file of several MB in parallel pieces.
    rows = [api_row(1 + i // 20_000, i).rstrip("\n") + f',"/services/data/v60.0/query/{i:0300d}"\n' for i in range(60_000)]
    first, second = tmp_path / "API-1.csv", tmp_path / "API-2.csv"
    first.write_text(head + "".join(rows[:30_000]))
    body = rows[30_000:] + [rows[29_999]]  # last line of the first file, repeated at the end
    body[12_345] = elf_line("API", "20251399000000.000", "bad", "00D5j000000VI3n", "0055j000000utlP", "1.2.3.4", "", "/")
    body[20_000] = elf_line("API", "ragged")
    second.write_text(head + "".join(body))
    lake = Lake(tmp_path / "lake")
    summary = ingest([str(first), str(second)], lake)
    assert len(batches([first, second])) == 1
    counts = {Path(f.path).name: f.counts.as_dict() for f in summary.files}
    assert counts["API-1.csv"] == {"read": 30_000, "stored": 30_000, "duplicate": 0, "quarantined": 0}
    assert counts["API-2.csv"] == {"read": 30_001, "stored": 29_998, "duplicate": 1, "quarantined": 2}
    _, quarantine = lake_content(lake)
    assert [(Path(q[0]).name, q[1], q[4]) for q in quarantine] == [
        ("API-2.csv", 12_347, "TIMESTAMP"), ("API-2.csv", 20_002, "REQUEST_ID")
    ]
    [(log_file,)] = lake.connect().execute(
        "SELECT log_file FROM events WHERE raw LIKE '%req2-29999\"%'"
    ).fetchall()
    assert log_file == str(first)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.one_of(
            st.integers(0, 40).map(lambda i: api_row(1, i)),  # repeats across files are duplicates
            st.just(elf_line("API", "20251301000000.000", "bad", "", "", "", "")),
            st.just(elf_line("API", "ragged")),
        ),
        max_size=60,
    ),
    cuts=st.lists(st.integers(0, 60), max_size=4),
)
def test_any_split_into_files_ingests_as_one_file_at_a_time(rows: list[str], cuts: list[int], tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        work = Path(tmp)
        bounds = [0, *sorted(cuts), len(rows)]
        files = []
        for n, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
            path = work / f"API-{n}.csv"
            path.write_text(elf_line(*HEADER) + "".join(rows[start:end]))
            files.append(path)
        assert len(batches(files)) == 1
        batched_lake, single_lake = Lake(work / "batched"), Lake(work / "single")
        batched = ingest([str(f) for f in files], batched_lake)
        singles = IngestSummary()
        for f in files:
            singles.files += ingest([str(f)], single_lake).files
        assert per_file(batched) == per_file(singles)
        assert lake_content(batched_lake) == lake_content(single_lake)
