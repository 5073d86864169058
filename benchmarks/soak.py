"""Benchmark: does a long-running `crmguard watch` stay as fast at the end of a day as at its start?

A stream writes one small Parquet file per partition per batch: 86,400 a day at one batch a
second. This replays one simulated day, in time order, as many small batches through the watcher
(in process: spool, ingest, evaluate, compaction, exactly as ``crmguard watch`` runs them, without
HTTP), and reports how the batch time and the lake's file count evolve from the first tenth of the
run to the last.

Run it twice to compare: with compaction (the default) and with ``--compact-fanout 0``.

Usage::

    python benchmarks/soak.py --users 2000 --batch 500                       # the README table
    python benchmarks/soak.py --users 2000 --batch 500 --compact-fanout 0    # without compaction
    python benchmarks/soak.py --users 200 --batch 200 --json                 # smoke run
"""

from __future__ import annotations

import argparse
import pickle
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from realtime import build_stream, report

from crmguard.realtime.compaction import CompactionPolicy
from crmguard.realtime.watch import Watcher, WatchOptions


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def soak(work: Path, payloads: list[bytes], policy: CompactionPolicy) -> dict[str, object]:
    """Run every payload as one batch through a watcher over a fresh lake; returns the figures."""
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    watcher = Watcher(WatchOptions(lake=home / "lake", state=home / "state.db", spool=home / "spool",
                                   compaction=policy))
    rows: list[tuple[float, float, float, int]] = []
    cpu, wall = _cpu(), time.perf_counter()
    try:
        watcher.recover()
        for i, body in enumerate(payloads):
            watcher.spool.put(body, "ndjson")
            t = time.perf_counter()
            record = watcher.step()
            seconds = time.perf_counter() - t
            assert record is not None
            timings = record.detail["timings"]
            rows.append((seconds, timings["ingest_s"], timings["rules_s"], len(watcher.lake.event_files())))  # type: ignore[index]
            if (i + 1) % max(1, len(payloads) // 10) == 0:
                print(f"  batch {i + 1:>6,}/{len(payloads):,}: {seconds:.3f} s, {rows[-1][3]:,} lake files",
                      file=sys.stderr, flush=True)
        merges = watcher._merges
        totals = watcher.progress.totals()
    finally:
        watcher.close()
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    tenth = max(1, len(rows) // 10)

    def summary(part: list[tuple[float, float, float, int]]) -> dict[str, float]:
        batch = np.array([r[0] for r in part])
        return {"batch_p50_s": round(float(np.percentile(batch, 50)), 3),
                "batch_p99_s": round(float(np.percentile(batch, 99)), 3),
                "ingest_p50_s": round(float(np.median([r[1] for r in part])), 3),
                "rules_p50_s": round(float(np.median([r[2] for r in part])), 3),
                "lake_files": part[-1][3]}

    first, last = summary(rows[:tenth]), summary(rows[-tenth:])
    return {"batches": len(rows), "events": int(totals["events"]), "alerts_created": int(totals["alerts_created"]),
            "compact_fanout": policy.fanout, "merges": merges, "first_tenth": first, "last_tenth": last,
            "p50_growth": round(last["batch_p50_s"] / first["batch_p50_s"], 2),
            "cpu_cores": round(cpu / wall, 2), "wall_s": round(wall, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500, help="Events per batch.")
    parser.add_argument("--compact-fanout", type=int, default=CompactionPolicy.fanout,
                        help="Files of one tier merged together (0: no compaction).")
    parser.add_argument("--work", help="Working folder (default: a temporary one); the stream is kept there.")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crmguard-soak-") as tmp:
        work = Path(args.work or tmp)
        cache = work / f"stream-{args.users}-{args.seed}-{args.batch}.pkl"
        if cache.exists():
            payloads = pickle.loads(cache.read_bytes())
        else:
            t = time.time()
            for old in ("sim", "ref"):
                shutil.rmtree(work / old, ignore_errors=True)
            # One day: every batch goes to the same (source, date) partitions, as a live stream's do.
            stream = build_stream(work, args.users, 1, args.seed, args.batch)
            payloads = stream.payloads
            cache.write_bytes(pickle.dumps(payloads))
            print(f"stream: {sum(stream.counts):,} events in {len(payloads):,} batches, built in {time.time() - t:.0f} s",
                  file=sys.stderr)
        figures = soak(work, payloads, CompactionPolicy(fanout=args.compact_fanout))
    report(figures, args.json, width=16)
    return 0


if __name__ == "__main__":
    sys.exit(main())
