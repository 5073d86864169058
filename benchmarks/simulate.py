"""Benchmark: ``crmguard.simulate`` throughput (events/s), output size and peak memory.

Simulates an org of ``--users`` staff for ``--days`` days (all four campaigns unless
``--campaign`` is given) into a temporary folder and reports events written, events per second of
wall time and per CPU second (this process plus its workers; unlike wall time it does not suffer
when other jobs share the machine), bytes written and peak resident memory (the simulating process,
and the sum over it and its worker processes, sampled every 100 ms).

Usage::

    python benchmarks/simulate.py                          # 2,000 users x 7 days, table
    python benchmarks/simulate.py --users 200 --days 30     # another size
    python benchmarks/simulate.py --workers 1 --json        # single process, machine-readable
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import threading
import time
from pathlib import Path

import psutil

from crmguard.simulate import CAMPAIGNS, simulate
from crmguard.simulate.runner import default_workers


class PeakRss:
    """Samples the resident memory of this process plus its children until stopped."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = me.memory_info().rss
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(users: int, days: int, seed: int, campaigns: list[str] | None, workers: int | None, folder: str | None) -> dict:
    """Simulate once into a temporary folder and return the measurements."""
    with tempfile.TemporaryDirectory(prefix="crmguard-sim-bench-", dir=folder) as tmp, PeakRss() as rss:
        cpu0 = _cpu_seconds()
        t = time.perf_counter()
        summary = simulate(Path(tmp), users=users, days=days, seed=seed, campaigns=campaigns, workers=workers)
        seconds = time.perf_counter() - t
        cpu = _cpu_seconds() - cpu0
        written = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
    return {
        "users": users, "days": days, "seed": seed, "workers": workers or default_workers(users, days),
        "campaigns": [c.name for c in summary.campaigns], "customers": summary.customers,
        "events": summary.total_events, "seconds": round(seconds, 3),
        "events_per_second": round(summary.total_events / seconds), "cpu_seconds": round(cpu, 3),
        "events_per_cpu_second": round(summary.total_events / cpu),
        "events_per_user_day": round(summary.total_events / (users * days), 1),
        "bytes": written, "bytes_per_event": round(written / summary.total_events),
        "peak_rss_mb_self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_rss_mb_total": round(rss.peak / 2**20),
        "by_kind": summary.counts,
    }


def table(r: dict) -> str:
    """The measurements as a small text table."""
    rows = [
        ("org", f"{r['users']:,} users x {r['days']} days, {r['customers']:,} customers, seed {r['seed']}"),
        ("campaigns", ", ".join(r["campaigns"]) or "none"),
        ("worker processes", str(r["workers"])),
        ("events written", f"{r['events']:,} ({r['events_per_user_day']} per user-day)"),
        ("wall time", f"{r['seconds']:.2f} s"),
        ("throughput", f"{r['events_per_second']:,} events/s wall, {r['events_per_cpu_second']:,} events per CPU-s"),
        ("bytes written", f"{r['bytes'] / 1e6:,.1f} MB ({r['bytes_per_event']} B/event)"),
        ("peak RSS", f"{r['peak_rss_mb_self']:,} MB this process, {r['peak_rss_mb_total']:,} MB with workers"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main() -> int:
    """Parse the arguments, run the benchmark once and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000, help="staff users (default 2,000)")
    parser.add_argument("--days", type=int, default=7, help="days (default 7)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--campaign", action="append", choices=[*CAMPAIGNS, "none"],
                        help="campaign to include (repeatable; default all, 'none' for none)")
    parser.add_argument("--workers", type=int, help="worker processes (default: one per CPU for large runs)")
    parser.add_argument("--dir", help="parent of the temporary output folder (default: system temp)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    campaigns = None if not args.campaign else [c for c in args.campaign if c != "none"]
    result = run(args.users, args.days, args.seed, campaigns, args.workers, args.dir)
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
