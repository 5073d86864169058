"""The lake: events as Parquet partitioned by source and date, and a quarantine beside them.

Layout under the lake folder::

    events/source=<source>/date=<YYYY-MM-DD>/part-<uuid>.parquet
    quarantine/part-<uuid>.parquet
    _staging/   files being written (moved into place when complete)
    _tmp/       DuckDB spill space

Writes are idempotent: an event whose ``event_id`` is already stored in its partition, or
appears twice in one input, is counted as a duplicate and not written again (the copy in the
earliest file of a batch, earliest line first, is the one stored). Files are written
into ``_staging`` and renamed into place, so a crash never leaves a half-written Parquet file in
the lake, and a file lock serialises concurrent writers.

A file's name carries the time range of its events, ``part-<first>_<last>-<uuid>.parquet`` (epoch
microseconds). An event id hashes the source and the raw record, which holds the event's time, so a
duplicate has the same time as the stored copy: a write compares its events only with the files of
their partitions whose range overlaps theirs. A stream appending to today's partition every second
thus reads no earlier file, however many it wrote (files named ``part-<uuid>.parquet``, from earlier
releases, are always compared).

Compaction (:meth:`Lake.merge`, :meth:`Lake.switch`, :meth:`Lake.reap`) replaces many small files
of a partition with one: the merged file is written under ``_staging``; a journal under
``_compaction`` then names it and the files it replaces, and once the merged file is renamed into
its partition the listing shows it instead of them. The replaced files stay on disk, hidden, for a
grace period, so a reader that listed them before the switch can still read them; then they are
deleted. A crash at any point leaves each event visible exactly once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crmguard.errors import LakeError
from crmguard.schema import COLUMNS, EVENT_SCHEMA, QUARANTINE_SCHEMA, duckdb_type
from crmguard.sources.sql import connect, ident, scannable, sql_list, sql_str

_RANGED = re.compile(r"part-(-?\d+)_(-?\d+)-[0-9a-f]{32}\.parquet")


def time_range(path: str | Path) -> tuple[int, int] | None:
    """The (first, last) event time, in epoch microseconds, that an event file's name carries, or
    None for a name without one."""
    m = _RANGED.fullmatch(Path(path).name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def ranged_name(first_us: int, last_us: int) -> str:
    """A new event file name carrying the time range ``first_us``..``last_us`` (epoch µs)."""
    return f"part-{first_us}_{last_us}-{uuid.uuid4().hex}.parquet"


def _overlaps(path: str, first_us: int, last_us: int) -> bool:
    span = time_range(path)
    return span is None or (span[0] <= last_us and first_us <= span[1])


_DAY_US = 86_400_000_000
WRITE_WORKERS = 2
"""Event files of one commit (one per partition) written at the same time."""
ROW_GROUP_ROWS = 122_880
"""Rows per Parquet row group of a written event file: DuckDB's own size (a scan's unit of parallelism)."""


def _spans(chunk: pa.Table) -> dict[tuple[str, int], tuple[int, int]]:
    """(source, day) -> (first, last) event time in epoch µs, of a chunk with ``_us`` and ``_day``
    (days since 1970-01-01, UTC)."""
    groups = chunk.group_by(["source", "_day"], use_threads=False).aggregate([("_us", "min"), ("_us", "max")])
    return {(source, day): (lo, hi)
            for source, day, lo, hi in zip(*(groups.column(c).to_pylist() for c in ("source", "_day", "_us_min", "_us_max")),
                                           strict=True)}


def _date(day: int) -> str:
    """The ``YYYY-MM-DD`` of a partition, from its days since 1970-01-01."""
    return str(np.datetime64(day, "D"))


def _counts(chunk: pa.Table) -> dict[tuple[str, str], int]:
    """(log_file, source) -> rows of ``chunk``."""
    groups = chunk.group_by(["log_file", "source"], use_threads=False).aggregate([([], "count_all")])
    return {(file, source): n for file, source, n in zip(
        *(groups.column(c).to_pylist() for c in ("log_file", "source", "count_all")), strict=True)}


STAGED_ORPHAN_S = 3600.0

_NAMES = ", ".join(ident(c.name) for c in COLUMNS)
"""The event columns, in schema order, as a SELECT list."""
_ZSTD_LEVEL = 1
"""Compression level of event files (zstd): files as small as the default level's on this data,
for 30% less encoding time."""
_PARQUET = f"(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {_ZSTD_LEVEL})"
"""How DuckDB writes event files (compaction); ingest writes them with pyarrow, same compression."""


@dataclass(frozen=True)
class _Journal:
    """A switched (or half-switched) merge, as its journal under ``_compaction`` says (absolute paths)."""

    merged: str
    replaced: tuple[str, ...]
    staged: str
    at: float


@dataclass(frozen=True)
class Merge:
    """Files of one partition merged into one new file, written under ``_staging`` and not yet in
    the lake (see :meth:`Lake.switch`)."""

    replaced: tuple[str, ...]
    staged: str
    target: str
    rows: int


@dataclass
class CommitCounts:
    """Counts of one commit per (input file, source): stored and duplicate."""

    stored: dict[tuple[str, str], int] = field(default_factory=dict)
    duplicate: dict[tuple[str, str], int] = field(default_factory=dict)


class Lake:
    """A Parquet lake rooted at ``root`` (created on first write)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.events_dir = self.root / "events"
        self.quarantine_dir = self.root / "quarantine"
        self.journal_dir = self.root / "_compaction"
        self._journals: dict[str, _Journal] = {}
        """Compaction journals read so far, by file name (a journal never changes)."""

    # --- reading -------------------------------------------------------------------------------

    def event_files(self, partitions: set[tuple[str, str]] | None = None) -> list[str]:
        """Return the Parquet files of the events, optionally only those of the given
        (source, YYYY-MM-DD) partitions."""
        if partitions is None:
            folders = [d for s in _subfolders(self.events_dir, "source=") for d in _subfolders(s, "date=")]
        else:
            folders = [str(self.events_dir / f"source={source}" / f"date={date}") for source, date in sorted(partitions)]
        return self._visible(folders)

    def _visible(self, folders: list[str]) -> list[str]:
        """The event files of ``folders`` less those merged away."""
        found = [f for folder in folders for f in sorted(_parquet_files(folder))]
        # Journals after the listing: a merged file listed was renamed in after its journal was
        # written, so its journal is read; one renamed in since is not listed, nor are its inputs hidden.
        hidden = self._replaced(set(found))
        return [f for f in found if f not in hidden] if hidden else found

    def _replaced(self, listed: set[str]) -> set[str]:
        """The files that the merges whose merged file is in ``listed`` replaced (hidden)."""
        if not self.journal_dir.exists():
            return set()
        hidden: set[str] = set()
        for name in os.listdir(self.journal_dir):
            journal = self._journal(name)
            if journal is not None and journal.merged in listed:
                hidden.update(journal.replaced)
        return hidden

    def _journal(self, name: str) -> _Journal | None:
        """The compaction journal ``name`` (read once: a journal never changes), or None when it
        is not one or is gone."""
        journal = self._journals.get(name)
        if journal is None and name.endswith(".json"):
            try:
                doc = json.loads((self.journal_dir / name).read_text())
            except FileNotFoundError:  # reaped meanwhile
                return None
            journal = self._journals[name] = _Journal(
                str(self.root / doc["merged"]), tuple(str(self.root / r) for r in doc["replaced"]),
                str(self.root / doc["staged"]), float(doc["at"]))
        return journal

    def quarantine_files(self) -> list[str]:
        """Return the quarantine Parquet files."""
        return sorted(str(p) for p in self.quarantine_dir.glob("*.parquet"))

    def connect(self, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
        """Return a DuckDB connection (a new one unless ``con`` is given) with views ``events``
        and ``quarantine`` over the lake; they are empty views with the right columns when the
        lake has no data yet."""
        con = con or connect(temp_dir=str(self.root / "_tmp"))
        con.execute(f"CREATE OR REPLACE TEMP VIEW events AS {self.events_sql()}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW quarantine AS {self._quarantine_sql()}")
        return con

    def events_sql(self, files: list[str] | None = None) -> str:
        """The SELECT behind the ``events`` view (all event files, or ``files``)."""
        files = self.event_files() if files is None else files
        if not files:
            cols = ", ".join(f"NULL::{duckdb_type(c)} AS {c.name}" for c in COLUMNS)
            return f"SELECT {cols}, NULL::DATE AS date WHERE false"
        return (
            f"SELECT {_NAMES}, date FROM read_parquet({sql_list(files)}, hive_partitioning=true, union_by_name=true, "
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

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Hold the writer lock; a DuckDB error becomes a ``LakeError`` saying what failed."""
        with self.locked():
            try:
                yield
            except duckdb.Error as exc:
                raise LakeError(f"could not write {what}: {exc}", file=str(self.root)) from exc

    def start_batch(self, con: duckdb.DuckDBPyConnection) -> None:
        """Begin a new input file or batch of files: the chunks committed next are deduplicated
        against the lake as it is now and against each other."""
        self._before_file: dict[tuple[str, str], list[str]] = {}
        # Ids written by the batch's last chunk are kept here and moved into the connection's
        # batch_seen table (which can spill) only when a later chunk needs them.
        self._last_ids: pa.ChunkedArray | None = None
        self._seen_table = False

    def commit_events(self, con: duckdb.DuckDBPyConnection, chunk: pa.Table) -> CommitCounts:
        """Write one staged ``chunk`` (see :mod:`crmguard.sources.staging`) using ``con``:
        events with a valid time go to their (source, date) partitions unless already stored
        (in the lake, earlier in the batch or in an earlier file or line of the chunk); records
        without a valid time move to ``qstaged``.

        Returns stored and duplicate counts per (``log_file``, source) (quarantine is counted by
        :meth:`commit_quarantine`).
        """
        if not hasattr(self, "_before_file"):
            self.start_batch(con)
        with self._writing("to the lake"):
            return self._commit_events(con, chunk)

    def commit_quarantine(self, con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], int]:
        """Write ``con``'s ``qstaged`` records to the quarantine (each record once, however often
        it is replayed) and empty it. Returns counts of the records set aside per (file, source),
        source ``unknown`` when the record was not recognised."""
        try:
            with self._writing("the quarantine"):
                return self._write_quarantine(con)
        finally:
            con.execute("DELETE FROM qstaged")

    def _commit_events(self, con: duckdb.DuckDBPyConnection, chunk: pa.Table) -> CommitCounts:
        # The bookkeeping is Arrow compute over the chunk: a query costs DuckDB some 10-30 ms to
        # plan, about what a live stream's whole second of events takes to count and write.
        counts = CommitCounts()
        if chunk.column("time").null_count:
            self._quarantine_timeless(con, chunk)
            chunk = chunk.filter(pc.is_valid(chunk.column("time")))
        if not chunk.num_rows:
            return counts
        us = pc.cast(chunk.column("time"), pa.int64()).to_numpy()
        chunk = chunk.append_column("_us", pa.array(us)).append_column("_day", pa.array(us // _DAY_US))
        spans = _spans(chunk)
        # Compare with what the chunk's partitions held before this batch (listed once per batch)
        # in the chunk's time range, and with what earlier chunks of the batch wrote: never re-read
        # our own output. An event id hashes the source and the record, so it has one partition
        # and one time.
        partitions = {(source, day): (source, _date(day)) for source, day in spans}
        existing = [f for key, (lo, hi) in sorted(spans.items())
                    for f in self._before_file.setdefault(partitions[key], self.event_files({partitions[key]}))
                    if _overlaps(f, lo, hi)]
        fresh = self._fresh(con, chunk, existing)
        stored = _counts(fresh)
        for key, n in _counts(chunk).items():
            counts.stored[key] = stored.get(key, 0)
            counts.duplicate[key] = n - counts.stored[key]
        if fresh.num_rows:
            self._write_partitions(fresh)
            self._last_ids = fresh.column("event_id")
        return counts

    def _quarantine_timeless(self, con: duckdb.DuckDBPyConnection, chunk: pa.Table) -> None:
        """Move the records of ``chunk`` without a valid time to ``qstaged``."""
        con.register("staged", chunk)
        try:
            con.execute(
                """INSERT INTO qstaged
                SELECT log_file, _line, _record, source, _time_field,
                       'impossible or missing timestamp: ' || coalesce('"' || _time_raw || '"', 'no value'), raw
                FROM staged WHERE time IS NULL"""
            )
        finally:
            con.unregister("staged")

    def _fresh(self, con: duckdb.DuckDBPyConnection, chunk: pa.Table, existing: list[str]) -> pa.Table:
        """The rows of ``chunk`` (timed, with ``_us`` and ``_day``) to store, in chunk order: not in
        the ``existing`` files nor written earlier in the batch, and of an id repeated in the
        chunk only the copy of the earliest file, line and record. DuckDB is asked only when
        something may be repeated: a live stream's batches then cost no query at all."""
        if self._last_ids is not None:
            if not self._seen_table:
                con.execute("CREATE OR REPLACE TEMP TABLE batch_seen (event_id VARCHAR)")
                self._seen_table = True
            con.register("last_ids", pa.table({"event_id": self._last_ids}))
            try:
                con.execute("INSERT INTO batch_seen SELECT event_id FROM last_ids")
            finally:
                con.unregister("last_ids")
            self._last_ids = None
        repeated = pc.count_distinct(chunk.column("event_id")).as_py() != chunk.num_rows
        if not (existing or self._seen_table or repeated):
            return chunk
        joins = [f"ANTI JOIN read_parquet({sql_list(existing)}) k ON k.event_id = c.event_id"] if existing else []
        if self._seen_table:
            joins.append("ANTI JOIN batch_seen s ON s.event_id = c.event_id")
        first = ("QUALIFY row_number() OVER (PARTITION BY c.event_id ORDER BY c._file, c._line, c._record, c._pos) = 1"
                 if repeated else "")
        con.register("staged", scannable(chunk.select(["event_id", "_file", "_line", "_record"]).append_column(
            "_pos", pa.array(np.arange(chunk.num_rows, dtype=np.int64)))))
        try:
            keep = con.execute(f"SELECT c._pos FROM staged c {' '.join(joins)} {first}").fetchnumpy()["_pos"]
        finally:
            con.unregister("staged")
        # Positions are distinct: all kept means the chunk as it is (a take copies every raw record).
        return chunk if len(keep) == chunk.num_rows else chunk.take(np.sort(keep))

    def _write_partitions(self, fresh: pa.Table) -> None:
        """Write the rows of ``fresh`` to one new Parquet file per (source, date), named with its
        time range, each written under ``_staging`` and moved into its partition when complete."""
        staging = self.root / "_staging"
        staging.mkdir(parents=True, exist_ok=True)
        spans = _spans(fresh)
        events = fresh.select(list(EVENT_SCHEMA.names)).cast(EVENT_SCHEMA)

        def write(key: tuple[str, int]) -> None:
            (source, day), (lo, hi) = key, spans[key]
            part = events
            if len(spans) > 1:
                part = events.filter(pc.and_(pc.equal(fresh.column("source"), source),
                                             pc.equal(fresh.column("_day"), day)))
            name = ranged_name(lo, hi)
            tmp = staging / name
            pq.write_table(part, tmp, compression="zstd", compression_level=_ZSTD_LEVEL, row_group_size=ROW_GROUP_ROWS)
            target = self.events_dir / f"source={source}" / f"date={_date(day)}"
            target.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target / name)

        keys = sorted(spans)
        if len(keys) == 1:
            write(keys[0])
            return
        # pyarrow encodes a file on one thread, without the GIL: the partitions are written side by side.
        with ThreadPoolExecutor(max_workers=WRITE_WORKERS, thread_name_prefix="lake-write") as pool:
            list(pool.map(write, keys))

    # --- compaction ----------------------------------------------------------------------------

    def merge(self, files: list[str], con: duckdb.DuckDBPyConnection | None = None) -> Merge:
        """Write the events of ``files`` (event files of one partition) into one new file under
        ``_staging``, in the order of the files' time ranges, named with their combined range; the
        lake is unchanged until :meth:`switch`. Uses ``con`` (default: a new connection). Returns
        the merge. Raises ``LakeError`` when the files span several partitions or cannot be read."""
        if not files:
            raise LakeError("nothing to merge", file=str(self.root))
        folders = {str(Path(f).parent) for f in files}
        if len(folders) > 1:
            raise LakeError(f"cannot merge files of {len(folders)} partitions", file=str(self.root))
        ranges = {f: time_range(f) for f in files}
        ordered = sorted(files, key=lambda f: ((ranges[f] or (-(1 << 62), 0))[0], f))
        own = con is None
        con = con or connect(temp_dir=str(self.root / "_tmp"))
        try:
            # Insertion order kept: the rows come out file after file, nearly sorted by time.
            con.execute("SET preserve_insertion_order = true")
            source = f"read_parquet({sql_list(ordered)}, union_by_name=true)"
            spans = [r for r in ranges.values() if r is not None]
            if len(spans) == len(files):
                first, last = min(r[0] for r in spans), max(r[1] for r in spans)
            else:
                first, last = con.execute(f"SELECT epoch_us(min(time)), epoch_us(max(time)) FROM {source}").fetchall()[0]
            name = ranged_name(first, last)
            staging = self.root / "_staging"
            staging.mkdir(parents=True, exist_ok=True)
            tmp = staging / name
            [(rows,)] = con.execute(f"COPY (SELECT {_NAMES} FROM {source}) TO '{sql_str(str(tmp))}' {_PARQUET}").fetchall()
        except duckdb.Error as exc:
            raise LakeError(f"could not merge {len(files)} files: {exc}", file=str(self.root)) from exc
        finally:
            if own:
                con.close()
        return Merge(tuple(ordered), str(tmp), str(Path(next(iter(folders))) / name), int(rows))

    def switch(self, merge: Merge) -> str:
        """Put ``merge``'s file in its partition in place of the files it replaces, atomically for
        readers of :meth:`event_files`: a journal names them, then the rename makes the merged file
        visible and them hidden. They stay on disk until :meth:`reap`. Returns the merged file's
        path. Raises ``LakeError`` when a replaced file is gone (another merge took it)."""
        with self.locked():
            visible = set(self._visible([str(Path(merge.target).parent)]))
            if not visible.issuperset(merge.replaced):
                raise LakeError("a file of this merge was merged or deleted meanwhile", file=merge.target)
            self.journal_dir.mkdir(parents=True, exist_ok=True)
            doc = {"merged": self._relative(merge.target), "replaced": [self._relative(f) for f in merge.replaced],
                   "staged": self._relative(merge.staged), "at": time.time()}
            tmp = self.root / "_staging" / f"journal-{uuid.uuid4().hex}.json"
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, self.journal_dir / tmp.name)
            os.replace(merge.staged, merge.target)
        return merge.target

    def reap(self, grace_s: float) -> list[str]:
        """Delete the files that merges switched at least ``grace_s`` seconds ago replaced (and
        their journals); undo merges a crash left before their rename (journal and staged file
        deleted, the replaced files stay visible); delete staged files a crash left behind more
        than :data:`STAGED_ORPHAN_S` ago. Returns the paths of the deleted event files."""
        deleted: list[str] = []
        with self.locked():
            # Left by a crash mid-write (a merge, a commit); an hour is longer than any write takes.
            for path in (self.root / "_staging").glob("*"):
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - path.stat().st_mtime > STAGED_ORPHAN_S:
                        path.unlink()
            if not self.journal_dir.exists():
                return []
            journals = [(name, j) for name in os.listdir(self.journal_dir) if (j := self._journal(name))]
            # Oldest first: a merged file that a later merge replaced is deleted after its own
            # journal is done with (else that journal would look undone, its inputs visible again).
            for name, journal in sorted(journals, key=lambda nj: (nj[1].at, nj[0])):
                if not os.path.exists(journal.merged):
                    Path(journal.staged).unlink(missing_ok=True)
                elif time.time() - journal.at >= grace_s:
                    for path in journal.replaced:
                        Path(path).unlink(missing_ok=True)
                        deleted.append(path)
                else:
                    continue
                (self.journal_dir / name).unlink()
                self._journals.pop(name, None)
        return deleted

    def _relative(self, path: str) -> str:
        return str(Path(path).relative_to(self.root))

    def _write_quarantine(self, con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], int]:
        con.execute(
            """CREATE OR REPLACE TEMP TABLE qfresh AS
            SELECT md5(concat_ws(chr(30), file, line, record, reason, content)) AS quarantine_id,
                   now() AS ingested_at, file, line, record, source, field, reason, content
            FROM qstaged"""
        )
        counts = {
            (file, source): n
            for file, source, n in con.execute(
                "SELECT file, coalesce(source, 'unknown'), count(*) FROM qfresh GROUP BY ALL"
            ).fetchall()
        }
        existing = self.quarantine_files()
        if existing:
            con.execute(
                f"DELETE FROM qfresh WHERE quarantine_id IN "
                f"(SELECT quarantine_id FROM read_parquet({sql_list(existing)}))"
            )
        con.execute("DELETE FROM qfresh WHERE rowid NOT IN (SELECT min(rowid) FROM qfresh GROUP BY quarantine_id)")
        if con.execute("SELECT count(*) FROM qfresh").fetchall()[0][0]:
            self.quarantine_dir.mkdir(parents=True, exist_ok=True)
            name = f"part-{uuid.uuid4().hex}.parquet"
            tmp = self.root / "_staging" / name
            tmp.parent.mkdir(parents=True, exist_ok=True)
            con.execute(
                f"COPY (SELECT * FROM qfresh ORDER BY file, line, record) TO '{sql_str(str(tmp))}' (FORMAT parquet)"
            )
            os.replace(tmp, self.quarantine_dir / name)
        con.execute("DROP TABLE IF EXISTS qfresh")
        return counts


def _subfolders(folder: str | Path, prefix: str) -> list[str]:
    try:
        return sorted(e.path for e in os.scandir(folder) if e.name.startswith(prefix) and e.is_dir())
    except FileNotFoundError:
        return []


def _parquet_files(folder: str) -> list[str]:
    try:
        return [e.path for e in os.scandir(folder) if e.name.endswith(".parquet") and e.is_file()]
    except FileNotFoundError:
        return []


def _arrow_to_duck(t: object) -> str:
    import pyarrow as pa

    return {pa.string(): "VARCHAR", pa.int64(): "BIGINT"}.get(t, "TIMESTAMPTZ")  # type: ignore[call-overload]
