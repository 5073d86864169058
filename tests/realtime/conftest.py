"""A simulated campaign as a stream: its events as NDJSON records in time order, cut into chunks,
with some events held back a few chunks (late arrivals), and the alerts one batch `detect` raises
over the same events."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from crmguard.alerts.store import Store
from crmguard.detect import detect
from crmguard.ingest import ingest
from crmguard.lake import Lake
from crmguard.realtime.progress import SUPERSEDED
from crmguard.simulate import simulate

CHUNKS = 10
LATE_EVERY = 2
LATE_PER_CHUNK = 4
LATE_BY = 3


@dataclass(frozen=True)
class Stream:
    """Chunks (lists of NDJSON lines) in arrival order, and the batch run over all of them."""

    chunks: list[list[str]]
    events: int
    batch_alerts: dict[str, tuple]
    batch_lake: Path


def alert_set(state: Path) -> dict[str, tuple]:
    """Alerts of a state DB that are not superseded: id -> (rule, key, count, first_seen, last_seen,
    fired_at)."""
    store = Store(state)
    try:
        return {a["id"]: (a["rule_id"], a["dedup_key"], a["event_count"], a["first_seen"], a["last_seen"],
                          a["context"].get("fired_at"))
                for a in store.list() if a["status"] != SUPERSEDED}
    finally:
        store.close()


@pytest.fixture(scope="session")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    """The vishing and insider campaigns (40 users, 2 days) streamed in :data:`CHUNKS` chunks."""
    root = tmp_path_factory.mktemp("stream")
    simulate(root / "sim", users=40, days=2, seed=11, campaigns=["vishing", "insider", "stolen-token"])
    ref = Lake(root / "ref")
    ingest([str(root / "sim" / "salesforce"), str(root / "sim" / "okta")], ref)
    con = ref.connect()
    # The lake keeps every record as JSON, which the parsers read back as the same event.
    lines = [r[0] for r in con.sql("SELECT raw FROM events ORDER BY time, event_id").fetchall()]
    con.close()
    n = len(lines)
    chunks = [lines[i * n // CHUNKS:(i + 1) * n // CHUNKS] for i in range(CHUNKS)]
    rng = random.Random(7)
    for i in range(0, CHUNKS - LATE_BY, LATE_EVERY):
        held = set(rng.sample(range(len(chunks[i])), LATE_PER_CHUNK))
        chunks[i + LATE_BY] += [chunks[i][j] for j in sorted(held)]
        chunks[i] = [x for j, x in enumerate(chunks[i]) if j not in held]
    everything = root / "all.ndjson"
    everything.write_text("\n".join(x for c in chunks for x in c) + "\n")
    batch_lake = root / "batch-lake"
    ingest([str(everything)], Lake(batch_lake))
    detect(Lake(batch_lake), root / "batch.db")
    return Stream(chunks, n, alert_set(root / "batch.db"), batch_lake)


def write_chunk(folder: Path, i: int, lines: list[str]) -> Path:
    """Write chunk ``i`` into ``folder`` atomically (temp name, then rename) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".chunk-{i:03d}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    final = folder / f"chunk-{i:03d}.ndjson"
    tmp.rename(final)
    return final


def lake_counts(lake: Path) -> tuple[int, int]:
    """(events, distinct event ids) stored in ``lake``."""
    con = Lake(lake).connect()
    try:
        return con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchall()[0]
    finally:
        con.close()


def differences(streamed: dict[str, tuple], batch: dict[str, tuple]) -> str:
    """Say which alerts differ between a streamed and a batch run (for assertion messages)."""
    lines = [f"only streamed: {k} {v}" for k, v in sorted(streamed.items()) if batch.get(k) != v]
    lines += [f"only batch:    {k} {v}" for k, v in sorted(batch.items()) if streamed.get(k) != v]
    return "\n".join(lines)
