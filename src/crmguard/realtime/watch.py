"""The watch loop: claim inputs, ingest them in micro-batches, evaluate the rules incrementally,
store alerts, hand them to delivery, then record progress.

One batch, in this order (the order is what makes kill -9 safe):

1. claim new inbox files into the spool (atomic rename);
2. ingest the spooled inputs into the lake (HTTP NDJSON bodies concatenated into one file per
   batch; ingest skips events already stored, by event id);
3. find the lake files not yet evaluated (this batch's, and any a crashed run wrote) and scan them
   into the :class:`~crmguard.realtime.matches.MatchCache`;
4. run the rules over the window :mod:`crmguard.realtime.window` computes, store the alerts the new
   events can have changed (ids are deterministic: a replay creates nothing), mark superseded
   episodes, enqueue the alerts for delivery (idempotent);
5. record the batch done (lake files, spool receipts, watermark) in one state-DB transaction;
6. delete the spooled inputs.

A crash before 5 replays the batch after restart; a crash after 5 leaves only spool files whose
receipts are recorded, which the restart deletes.

After a batch, the loop also compacts the lake (:mod:`crmguard.realtime.compaction`): a merge
written in the background is recorded as evaluated before it is switched into the lake, and the
files it replaced are forgotten only once deleted, so a crash around a switch neither evaluates an
event twice nor leaves one unevaluated.

The long-running loop (:meth:`Watcher.run`) pipelines the two halves: one thread does 1-2 for the
next inputs while the other does 3-6 for the last ones. That changes no step's order for a given
batch: a batch's inputs stay in the spool until the evaluation that commits it, so a crash while
the next batch is being ingested replays it (its events are duplicates, its lake files still
unevaluated) exactly as a crash in step 2 does. While a batch fills and no evaluation runs, the
ingesting thread also parses the HTTP bodies spooled so far into memory (:meth:`Watcher.stage_ahead`),
so step 2 parses only the last ones before writing the lake; nothing of that is written or recorded.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from crmguard.alerts.store import Store
from crmguard.engine.rules import Rule, load_rules
from crmguard.engine.run import match_reads
from crmguard.errors import CrmguardError
from crmguard.ingest import Counts, FileResult, IngestSummary, commit_staged, ingest, ingest_connection, stage_file
from crmguard.lake import Lake, Merge
from crmguard.realtime.compaction import CompactionPolicy, Compactor, plan
from crmguard.realtime.matches import MatchCache
from crmguard.realtime.metrics import Metrics
from crmguard.realtime.owner import Ownership
from crmguard.realtime.progress import BatchRecord, Progress
from crmguard.realtime.spool import Spool, SpoolFile
from crmguard.realtime.window import lookback, retention_starts, rule_starts, superseded, to_store, window_start
from crmguard.sinks.deliver import deliver_due
from crmguard.sinks.outbox import enqueue
from crmguard.sources.staging import StagedFiles
from crmguard.utc import iso_z

T = TypeVar("T")

AHEAD_EVERY_S = 0.3
"""While the next batch fills and no evaluation runs, the HTTP bodies spooled so far are parsed at
most this often (see :meth:`Watcher.stage_ahead`), ..."""
AHEAD_LAST_S = 0.15
"""... the last time at least this long before the batch starts."""
AHEAD_MIN_BYTES = 1 << 20
"""Fewer bytes of new bodies than this wait for the batch: parsing costs some 50 ms of planning
whatever the size."""
AHEAD_MAX_BYTES = 64 << 20
"""Most bytes of bodies held parsed ahead; a batch also parses in memory what remains of its
bodies when it is at most this (more is streamed, as a file is)."""

KILL_AT_ENV = "CRMGUARD_WATCH_KILL_AT"
"""Test hook: ``<stage>:<n>`` makes the process SIGKILL itself at ``stage`` of the n-th batch it
runs since it started (stages: ``ingested``, ``stored``, ``committed``), or of the n-th merge it
switches into the lake (``compacting``: recorded, not yet switched; ``compacted``: switched), to
prove crash safety at exact points."""


@dataclass(frozen=True)
class Ingested:
    """The first half of a batch: spooled inputs ingested into the lake, not yet evaluated."""

    inputs: list[SpoolFile]
    counts: dict[str, int]
    """read / stored / duplicate / quarantined, as ``ingest`` counts them."""
    failed: list[str]
    """Inputs that could not be read at all."""
    started: float
    seconds: float
    lake_files: list[str]
    """The lake's event files when the ingest ended: evaluating them leaves out files of an ingest
    still running."""


@dataclass
class WatchOptions:
    """Where the watcher reads and writes, and how often it works."""

    lake: Path
    state: Path
    spool: Path
    inbox: Path | None = None
    interval_s: float = 1.0
    status_every_s: float = 10.0
    rule_dirs: list[Path] = field(default_factory=list)
    intel_dir: Path | None = None
    sinks: object | None = None
    max_batch_bytes: int = 256 << 20
    inbox_min_age_s: float = 0.0
    stuck_after_s: float = 60.0
    baselines: bool = False
    baseline_every_s: float = 60.0
    late_tolerance_s: float = 3600.0
    """How late (behind the watermark) an event can come and still find the match cache ready; a
    later one makes the cache rebuild from the lake first (slower, same alerts)."""
    prune_growth: float = 1.0
    """The cache drops candidates no later run can read once it has grown by this fraction since it
    last did (0: after every batch)."""
    compaction: CompactionPolicy = field(default_factory=CompactionPolicy)


@dataclass(frozen=True)
class _Ahead:
    """HTTP bodies parsed into memory as one file."""

    staged: StagedFiles
    bodies: list[SpoolFile]

    @property
    def size(self) -> int:
        """Bytes of the bodies."""
        return sum(f.size for f in self.bodies)

    @property
    def receipts(self) -> frozenset[str]:
        """The bodies' spool receipts."""
        return frozenset(f.receipt for f in self.bodies)


