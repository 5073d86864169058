"""Incremental rule evaluation: keep the events any rule can match in memory, so each batch scans
only its new lake files and the rules then run over a small table instead of the whole look-back.

Correlations look back up to days (``repeated_report_export``: 7 days), so running the pack over
the raw lake each second would re-read days of events per batch. Instead, each new lake file is
scanned once: events matching any rule's condition (allow-lists ignored, so the set is a superset of
what any rule can match) go to the ``cand`` table, and for every user id the latest event naming
it goes to ``idents``. :meth:`MatchCache.run` points the ``events`` view at ``cand`` and calls the
engine's ``run_rules`` with ``idents`` as its identity table (the latest username per user id, which
it would otherwise compute from every event): the engine's one scan finds exactly the matches it
would find over the whole lake, and names the same actors.

A rule whose condition mentions ``actor`` (resolved through that identity table, which changes as
events arrive) cannot be pre-filtered per event; with such a rule every event is kept.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from crmguard.engine.rules import ACTOR, Rule
from crmguard.engine.run import Alert, match_columns, match_reads, run_rules
from crmguard.lake import Lake
from crmguard.sources.sql import connect


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


def _mentions_actor(condition: str) -> bool:
    return re.search(rf'(?<![\w.]){ACTOR}(?!\w)', condition) is not None


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
        self.keep_all = any(_mentions_actor(c) for c in conds)
        self.hit = "true" if self.keep_all else (" OR ".join(f"coalesce(({c}), false)" for c in conds) or "false")
        # The raw record and the file name are most of an event's bytes; rules seldom read them
        # (a Sigma keyword searches raw). Unread, they are never decoded from the lake.
        used = [*conds, *match_columns(rules)]
        self.unread = [c for c in BULKY if not any(re.search(rf'(?<![\w.]){c}(?!\w)', u) for u in used)]
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
            self.con.execute("CREATE TABLE cand AS SELECT * FROM fresh WHERE false")
            self.con.execute(f"CREATE TABLE idents AS SELECT {IDENT_COLUMNS} FROM fresh WHERE false")
            self.ready = True

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
        # Which rules some new event meets is asked of the candidates only (a third of the events
        # or fewer), not of every new event a second time.
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE fresh_cand AS SELECT * FROM fresh WHERE {self.hit}")
        flags = ", ".join(f"bool_or(coalesce(({r.condition}), false))" for r in self.detections)
        if self.keep_all:
            flags = ", ".join("true" for _ in self.detections)
        hit = self.con.execute(f"SELECT {flags} FROM fresh_cand").fetchall()[0] if flags else ()
        matched = frozenset(r.name for r, h in zip(self.detections, hit, strict=True) if h)
        self.rows += self.con.execute("INSERT INTO cand SELECT * FROM fresh_cand").fetchall()[0][0]
        self.scanned += files
        self.con.execute("DROP TABLE fresh_cand")
        self.con.execute(
            f"INSERT INTO idents SELECT {IDENT_COLUMNS} FROM fresh WHERE user_id IS NOT NULL AND username IS NOT NULL "
            "QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY time DESC, event_id) = 1"
        )
        # Keep one identity row per user id: its latest event (the engine's arg_max(username, time)).
        self.con.execute(
            "DELETE FROM idents WHERE rowid IN (SELECT rowid FROM (SELECT rowid, row_number() OVER "
            "(PARTITION BY user_id ORDER BY time DESC, event_id) AS k FROM idents) WHERE k > 1)"
        )
        return NewEvents(n, lo, hi, late, matched)

    def affected(self, matched: frozenset[str]) -> list[Rule]:
        """The rules whose alerts new events meeting the ``matched`` conditions can change: those
        detections, and the correlations over any of them (with all their base rules)."""
        names = set(matched)
        corrs = [r for r in self.rules if r.correlation and names & set(r.correlation.rules)]
        for c in corrs:
            names |= set(c.correlation.rules)  # type: ignore[union-attr]
        return [r for r in self.rules if r.name in names or r in corrs]

    def run(self, since: dt.datetime | None, rules: list[Rule] | None = None,
            starts: dict[str, dt.datetime] | None = None) -> list[Alert]:
        """Run ``rules`` (default: all) over the candidate events at or after ``since`` (and, per
        rule, at or after its time in ``starts``); returns the alerts."""
        if not self.ready:
            return []
        rules = self.rules if rules is None else rules
        self._ensure(rules, since, starts or {})
        self.con.execute("CREATE OR REPLACE TEMP VIEW events AS SELECT * FROM cand")
        return run_rules(self.con, rules, since, None, starts, together=True,
                         identities="SELECT user_id, username AS name FROM idents")

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
                               + f"coalesce(({r.condition}), false))" for r in self.detections)
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
        after = f"time >= TIMESTAMPTZ '{start.isoformat()}' AND " if start is not None else ""
        self.con.execute("DELETE FROM cand")
        [(self.rows,)] = self.con.execute(f"INSERT INTO cand SELECT * FROM fresh WHERE {after}({self.hit})").fetchall()
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

