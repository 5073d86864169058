"""The lake: events as Parquet partitioned by source and date, and a quarantine beside them.

Layout under the lake folder::

    events/source=<source>/date=<YYYY-MM-DD>/part-<uuid>.parquet
    quarantine/part-<uuid>.parquet
    _staging/   files being written (moved into place when complete)
    _tmp/       DuckDB spill space

Writes are idempotent: an event whose ``event_id`` is already stored in its partition, or
appears twice in one input, is counted as a duplicate and not written again. Files are written
into ``_staging`` and renamed into place, so a crash never leaves a half-written Parquet file in
the lake, and a file lock serialises concurrent writers.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from crmguard.errors import LakeError
from crmguard.schema import COLUMNS, QUARANTINE_SCHEMA, duckdb_type
from crmguard.sources.sql import connect, ident, sql_list, sql_str

ROW_GROUP_SIZE = 262_144


@dataclass
class CommitCounts:
    """Per-source counts of one commit: stored, duplicate, quarantined."""

    stored: dict[str, int] = field(default_factory=dict)
    duplicate: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)


class Lake:
    """A Parquet lake rooted at ``root`` (created on first write)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.events_dir = self.root / "events"
        self.quarantine_dir = self.root / "quarantine"

    # --- reading -------------------------------------------------------------------------------

    def event_files(self, partitions: set[tuple[str, str]] | None = None) -> list[str]:
        """Return the Parquet files of the events, optionally only those of the given
        (source, YYYY-MM-DD) partitions."""
        if partitions is None:
            return sorted(str(p) for p in self.events_dir.glob("source=*/date=*/*.parquet"))
        files: list[str] = []
        for source, date in sorted(partitions):
            files += sorted(str(p) for p in (self.events_dir / f"source={source}" / f"date={date}").glob("*.parquet"))
        return files

    def quarantine_files(self) -> list[str]:
        """Return the quarantine Parquet files."""
        return sorted(str(p) for p in self.quarantine_dir.glob("*.parquet"))

    def connect(self, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
        """Return a DuckDB connection (a new one unless ``con`` is given) with views ``events``
        and ``quarantine`` over the lake; they are empty views with the right columns when the
        lake has no data yet."""
        con = con or connect(temp_dir=str(self.root / "_tmp"))
        con.execute(f"CREATE OR REPLACE TEMP VIEW events AS {self._events_sql()}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW quarantine AS {self._quarantine_sql()}")
        return con

    def _events_sql(self, files: list[str] | None = None) -> str:
        files = self.event_files() if files is None else files
        if not files:
            cols = ", ".join(f"NULL::{duckdb_type(c)} AS {c.name}" for c in COLUMNS)
            return f"SELECT {cols}, NULL::DATE AS date WHERE false"
        names = ", ".join(ident(c.name) for c in COLUMNS)
        return (
            f"SELECT {names}, date FROM read_parquet({sql_list(files)}, hive_partitioning=true, union_by_name=true, "
            "hive_types={'source': VARCHAR, 'date': DATE})"
        )

    def _quarantine_sql(self) -> str:
        files = self.quarantine_files()
        if not files:
            cols = ", ".join(f"NULL::{_arrow_to_duck(f.type)} AS {f.name}" for f in QUARANTINE_SCHEMA)
            return f"SELECT {cols} WHERE false"
        return f"SELECT * FROM read_parquet({sql_list(files)}, union_by_name=true)"

    # --- writing -------------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lake's writer lock (blocks while another process writes)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def commit(self, con: duckdb.DuckDBPyConnection) -> CommitCounts:
        """Write what ``con``'s staging tables hold (see :mod:`crmguard.sources.staging`):
        events with a valid time go to their partitions unless already stored; the rest, and
        everything in ``qstaged``, go to the quarantine. Empties the staging tables.

        Returns the per-source counts; stored + duplicate + quarantined equals the records staged.
        """
        with self.locked():
            try:
                return self._commit(con)
            except duckdb.Error as exc:
                raise LakeError(f"could not write to the lake: {exc}", file=str(self.root)) from exc
            finally:
                con.execute("DELETE FROM staged; DELETE FROM qstaged")

    def _commit(self, con: duckdb.DuckDBPyConnection) -> CommitCounts:
        counts = CommitCounts()
        con.execute(
            """INSERT INTO qstaged
            SELECT log_file, _line, _record, source, _time_field,
                   'impossible or missing timestamp: ' || coalesce('"' || _time_raw || '"', 'no value'), raw
            FROM staged WHERE time IS NULL"""
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE cand AS SELECT md5(source || chr(30) || raw) AS event_id, *, "
            "CAST(time AS DATE) AS date FROM staged WHERE time IS NOT NULL"
        )
        partitions = {(s, str(d)) for s, d in con.execute("SELECT DISTINCT source, date FROM cand").fetchall()}
        existing = self.event_files(partitions)
        known = (
            f"SELECT event_id FROM read_parquet({sql_list(existing)})" if existing
            else "SELECT NULL::VARCHAR AS event_id WHERE false"
        )
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE fresh AS
            SELECT * FROM cand c WHERE NOT EXISTS (SELECT 1 FROM ({known}) k WHERE k.event_id = c.event_id)
            QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY _line, _record) = 1"""
        )
        for source, staged_n, fresh_n in con.execute(
            """SELECT c.source, c.n, coalesce(f.n, 0) FROM (SELECT source, count(*) n FROM cand GROUP BY 1) c
               LEFT JOIN (SELECT source, count(*) n FROM fresh GROUP BY 1) f USING (source)"""
        ).fetchall():
            counts.stored[source] = fresh_n
            counts.duplicate[source] = staged_n - fresh_n
        if sum(counts.stored.values()):
            names = ", ".join(ident(c.name) for c in COLUMNS)
            self._write_partitioned(con, f"SELECT {names}, date FROM fresh ORDER BY source, date, time")
        self._write_quarantine(con, counts)
        con.execute("DROP TABLE IF EXISTS cand; DROP TABLE IF EXISTS fresh")
        return counts

    def _write_partitioned(self, con: duckdb.DuckDBPyConnection, query: str) -> None:
        staging = self.root / "_staging" / uuid.uuid4().hex
        staging.mkdir(parents=True)
        con.execute(
            f"COPY ({query}) TO '{sql_str(str(staging))}' (FORMAT parquet, PARTITION_BY (source, date), "
            f"COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_SIZE}, FILENAME_PATTERN 'part-{{uuid}}')"
        )
        for written in sorted(staging.glob("source=*/date=*/*.parquet")):
            target = self.events_dir / written.parent.parent.name / written.parent.name
            target.mkdir(parents=True, exist_ok=True)
            os.replace(written, target / written.name)
        shutil.rmtree(staging, ignore_errors=True)

    def _write_quarantine(self, con: duckdb.DuckDBPyConnection, counts: CommitCounts) -> None:
        con.execute(
            """CREATE OR REPLACE TEMP TABLE qfresh AS
            SELECT md5(concat_ws(chr(30), file, line, record, reason, content)) AS quarantine_id,
                   now() AS ingested_at, file, line, record, source, field, reason, content
            FROM qstaged"""
        )
        for source, n in con.execute("SELECT coalesce(source, 'unknown'), count(*) FROM qfresh GROUP BY 1").fetchall():
            counts.quarantined[source] = n
        existing = self.quarantine_files()
        if existing:
            con.execute(
                f"DELETE FROM qfresh WHERE quarantine_id IN (SELECT quarantine_id FROM read_parquet({sql_list(existing)}))"
            )
        con.execute("DELETE FROM qfresh WHERE rowid NOT IN (SELECT min(rowid) FROM qfresh GROUP BY quarantine_id)")
        if con.execute("SELECT count(*) FROM qfresh").fetchone()[0]:
            self.quarantine_dir.mkdir(parents=True, exist_ok=True)
            name = f"part-{uuid.uuid4().hex}.parquet"
            tmp = self.root / "_staging" / name
            tmp.parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY (SELECT * FROM qfresh ORDER BY file, line, record) TO '{sql_str(str(tmp))}' (FORMAT parquet)")
            os.replace(tmp, self.quarantine_dir / name)
        con.execute("DROP TABLE IF EXISTS qfresh")


def _arrow_to_duck(t: object) -> str:
    import pyarrow as pa

    return {pa.string(): "VARCHAR", pa.int64(): "BIGINT"}.get(t, "TIMESTAMPTZ")  # type: ignore[call-overload]
