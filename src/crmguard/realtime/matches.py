"""Incremental rule evaluation: keep the events any rule can match in memory, so each batch scans
only its new lake files and the rules then run over a small table instead of the whole look-back.

Correlations look back up to days (``repeated_report_export``: 7 days), so running the pack over
the raw lake each second would re-read days of events per batch. Instead, each new lake file is
scanned once: events matching any rule's condition (allow-lists ignored, so the set is a superset of
what any rule can match) go to the ``cand`` table, with the names of the rules whose condition they
meet in a ``__hits`` column, and for every user id the latest event naming it goes to ``idents``.
:meth:`MatchCache.run` points the ``events`` view at ``cand`` and calls the engine's ``run_rules``
with ``idents`` as its identity table (the latest username per user id, which it would otherwise
compute from every event) and the conditions read from ``__hits`` (each condition is tested once per
event, when it is stored, not again at every run): the engine's one scan finds exactly the matches
it would find over the whole lake, and names the same actors.

A rule whose condition mentions ``actor`` (resolved through that identity table, which changes as
events arrive) cannot be tested once per event; with such a rule every event is kept and that rule's
condition is tested at each run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crmguard.engine.rules import ACTOR, Rule, mentions
from crmguard.engine.run import HITS, Alert, hits_sql, match_columns, match_reads, run_rules
from crmguard.lake import Lake
from crmguard.lake.store import time_range
from crmguard.sources.sql import connect, sql_str


@dataclass(frozen=True)
class NewEvents:
    """The events of a batch's new lake files: how many, their time range, how many are late."""

    count: int
    min_time: dt.datetime | None
    max_time: dt.datetime | None
    late: int
    matched: frozenset[str] = frozenset()
    """Names of the detection rules whose condition some new event meets (allow-lists ignored)."""


BULKY = ("raw", "log_file")
"""Event columns the cache leaves out when no rule reads them."""
IDENT_COLUMNS = "user_id, username, time, event_id"


def _latest_identities(source: str) -> str:
    """SELECT of the identity rows of ``source``: per user id with a username, its latest event."""
    return (f"SELECT {IDENT_COLUMNS} FROM {source} WHERE user_id IS NOT NULL AND username IS NOT NULL "
            "QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY time DESC, event_id) = 1")