def _kill_point(stage: str, batch: int) -> None:
    spec = os.environ.get(KILL_AT_ENV)
    if spec and spec == f"{stage}:{batch}":
        os.kill(os.getpid(), signal.SIGKILL)


class Watcher:
    """Real-time detection over ``options`` (see the module doc). Call :meth:`recover` once, then
    :meth:`step` per batch, or :meth:`run` for the loop."""

    def __init__(self, options: WatchOptions, log: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.log = log or (lambda line: None)
        self._owner = Ownership([(Path(options.spool) / "watch.lock", "spool"),
                                 (Path(f"{options.state}.watch-lock"), "state DB")])
        try:
            self._setup()
        except BaseException:
            self._owner.release()
            raise

    def _setup(self) -> None:
        """Build the watcher's parts (the constructor calls it once, holding the spool and state DB)."""
        options = self.options
        self.lake = Lake(options.lake)
        self.spool = Spool(options.spool)
        self.progress = Progress(options.state)
        self.rules = load_rules(options.rule_dirs or None)
        self.correlation_ids = [r.id for r in self.rules if r.correlation]
        self.metrics = Metrics()
        self.cache = MatchCache(self.lake, self.rules, options.intel_dir)
        self.ingest_con = ingest_connection(self.lake)
        self.compactor = Compactor(self.lake, options.compaction)
        self._merges = 0
        self.processed: set[str] = set()
        self._held: set[str] = set()
        """Receipts of spooled inputs an ingest has taken and no committed batch has recorded yet."""
        self._ahead: list[_Ahead] = []
        """Bodies :meth:`stage_ahead` parsed for a batch to come, oldest first."""
        self._lock = threading.Lock()
        self._ingesting = threading.Event()
        self._idle = threading.Event()
        """Clear from the hand-over of an ingested batch until its evaluation is done (see :meth:`_fill`)."""
        self._idle.set()
        self._ingests = 0
        self.delivered = threading.Event()
        self._recovered = False
        self._steps = 0
        self._baseline_at = 0.0
        self._pruned_rows = 0

    # --- start-up ------------------------------------------------------------------------------

    def recover(self) -> None:
        """Start-up: drop unacknowledged partial bodies, delete spool inputs a previous run finished,
        and load the candidate events of every lake file already evaluated."""
        self.spool.clean()
        done = self.progress.done_receipts()
        self.spool.remove([f for f in self.spool.pending() if f.receipt in done])
        self._reap(self.options.compaction.grace_s)
        lake_files = set(self.lake.event_files())
        recorded = self.progress.processed_files()
        self.processed = recorded & lake_files
        # Merged away (hidden, or deleted since), or a merge a crash left unswitched.
        self.progress.forget_files(sorted(recorded - lake_files))
        self.cache.load(sorted(self.processed), self._retention())
        self._pruned_rows = self.cache.rows
        self._refresh_gauges()
        self._recovered = True

    # --- one batch -----------------------------------------------------------------------------

    def step(self) -> BatchRecord | None:
        """Run one micro-batch over whatever is waiting; returns what it did, or None when there was
        nothing to do. Errors in single inputs are quarantined or reported; an error that stops the
        batch (engine, lake) propagates and nothing is recorded, so the next step retries it."""
        if not self._recovered:
            self.recover()
        inputs = self._take()
        ingested = [self.ingest_inputs(inputs)] if inputs else []
        try:
            return self.evaluate(ingested)
        except BaseException:
            self._release(inputs)
            raise

    def _take(self) -> list[SpoolFile]:
        """Claim the inbox's new files and return the spooled inputs to ingest next (not those an
        earlier ingest already holds)."""
        if self.options.inbox is not None:
            self.spool.claim(self.options.inbox, self.options.inbox_min_age_s)
        with self._lock:
            inputs = self.spool.pending(self.options.max_batch_bytes, skip=self._held)
            self._held |= {f.receipt for f in inputs}
        return inputs

    def ingest_inputs(self, inputs: list[SpoolFile]) -> Ingested:
        """First half of a batch: ingest ``inputs`` into the lake (what :meth:`evaluate` then
        scans). On an error nothing of it is recorded and the inputs are released for a retry."""
        started = time.time()
        try:
            counts, failed = self._ingest(inputs)
        except BaseException:
            self._release(inputs)
            raise
        self._ingests += 1
        _kill_point("ingested", self._ingests)
        return Ingested(inputs, counts, failed, started, time.time() - started, self.lake.event_files())

    def _release(self, inputs: list[SpoolFile]) -> None:
        with self._lock:
            self._held -= {f.receipt for f in inputs}

    def evaluate(self, ingested: list[Ingested]) -> BatchRecord | None:
        """Second half of a batch: scan the lake files not yet evaluated (those of ``ingested``, and
        any an earlier ingest or a crashed run wrote), run the rules, store and hand over the alerts,
        then record the batch (files and the inputs of ``ingested``) and delete its inputs. Returns
        None when there was nothing to do."""
        inputs = [f for item in ingested for f in item.inputs]
        # Without inputs, only lake files written by others (or by a crashed run) make a batch.
        if not inputs and all(f in self.processed for f in self.lake.event_files()):
            self._baselines_if_due()
            self._refresh_gauges()
            return None
        batch_id = self.progress.next_batch()
        self._steps += 1
        started = min((item.started for item in ingested), default=time.time())
        record = BatchRecord(started=started, inputs=len(inputs))
        if ingested:
            record.detail.update(ingest={k: sum(item.counts[k] for item in ingested) for k in ingested[0].counts},
                                 failed=[path for item in ingested for path in item.failed])
        duplicates = sum(item.counts["duplicate"] for item in ingested)
        timings = {"ingest_s": sum(item.seconds for item in ingested)}
        began = time.time()
        listed = ingested[-1].lake_files if ingested else self.lake.event_files()
        # A file listed by the ingest before a merge replaced it, and deleted since, is not new.
        new_files = [f for f in listed if f not in self.processed and os.path.exists(f)]
        new = self.cache.add(new_files, self.progress.watermark())
        timings["scan_s"] = time.time() - began
        record.events, record.late, record.min_new, record.max_new = new.count, new.late, new.min_time, new.max_time
        saved_ids: list[str] = []
        if new.min_time is not None:
            saved_ids = self._detect(new.min_time, self.cache.affected(new.matched), record)
        timings["rules_s"] = time.time() - began - timings["scan_s"]
        self._prune_cache(record)
        record.detail["timings"] = {k: round(v, 3) for k, v in timings.items()}
        _kill_point("stored", self._steps)
        if saved_ids and self.options.sinks is not None:
            enqueue(self.options.state, saved_ids, self.options.sinks)  # type: ignore[arg-type]
        record.done = time.time()
        pending = new.min_time.astimezone(dt.UTC).date() if self.options.baselines and new.min_time is not None else None
        self.progress.commit(batch_id, record, new_files, inputs, baseline_from=pending)
        _kill_point("committed", self._steps)
        self._baselines_if_due()
        self.processed.update(new_files)
        self.spool.remove(inputs)
        self._release(inputs)
        self._guarded(self.compact)
        lag = max((record.done - f.arrived for f in inputs), default=0.0)
        self.metrics.batch(record.events, duplicates, record.late, record.created, record.updated,
                           record.done - record.started, lag)
        self._refresh_gauges()
        if saved_ids:
            self.delivered.set()
        return record

    def compact(self, wait: bool = False) -> str | None:
        """Switch into the lake the merge the background compactor finished (with ``wait``, after
        waiting for it), delete the files merges replaced more than the grace period ago, and start
        the next merge the policy calls for. Returns the path of the file switched in, if any."""
        merged = self._switch(self.compactor.take(wait))
        self._reap(self.options.compaction.grace_s)
        if self.compactor.idle:
            files = plan((f for f in self.lake.event_files() if f in self.processed), self.options.compaction)
            if files:
                self.compactor.start(files)
        return merged

    def _switch(self, merge: Merge | None) -> str | None:
        if merge is None:
            return None
        # Recorded as evaluated before it is visible: a restart never scans it as new.
        self.progress.add_files([merge.target])
        self._merges += 1
        _kill_point("compacting", self._merges)
        merged = self.lake.switch(merge)
        _kill_point("compacted", self._merges)
        self.processed.add(merged)
        self.cache.replaced(merge.replaced, merged)
        return merged

    def _reap(self, grace_s: float) -> None:
        gone = self.lake.reap(grace_s)
        if gone:
            self.progress.forget_files(gone)
            self.processed.difference_update(gone)

    def _ingest(self, inputs: list[SpoolFile]) -> tuple[dict[str, int], list[str]]:
        """Ingest the spooled ``inputs``; returns the counts and the inputs that failed. Inputs that
        cannot be read at all are moved to ``<spool>/failed`` and reported.

        HTTP bodies are parsed as one file per batch (ingest's fixed costs are paid once), using
        what :meth:`stage_ahead` parsed of them while the batch filled: the batch then commits one
        chunk of them, as if parsed at once."""
        if not inputs:
            return Counts().as_dict(), []
        bodies = [f for f in inputs if f.kind == "ndjson"]
        paths = [str(f.path) for f in inputs if f.kind != "ndjson"]
        summary = IngestSummary()
        parts, rest = self._staged_ahead(bodies)
        if sum(f.size for f in rest) <= AHEAD_MAX_BYTES:
            parts += [_Ahead(self._stage_bodies(rest), rest)] if rest else []
            rest = []
        if parts:
            for result in commit_staged(StagedFiles.combine([p.staged for p in parts]), self.lake, self.ingest_con).files:
                summary.add(result)
        joined = {name: part.bodies for part in parts for name in part.staged.names}
        combined = self._combine(rest) if rest else None
        if combined is not None:
            joined[str(combined)] = rest
            paths.append(str(combined))
        try:
            if paths:
                for result in ingest(paths, self.lake, con=self.ingest_con).files:
                    summary.add(result)
        finally:
            if combined is not None:
                combined.unlink(missing_ok=True)
        for f in summary.failed:
            self._set_aside(f, joined.get(f.path))
        return summary.total.as_dict(), [f.path for f in summary.failed]

    def _set_aside(self, result: FileResult, bodies: list[SpoolFile] | None) -> None:
        """Report an input that failed (``bodies``: the HTTP bodies it joined, for a batch's
        concatenated bodies). One that could not be read at all is moved to ``<spool>/failed``,
        its bodies too, to be ingested by hand once the cause is fixed; one whose every record was
        quarantined is in the quarantine already."""
        if bodies is not None:
            shown = f"{len(bodies)} HTTP bod{'y' if len(bodies) == 1 else 'ies'}"
        else:
            name = Path(result.path).name
            shown = name.split(".", 1)[1] if name[:20].isdigit() and name[20:21] == "-" else name
        if not result.error:
            self.log(f"watch: could not ingest {shown}: every record quarantined")
            return
        failed = self.spool.root / "failed"
        failed.mkdir(exist_ok=True)
        for src in [f.path for f in bodies] if bodies is not None else [Path(result.path)]:
            if src.exists():
                os.replace(src, failed / src.name)
        self.log(f"watch: could not ingest {shown} (moved to {failed}): {result.error}")

    def _combine(self, bodies: list[SpoolFile]) -> Path:
        """Concatenate ``bodies`` into one NDJSON file in the spool's tmp folder; returns its path."""
        combined = self.spool.tmp / f"batch-{time.time_ns()}.ndjson"
        with open(combined, "wb") as out:
            for f in bodies:
                with open(f.path, "rb") as fh:
                    out.write(fh.read())
        return combined

    def _stage_bodies(self, bodies: list[SpoolFile]) -> StagedFiles:
        """Parse ``bodies`` as one file, into memory (nothing is written to the lake)."""
        combined = self._combine(bodies)
        try:
            return stage_file(combined, self.lake, self.ingest_con)
        finally:
            combined.unlink(missing_ok=True)

    def stage_ahead(self) -> int:
        """Parse the HTTP bodies spooled since the last call (at least :data:`AHEAD_MIN_BYTES`
        of them, at most :data:`AHEAD_MAX_BYTES` held) while the next batch fills: the batch then
        only parses what came after. Nothing is written, so a crash loses only the work. Returns
        the number of bodies parsed."""
        with self._lock:
            skip = self._held.union(*(ahead.receipts for ahead in self._ahead))
        held = sum(ahead.size for ahead in self._ahead)
        bodies = [f for f in self.spool.pending(AHEAD_MAX_BYTES - held, skip=skip) if f.kind == "ndjson"]
        if not bodies or sum(f.size for f in bodies) < AHEAD_MIN_BYTES:
            return 0
        self._ahead.append(_Ahead(self._stage_bodies(bodies), bodies))
        return len(bodies)

    def _staged_ahead(self, bodies: list[SpoolFile]) -> tuple[list[_Ahead], list[SpoolFile]]:
        """Split ``bodies`` into the parts :meth:`stage_ahead` parsed (every body of a part among
        ``bodies``) and the bodies left to parse. Parts of later batches are kept; a part only
        partly among ``bodies`` is dropped (its bodies are parsed again)."""
        receipts = {f.receipt for f in bodies}
        parts = [ahead for ahead in self._ahead if ahead.receipts <= receipts]
        self._ahead = [ahead for ahead in self._ahead if not ahead.receipts & receipts]
        covered = set().union(*(ahead.receipts for ahead in parts))
        return parts, [f for f in bodies if f.receipt not in covered]

    def _detect(self, min_new: dt.datetime, rules: list[Rule], record: BatchRecord) -> list[str]:
        """Run ``rules`` (those the new events can affect: other rules' alerts cannot change) over
        the window the new events need; store what they can have changed. Returns the ids of the
        alerts stored."""
        record.detail["rules_run"] = len(rules)
        if not rules:
            return []
        span = lookback(rules)
        stored = self.progress.open_episodes(self.correlation_ids, min_new - span)
        starts = rule_starts(min_new, rules, stored)
        since = window_start(min_new, rules, stored)
        alerts = to_store(self.cache.run(since, rules, starts, touched=min_new), min_new)
        store = Store(self.options.state)
        try:
            result = store.save(alerts)
        finally:
            store.close()
        corr = [a for a in alerts if a.rule_id in self.correlation_ids]
        stale = superseded(corr, self.progress.open_episodes(self.correlation_ids, since)) if corr else []
        record.superseded = self.progress.supersede(stale) if stale else 0
        record.window_start = since
        record.alerts, record.created, record.updated = len(alerts), result.created, result.updated
        return [a.id for a in alerts]

    def _prune_cache(self, record: BatchRecord) -> None:
        """Drop the cached candidates no later run can read (see :func:`window.retention_starts`)
        once the cache has grown by ``prune_growth`` since the last prune."""
        if self.cache.rows <= self._pruned_rows * (1 + self.options.prune_growth):
            return
        horizons = self._retention()
        if horizons is None:
            return
        dropped = self.cache.prune(horizons)
        self._pruned_rows = self.cache.rows
        record.detail["cache"] = {"pruned": dropped, "rows": self.cache.rows, "rebuilds": self.cache.rebuilds}

    def _retention(self) -> dict[str, dt.datetime] | None:
        """Per rule name, the earliest time any later run can read its matches, when later new
        events lie at most the late tolerance behind the watermark (None before the first batch)."""
        mark = self.progress.watermark()
        if mark is None:
            return None
        mark -= dt.timedelta(seconds=self.options.late_tolerance_s)
        stored = self.progress.open_episodes(self.correlation_ids, mark - 2 * lookback(self.rules))
        return match_reads(self.rules, retention_starts(mark, self.rules, stored))

    def _baselines_if_due(self, force: bool = False) -> None:
        """Run the baselines when some day waits to be re-scored and ``baseline_every_s`` has passed
        since the last run (or ``force``); hand their alerts to the sinks."""
        if not self.options.baselines:
            return
        pending = self.progress.baseline_pending()
        if pending is None or (not force and time.monotonic() - self._baseline_at < self.options.baseline_every_s):
            return
        ids = self._baselines(pending)
        if ids and self.options.sinks is not None:
            enqueue(self.options.state, ids, self.options.sinks)  # type: ignore[arg-type]
            self.delivered.set()

    def _baselines(self, pending: dt.date) -> list[str]:
        """Update the behavioural baselines (the days whose lake files changed), re-score every day
        from ``pending`` on and store the anomalies; returns their ids. The pending day is persisted
        with the batch that brought the events and cleared only after the alerts are stored, and
        baseline alert ids depend on identity and day only: a crash anywhere loses nothing and a
        re-run stores nothing twice."""
        from crmguard.anomaly.run import run_baselines
        from crmguard.detect import engine_connection
        from crmguard.intel import load

        since = dt.datetime.combine(pending, dt.time(), dt.UTC)
        intel = load(self.options.intel_dir) if self.options.intel_dir is not None and self.options.intel_dir.exists() else None
        con = engine_connection(self.lake, self.options.intel_dir)
        try:
            result = run_baselines(con, self.lake, self.options.state, since=since, intel=intel)
        finally:
            con.close()
        self.progress.baseline_done(pending)
        self._baseline_at = time.monotonic()
        if result.stored.created:
            self.log(f"watch: {result.stored.created} new baseline anomal{'y' if result.stored.created == 1 else 'ies'}")
        return [a.id for a in result.alerts]

    def health(self) -> tuple[bool, dict[str, object]]:
        """(healthy, status document): unhealthy when the loop has not come round for
        ``stuck_after_s`` seconds (a batch hangs, or the loop died)."""
        m = self.metrics
        idle = time.time() - m.heartbeat
        ok = idle < self.options.stuck_after_s
        return ok, {"status": "ok" if ok else "stuck", "loop_idle_s": round(idle, 3), "watermark": m.watermark,
                    "batches": m.batches, "events": m.events, "alerts_open": m.alerts_open,
                    "spool_files": m.spool_files, "lag_s": round(m.lag_s, 3), "last_error": m.last_error}

    def _refresh_gauges(self) -> None:
        m = self.metrics
        m.spool_files, m.spool_bytes = self.spool.depth()
        mark = self.progress.watermark()
        m.watermark = iso_z(mark) if mark else None
        m.alerts_open = int(self.progress.totals()["alerts"])
        m.heartbeat = time.time()

    # --- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event, once: bool = False) -> int:
        """Run batches until ``stop`` is set (finishing the current batch), or, with ``once``,
        until nothing is waiting. Prints a status line every ``status_every_s`` seconds through
        ``log``. Returns the number of batches run.

        With ``once`` the batches run one after the other (:meth:`step`). Otherwise the loop is a
        two-stage pipeline: a thread ingests the next inputs (at most one batch ahead, a batch
        starting ``interval_s`` after the previous one started, or at once when that one took
        longer, and parsing its HTTP bodies ahead while no evaluation runs) while this thread
        evaluates the last ones, so the two halves use both cores.
        Nothing about crash safety changes: an ingested batch is recorded only by the evaluation
        that commits it, and until then its inputs stay in the spool."""
        if not self._recovered:
            self.recover()
        runs = 0
        self._next_status = time.monotonic() + self.options.status_every_s
        deliverer = None
        if self.options.sinks is not None and not once:
            deliverer = threading.Thread(target=self._deliver_forever, args=(stop,), name="deliver", daemon=True)
            deliverer.start()
        if once:
            while not stop.is_set():
                record = self._guarded(self.step, once=True)
                if record is None:
                    break
                runs += 1
                self._status()
            self._baselines_if_due(force=True)
            if self.options.sinks is not None:
                self._deliver_once()
        else:
            runs = self._pipeline(stop)
        if deliverer is not None:
            self.delivered.set()
            deliverer.join(timeout=30)
        return runs

    def _pipeline(self, stop: threading.Event) -> int:
        """The loop of :meth:`run` without ``once``; returns the number of batches evaluated."""
        ready: queue.Queue[Ingested] = queue.Queue(maxsize=1)
        ingester = threading.Thread(target=self._ingest_ahead, args=(stop, ready), name="ingest", daemon=True)
        ingester.start()
        runs = 0
        while not stop.is_set():
            try:
                items = [ready.get(timeout=self.options.interval_s)]
            except queue.Empty:
                if self._ingesting.is_set():
                    # The ingest under way hands its lake files over when it ends: scanning them
                    # now would evaluate part of its batch early.
                    self.metrics.heartbeat = time.time()
                    self._status()
                    continue
                items = []
            self._idle.clear()
            try:
                record = self._evaluate_guarded(items)
            finally:
                self._idle.set()
            runs += record is not None
            self._status()
        ingester.join()
        # What the ingester finished before stopping is evaluated now rather than at the next start.
        leftover = []
        while not ready.empty():
            leftover.append(ready.get_nowait())
        if leftover and self._evaluate_guarded(leftover) is not None:
            runs += 1
        return runs

    def _ingest_ahead(self, stop: threading.Event, ready: queue.Queue[Ingested]) -> None:
        """The ingesting stage of :meth:`_pipeline`: ingest what waits in the spool, hand it over."""
        began = 0.0
        while not stop.is_set():
            if self._fill(stop, began + self.options.interval_s):
                break
            began = time.monotonic()
            # Set from before the lake is written until the batch is handed over (see _pipeline).
            self._ingesting.set()
            try:
                self._ingest_one(stop, ready)
            finally:
                self._ingesting.clear()

    def _fill(self, stop: threading.Event, until: float) -> bool:
        """Wait for the next batch to fill until ``until`` (monotonic), parsing its bodies ahead
        (:meth:`stage_ahead`) whenever no evaluation runs, at most every :data:`AHEAD_EVERY_S` and
        not in the last :data:`AHEAD_LAST_S`; returns True when ``stop`` was set."""
        last = -AHEAD_EVERY_S
        while (left := until - time.monotonic()) > 0:
            # Parsing beside an evaluation would slow the evaluation: they share two cores.
            if left > AHEAD_LAST_S and self._idle.is_set() and time.monotonic() - last >= AHEAD_EVERY_S:
                last = time.monotonic()
                self._guarded(self.stage_ahead)
                continue
            if stop.wait(min(left, 0.02)):
                return True
        return stop.is_set()

    def _ingest_one(self, stop: threading.Event, ready: queue.Queue[Ingested]) -> None:
        inputs = self._guarded(self._take)
        if not inputs:
            return
        item = self._guarded(lambda: self.ingest_inputs(inputs))
        if item is None:
            return
        # Cleared before the hand-over, set once the evaluation is done: no parsing ahead beside it.
        self._idle.clear()
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        # Stopping with the evaluator gone: the inputs stay spooled; the next start takes them.
        self._release(item.inputs)

    def _evaluate_guarded(self, items: list[Ingested]) -> BatchRecord | None:
        record = self._guarded(lambda: self.evaluate(items))
        if record is None and items:
            # The evaluation failed (with inputs it cannot have had nothing to do): they go back to
            # the spool's queue, to be ingested again (as duplicates) and committed by a later batch.
            self._release([f for item in items for f in item.inputs])
        return record

    def _guarded(self, work: Callable[[], T], once: bool = False) -> T | None:
        """Run ``work``; an exception (a lake or engine error, a full disk) is logged and counted and
        gives None: nothing of it was recorded, so it is retried. With ``once`` it propagates."""
        try:
            result = work()
        except Exception as exc:
            if once:
                raise
            self.metrics.batch_errors += 1
            self.metrics.last_error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, CrmguardError) else str(exc)
            self.log(f"watch: batch failed, will retry: {self.metrics.last_error}")
            return None
        else:
            if result:
                self.metrics.last_error = None
            return result
        finally:
            self.metrics.heartbeat = time.time()

    def _status(self) -> None:
        if time.monotonic() >= self._next_status:
            self.log(self.metrics.status_line())
            self._next_status = time.monotonic() + self.options.status_every_s

    def _deliver_once(self, budget_s: float | None = None) -> None:
        report = deliver_due(self.options.state, self.options.sinks, budget_s=budget_s)  # type: ignore[arg-type]
        self.metrics.delivered += report.delivered
        self.metrics.delivery_failed += report.failed

    def _deliver_forever(self, stop: threading.Event) -> None:
        """Deliver due outbox rows after every batch that stored alerts, and every interval (retries)."""
        while not stop.is_set():
            self.delivered.wait(max(self.options.interval_s, 0.05))
            self.delivered.clear()
            try:
                self._deliver_once(budget_s=max(self.options.interval_s, 1.0))
            except CrmguardError as exc:
                self.log(f"watch: delivery failed, will retry: {exc}")

    def close(self) -> None:
        """Finish the merge being written (it is switched in at the next start), then release the
        state DB, the in-memory cache and the hold on the spool and state DB."""
        try:
            self._switch(self.compactor.take(wait=True))
        except Exception as exc:  # the batches are recorded; the merged files stay as they were
            self.log(f"watch: compaction failed: {exc}")
        self.compactor.close()
        self.progress.close()
        self.cache.close()
        self.ingest_con.close()
        self._owner.release()
