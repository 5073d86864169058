"""The baseline store: the features of every day, kept as Parquet beside the lake and updated
incrementally.

Layout under ``<lake>/baseline/``::

    hourly/date=<YYYY-MM-DD>/part-<uuid>.parquet   (identity, hour, feature, value)
    facts/date=<YYYY-MM-DD>/part-<uuid>.parquet    (identity, date, kind, value, first_time, last_time, n)
    identities.parquet                             (user_id, name, seen): latest username of each user id
    peers.parquet                                  (identity, peer_group), from a directory export
    state.json                                     fingerprint of the lake files each day was built from

A day's features depend on that day's events only, so :meth:`BaselineStore.update` rebuilds exactly
the days whose lake partitions changed since the last update (new files from an ingest or the watcher,
late Event Log Files included) and leaves the others alone; a second update with nothing new reads
no events. A day is swapped in by renaming its new folder into place, so a crash leaves the previous
version or the new one, never half of each.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from crmguard.anomaly.features import FACT_COLUMNS, HOURLY_COLUMNS, facts_sql, hourly_sql, idmap_sql, projection_sql
from crmguard.intel.db import IntelDB
from crmguard.lake import Lake
from crmguard.sources.sql import sql_str

PASS_BYTES = 64 * 2**20
"""Parquet bytes of lake files built per pass (whole days; at least one day): bounds memory on large
lakes while keeping the number of passes low."""


@dataclass(frozen=True)
class UpdateResult:
    """What an update did: days rebuilt, days dropped (gone from the lake), days already current,
    events read, feature rows and fact rows written, seconds taken."""

    rebuilt: tuple[str, ...]
    dropped: tuple[str, ...]
    current: int
    events: int
    hourly_rows: int
    fact_rows: int
    seconds: float


class BaselineStore:
    """Baseline features of ``lake``, stored under ``<lake>/baseline``."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.root = lake.root / "baseline"
        self.state_path = self.root / "state.json"

    # --- reading ---------------------------------------------------------------------------------

    def days(self) -> list[str]:
        """Dates (YYYY-MM-DD) with stored features, in order."""
        return sorted(json.loads(self.state_path.read_text())["days"]) if self.state_path.exists() else []

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Create views ``hourly``, ``facts``, ``peers`` and ``idmap`` on ``con`` (empty tables
        when nothing is stored yet)."""
        for view, columns in (("hourly", HOURLY_COLUMNS), ("facts", FACT_COLUMNS)):
            files = sorted(str(p) for p in (self.root / view).glob("date=*/*.parquet"))
            if files:
                listed = ", ".join(f"'{sql_str(f)}'" for f in files)
                con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM read_parquet([{listed}], "
                            "hive_partitioning = false)")
            else:
                con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {_empty(columns)}")
        for view, file, columns in (("peers", "peers.parquet", "identity VARCHAR, peer_group VARCHAR"),
                                    ("idmap", "identities.parquet", "user_id VARCHAR, name VARCHAR")):
            path = self.root / file
            if path.exists():
                con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {columns.replace(' VARCHAR', '')} "
                            f"FROM read_parquet('{sql_str(str(path))}')")
            else:
                con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {_empty(columns)}")

    # --- writing ---------------------------------------------------------------------------------

    def set_peers(self, peers: pa.Table) -> int:
        """Store the peer groups ``(identity, peer_group)``; identities are lower-cased. Returns how many."""
        self.root.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect()
        con.register("p", peers)
        tmp = self.root / f".peers-{uuid.uuid4().hex}.parquet"
        con.execute(f"COPY (SELECT DISTINCT lower(identity) AS identity, peer_group FROM p WHERE identity IS NOT NULL) "
                    f"TO '{sql_str(str(tmp))}' (FORMAT parquet)")
        os.replace(tmp, self.root / "peers.parquet")
        [(n,)] = con.execute(f"SELECT count(*) FROM '{sql_str(str(self.root / 'peers.parquet'))}'").fetchall()
        return int(n)

    def update(self, con: duckdb.DuckDBPyConnection, full: bool = False, intel: IntelDB | None = None,
               progress: Callable[[int, int], None] | None = None) -> UpdateResult:
        """Rebuild the features of every day whose lake files changed since the last update (every
        day when ``full``) and drop days no longer in the lake, using DuckDB connection ``con``;
        IPs are enriched from ``intel`` when given (ASN, country). ``progress(done, total)`` is called
        after each pass. Concurrent updates (a watcher and a scheduled run) take turns on a file
        lock. Returns the :class:`UpdateResult`."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return self._update(con, full, intel, progress)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _update(self, con: duckdb.DuckDBPyConnection, full: bool, intel: IntelDB | None,
                progress: Callable[[int, int], None] | None) -> UpdateResult:
        started = dt.datetime.now(dt.UTC)
        state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {"days": {}}
        prints, sizes = self._fingerprints()
        dirty = sorted(d for d, f in prints.items() if full or state["days"].get(d) != f)
        dropped = sorted(set(state["days"]) - set(prints))
        self.root.mkdir(parents=True, exist_ok=True)
        events = hourly_rows = fact_rows = 0
        if dirty:
            self._update_idmap(con, dirty)
        self.register(con)
        passes = _passes(dirty, sizes)
        for n, days in enumerate(passes, 1):
            e, h, f = self._build(con, days, intel)
            events, hourly_rows, fact_rows = events + e, hourly_rows + h, fact_rows + f
            for d in days:
                state["days"][d] = prints[d]
            self._save_state(state)
            if progress:
                progress(n, len(passes))
        for d in dropped:
            for folder in ("hourly", "facts"):
                shutil.rmtree(self.root / folder / f"date={d}", ignore_errors=True)
            state["days"].pop(d, None)
        self._save_state(state)
        seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
        return UpdateResult(tuple(dirty), tuple(dropped), len(prints) - len(dirty), events, hourly_rows, fact_rows, seconds)

    def _fingerprints(self) -> tuple[dict[str, str], dict[str, int]]:
        """Per lake day: a fingerprint of its files (names and sizes) and their total bytes."""
        by_day: dict[str, list[str]] = {}
        sizes: dict[str, int] = {}
        for path in self.lake.event_files():
            p = Path(path)
            day = p.parent.name.removeprefix("date=")
            size = p.stat().st_size
            by_day.setdefault(day, []).append(f"{p.parent.parent.name}/{p.name}:{size}")
            sizes[day] = sizes.get(day, 0) + size
        return {d: hashlib.sha256("\n".join(sorted(v)).encode()).hexdigest()[:32] for d, v in by_day.items()}, sizes

    def _day_files(self, days: list[str]) -> list[str]:
        sources = {p.name.removeprefix("source=") for p in self.lake.events_dir.glob("source=*")}
        return self.lake.event_files({(s, d) for s in sources for d in days})

    def _update_idmap(self, con: duckdb.DuckDBPyConnection, days: list[str]) -> None:
        """Merge the usernames seen in ``days`` into ``identities.parquet`` (the latest name wins,
        whichever day is rebuilt)."""
        path = self.root / "identities.parquet"
        con.execute(f"CREATE OR REPLACE TEMP VIEW day_files AS {self.lake.events_sql(self._day_files(days))}")
        merged = idmap_sql("day_files")
        if path.exists():  # a day rebuilt late must not replace a newer name with an older one
            merged = (f"SELECT user_id, arg_max(name, seen) AS name, max(seen) AS seen FROM ({merged} UNION ALL "
                      f"SELECT user_id, name, seen FROM read_parquet('{sql_str(str(path))}')) GROUP BY user_id")
        tmp = self.root / f".identities-{uuid.uuid4().hex}.parquet"
        con.execute(f"COPY ({merged}) TO '{sql_str(str(tmp))}' "
                    "(FORMAT parquet)")
        os.replace(tmp, path)

    def _build(self, con: duckdb.DuckDBPyConnection, days: list[str], intel: IntelDB | None) -> tuple[int, int, int]:
        """Compute and swap in the features of ``days``; returns (events read, hourly rows, fact rows)."""
        start = dt.datetime.fromisoformat(days[0]).replace(tzinfo=dt.UTC)
        end = dt.datetime.fromisoformat(days[-1]).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
        con.execute(f"CREATE OR REPLACE TEMP VIEW day_files AS {self.lake.events_sql(self._day_files(days))}")
        source = intel.enrich_sql(con, "day_files") if intel is not None and not intel.empty else "SELECT * FROM day_files"
        con.execute(f"CREATE OR REPLACE TEMP VIEW day_enriched AS {source}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE day_events AS {projection_sql('day_enriched', start, end)}")
        [(n_events,)] = con.execute("SELECT count(*) FROM day_events").fetchall()
        counts = []
        staging = self.root / f".staging-{uuid.uuid4().hex}"
        for folder, sql, date_expr in (("hourly", hourly_sql("day_events"), "CAST(hour AS DATE)"),
                                       ("facts", facts_sql("day_events"), "date")):
            out = staging / folder
            out.parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY (SELECT *, {date_expr} AS day FROM ({sql})) TO '{sql_str(str(out))}' "
                        "(FORMAT parquet, PARTITION_BY (day), FILENAME_PATTERN 'part-{uuid}')")
            counts.append(sum(pq.ParquetFile(p).metadata.num_rows for p in out.rglob("*.parquet")))
            for d in days:
                self._swap(out / f"day={d}", self.root / folder / f"date={d}")
        shutil.rmtree(staging, ignore_errors=True)
        con.execute("DROP TABLE day_events")
        return int(n_events), counts[0], counts[1]

    @staticmethod
    def _swap(built: Path, target: Path) -> None:
        """Put folder ``built`` in place of ``target`` (a day without rows leaves no folder)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if target.exists():
            old = target.with_name(f".old-{uuid.uuid4().hex}")
            os.replace(target, old)
        if built.exists():
            os.replace(built, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _save_state(self, state: dict[str, object]) -> None:
        tmp = self.state_path.with_name(f".state-{uuid.uuid4().hex}.json")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, self.state_path)


def _empty(columns: str) -> str:
    """A SELECT of no rows with ``columns`` (``"name TYPE, ..."``)."""
    parts = [c.strip().split(" ", 1) for c in columns.split(",")]
    return "SELECT " + ", ".join(f"NULL::{t} AS {n}" for n, t in parts) + " WHERE false"


def _passes(days: list[str], sizes: dict[str, int], budget: int = PASS_BYTES) -> list[list[str]]:
    """Split ``days`` (sorted) into runs of whole days of at most ``budget`` bytes each (a day larger
    than the budget is a pass of its own)."""
    passes: list[list[str]] = []
    used = 0
    for d in days:
        if passes and used + sizes.get(d, 0) <= budget:
            passes[-1].append(d)
            used += sizes.get(d, 0)
        else:
            passes.append([d])
            used = sizes.get(d, 0)
    return passes