class MatchCache:
    """Candidate events of ``lake`` for ``rules`` (see the module doc), enriched from ``intel_dir``
    when it holds intel files, in an in-memory DuckDB database."""

    def __init__(self, lake: Lake, rules: list[Rule], intel_dir: Path | None = None) -> None:
        from crmguard.intel import load, register_macros

        self.lake = lake
        self.rules = rules
        (lake.root / "_tmp").mkdir(parents=True, exist_ok=True)
        self.con = connect(temp_dir=str(lake.root / "_tmp"))
        register_macros(self.con)
        # An in-memory database checkpoints (compresses) every 16 MB appended: a third of a second,
        # every few batches. The cache is rebuilt from the lake at start-up, never checkpointed.
        self.con.execute("SET checkpoint_threshold = '1TB'")
        intel = load(intel_dir) if intel_dir is not None else None
        self.intel = intel if intel is not None and not intel.empty else None
        self.detections = [r for r in rules if r.condition]
        conds = [r.condition for r in self.detections]
        self.precomputed = frozenset(r.name for r in self.detections if not mentions(ACTOR, r.condition))
        self.keep_all = len(self.precomputed) < len(self.detections)
        self.hits = hits_sql(sorted((r.name, r.condition) for r in self.detections if r.name in self.precomputed))
        # The raw record and the file name are most of an event's bytes; rules seldom read them
        # (a Sigma keyword searches raw). Unread, they are never decoded from the lake.
        used = [*conds, *match_columns(rules)]
        self.unread = [c for c in BULKY if not any(mentions(c, u) for u in used)]
        # A raw record read only by conditions tested once is kept only where one of them holds.
        raw_rules = [r.name for r in self.detections if mentions("raw", r.condition)]
        self.raw_kept = ("raw" not in self.unread and set(raw_rules) <= self.precomputed
                         and not any(mentions("raw", c) for c in match_columns(rules)))
        self.raw_rules = raw_rules
        self.ready = False
        self.scanned: list[str] = []
        self.kept: dict[str, dt.datetime] = {}
        """Per detection rule name, the time from which ``cand`` holds every event meeting its
        condition (earlier ones were pruned); a rule not named here has all of them."""
        self.rows = 0
        """Candidate rows held (counted as they are added and pruned)."""
        self.rebuilds = 0

    def _fresh_view(self, files: list[str]) -> None:
        unread = f" EXCLUDE ({', '.join(self.unread)})" if self.unread else ""
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW fresh_lake AS SELECT *{unread} FROM ({self.lake.events_sql(files)})")
        if self.intel is not None:
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW fresh AS {self.intel.enrich_sql(self.con, 'fresh_lake')}")
        else:
            self.con.execute("CREATE OR REPLACE TEMP VIEW fresh AS SELECT * FROM fresh_lake")
        if not self.ready:
            self.con.execute(f"CREATE TABLE cand AS {self._candidates('false')}")
            self.con.execute(f"CREATE TABLE idents AS SELECT {IDENT_COLUMNS} FROM fresh WHERE false")
            self.ready = True

    def _candidates(self, where: str = "true") -> str:
        """SELECT of the ``fresh`` events meeting ``where`` and some rule's condition, with their
        :data:`HITS` (and their raw record only where a rule reading it holds)."""
        raw = ""
        if self.raw_kept:
            wanted = "[" + ", ".join(f"'{sql_str(n)}'" for n in self.raw_rules) + "]::VARCHAR[]"
            raw = f" REPLACE (CASE WHEN list_has_any({HITS}, {wanted}) THEN raw END AS raw)"
        kept = "true" if self.keep_all else f"len({HITS}) > 0"
        return f"SELECT *{raw} FROM (SELECT *, {self.hits} AS {HITS} FROM fresh WHERE {where}) WHERE {kept}"

    def add(self, files: list[str], watermark: dt.datetime | None = None) -> NewEvents:
        """Scan the lake ``files`` (new to the cache) once: keep their candidate events and identity
        rows. Returns their count, time range and how many lie before ``watermark`` (late)."""
        self._fresh_view(files)
        if not files:
            return NewEvents(0, None, None, 0)
        mark = f"TIMESTAMPTZ '{watermark.isoformat()}'" if watermark else "NULL"
        n, lo, hi, late = self.con.execute(
            f"SELECT count(*), min(time), max(time), count(*) FILTER (WHERE time < {mark}) FROM fresh"
        ).fetchall()[0]
        # The rule names come back with the rows stored: one statement, the candidates written once.
        hits = self.con.execute(f"INSERT INTO cand {self._candidates()} RETURNING {HITS}").fetchnumpy()[HITS]
        matched = frozenset(np.concatenate(hits) if len(hits) else ()) | {
            r.name for r in self.detections if r.name not in self.precomputed}
        self.rows += len(hits)
        self.scanned += files
        self.con.execute(f"INSERT INTO idents {_latest_identities('fresh')}")
        # Keep one identity row per user id: its latest event (the engine's arg_max(username, time)).
        self.con.execute(
            "DELETE FROM idents WHERE rowid IN (SELECT rowid FROM (SELECT rowid, row_number() OVER "
            "(PARTITION BY user_id ORDER BY time DESC, event_id) AS k FROM idents) WHERE k > 1)"
        )
        return NewEvents(n, lo, hi, late, matched)

    def load(self, files: list[str], horizons: dict[str, dt.datetime] | None = None) -> None:
        """Start-up: take the evaluated lake ``files`` into an empty cache. The identity rows come
        from every file (four narrow columns); with ``horizons`` (as for :meth:`prune`: per rule
        name, the earliest time a later run can read its matches), the candidates only from the
        earliest of them on, read from the files whose time range reaches it, so a restart after
        weeks does not read weeks of events. A run that needs more rebuilds, as after a prune."""
        earliest = (min(horizons.values()) if horizons and all(r.name in horizons for r in self.detections)
                    and self.detections else None)
        if earliest is None:
            self.add(files)
            return
        cutoff = int(earliest.timestamp() * 1_000_000)
        recent = [f for f in files if (span := time_range(f)) is None or span[1] >= cutoff]
        self._fresh_view(recent)
        after = f"time >= TIMESTAMPTZ '{earliest.isoformat()}'"
        [(self.rows,)] = self.con.execute(f"INSERT INTO cand {self._candidates(after)}").fetchall()
        if files:
            self.con.execute(f"INSERT INTO idents {_latest_identities(f'({self.lake.events_sql(files)})')}")
        self.scanned = list(files)
        self.kept = dict.fromkeys((r.name for r in self.detections), earliest)

    def replaced(self, files: tuple[str, ...], merged: str) -> None:
        """Note that the lake file ``merged`` now holds the events of the scanned ``files`` (a
        rebuild reads it instead)."""
        gone = set(files)
        self.scanned = [f for f in self.scanned if f not in gone] + [merged]

    def affected(self, matched: frozenset[str]) -> list[Rule]:
        """The rules whose alerts new events meeting the ``matched`` conditions can change: those
        detections, and the correlations over any of them (with all their base rules)."""
        names = set(matched)
        corrs = [r for r in self.rules if r.correlation and names & set(r.correlation.rules)]
        for c in corrs:
            names |= set(c.correlation.rules)  # type: ignore[union-attr]
        return [r for r in self.rules if r.name in names or r in corrs]

    def run(self, since: dt.datetime | None, rules: list[Rule] | None = None,
            starts: dict[str, dt.datetime] | None = None, touched: dt.datetime | None = None) -> list[Alert]:
        """Run ``rules`` (default: all) over the candidate events at or after ``since`` (and, per
        rule, at or after its time in ``starts``); returns the alerts (with ``touched``, only those
        of groups with a match at or after it: see :func:`~crmguard.engine.run.run_rules`)."""
        if not self.ready:
            return []
        rules = self.rules if rules is None else rules
        self._ensure(rules, since, starts or {})
        self.con.execute("CREATE OR REPLACE TEMP VIEW events AS SELECT * FROM cand")
        return run_rules(self.con, rules, since, None, starts, together=True,
                         identities="SELECT user_id, username AS name FROM idents", hits=self.precomputed,
                         touched=touched)

    def prune(self, horizons: dict[str, dt.datetime]) -> int:
        """Drop the candidates no later run can read: those meeting no rule's condition at or after
        that rule's time in ``horizons`` (rule name -> time; a rule not named keeps all its events).
        Returns the rows dropped. A later run that needs more (an event later than the horizons
        allowed for) rebuilds the cache from the lake first."""
        if not self.ready or not self.detections:
            return 0
        if self.keep_all:
            # Conditions naming actor cannot be tested per event: keep what the earliest rule needs.
            if any(r.name not in horizons for r in self.detections):
                return 0
            earliest = min(horizons[r.name] for r in self.detections)
            keep = f"time >= TIMESTAMPTZ '{earliest.isoformat()}'"
            moved = dict.fromkeys((r.name for r in self.detections), earliest)
        else:
            keep = " OR ".join((f"(time >= TIMESTAMPTZ '{horizons[r.name].isoformat()}' AND " if r.name in horizons else "(")
                               + f"list_contains({HITS}, '{sql_str(r.name)}'))" for r in self.detections)
            moved = {r.name: horizons[r.name] for r in self.detections if r.name in horizons}
        [(dropped,)] = self.con.execute(f"DELETE FROM cand WHERE NOT ({keep})").fetchall()
        for name, t in moved.items():
            self.kept[name] = max(self.kept.get(name, t), t)
        self.rows -= dropped
        return dropped

    def _ensure(self, rules: list[Rule], since: dt.datetime | None, starts: dict[str, dt.datetime]) -> None:
        """Rebuild ``cand`` from every scanned lake file when a run of ``rules`` needs events a
        prune dropped (an event later than the late tolerance)."""
        reads = match_reads(rules, starts)
        needs = {r.name: reads.get(r.name, since) for r in rules if r.condition and r.name in self.kept}
        short = [t for name, t in needs.items() if t is None or t < self.kept[name]]
        if not short:
            return
        # From the earliest time any rule still holds, so no other rule loses what it kept.
        wanted = [*short, *self.kept.values()]
        start = None if len(self.kept) < len(self.detections) or None in wanted else min(wanted)  # type: ignore[type-var]
        self._fresh_view(self.scanned)
        after = f"time >= TIMESTAMPTZ '{start.isoformat()}'" if start is not None else "true"
        self.con.execute("DELETE FROM cand")
        [(self.rows,)] = self.con.execute(f"INSERT INTO cand {self._candidates(after)}").fetchall()
        self.kept = dict.fromkeys((r.name for r in self.detections), start) if start is not None else {}
        self.rebuilds += 1

    def size(self) -> tuple[int, int]:
        """Rows held: (candidate events, identity rows)."""
        if not self.ready:
            return 0, 0
        return (self.rows,
                self.con.execute("SELECT count(*) FROM idents").fetchall()[0][0])

    def close(self) -> None:
        """Close the in-memory database."""
        self.con.close()

