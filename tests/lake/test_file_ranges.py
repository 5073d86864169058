"""Event file names carry their time range, and a write compares its events only with the files
whose range overlaps theirs."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from crmguard.ingest import ingest
from crmguard.lake import Lake
from crmguard.lake.store import ranged_name, time_range

HEADER = '"EVENT_TYPE","TIMESTAMP","REQUEST_ID","USER_ID","CLIENT_IP","ROWS_PROCESSED"\n'


def elf(path: Path, hours: range, tag: str = "r") -> Path:
    """An ELF CSV with one API event per hour of 2025-04-01 in ``hours``."""
    rows = [f'"API","20250401{h:02d}0000.000","{tag}{h}","0055j000000utlP","81.2.69.142","{h}"\n' for h in hours]
    path.write_text(HEADER + "".join(rows))
    return path


def test_a_file_name_carries_the_time_range_of_its_events(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    ingest([str(elf(tmp_path / "a.csv", range(3, 7)))], lake)
    [path] = lake.event_files()
    first, last = time_range(path)  # type: ignore[misc]
    times = pq.read_table(path, columns=["time"]).column("time").to_pylist()
    assert (first, last) == (int(min(times).timestamp() * 1e6), int(max(times).timestamp() * 1e6))
    assert time_range(ranged_name(-5, 7)) == (-5, 7)
    assert time_range("part-0123456789abcdef0123456789abcdef.parquet") is None


def test_a_write_reads_only_the_files_its_time_range_overlaps(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    ingest([str(elf(tmp_path / "morning.csv", range(0, 6)))], lake)
    [morning] = lake.event_files()
    # Damage the stored file: a write that had to read it would now fail.
    Path(morning).write_bytes(b"not parquet")
    later = ingest([str(elf(tmp_path / "evening.csv", range(18, 24)))], lake)
    assert later.total.stored == 6
    late = ingest([str(elf(tmp_path / "late.csv", range(4, 5), tag="other"))], lake)
    [failed] = late.failed
    assert "could not write to the lake" in (failed.error or "") and Path(morning).name in (failed.error or "")


def test_duplicates_are_found_in_every_overlapping_file(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    for name, hours in (("a", range(0, 8)), ("b", range(8, 16)), ("c", range(16, 24))):
        ingest([str(elf(tmp_path / f"{name}.csv", hours))], lake)
    assert len(lake.event_files()) == 3
    # One file spanning all three: every event is a duplicate, of whichever file holds it.
    replay = ingest([str(elf(tmp_path / "all.csv", range(0, 24)))], lake)
    assert (replay.total.stored, replay.total.duplicate) == (0, 24)
    # A file named the old way (no range) is always compared.
    [first] = lake.event_files()[:1]
    Path(first).rename(Path(first).with_name("part-0123456789abcdef0123456789abcdef.parquet"))
    again = ingest([str(elf(tmp_path / "all2.csv", range(0, 24)))], lake)
    assert (again.total.stored, again.total.duplicate) == (0, 24)
    con = lake.connect()
    assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchall()[0] == (24, 24)
