"""Benchmark: the whole rule pack over a large lake (100 M events by default), time and peak memory.

Steps:
1. simulate a retailer org (``--users`` × ``--days``, every campaign) and ingest it into a seed lake;
2. replicate the seed lake's events into a large lake until it holds ``--events`` events: each copy
   is shifted in time by whole seed periods (so copies never share a correlation window) and gets
   new event ids; ``raw`` is left empty in the copies (rules never read it; it would only cost
   disk). This step builds the input and is not timed as detection;
3. run ``crmguard detect`` over the large lake in a child process and report wall time, events/s,
   alerts and the child's peak resident memory; with ``--baseline``, run
   ``crmguard baseline update --no-alerts`` instead (building every day's behavioural features from
   scratch), then again with nothing changed (the incremental no-op).

Usage::

    python benchmarks/detect_scale.py --events 100000000
    python benchmarks/detect_scale.py --events 10000000 --workdir /tmp/scale --json
    python benchmarks/detect_scale.py --events 100000000 --baseline
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crmguard.ingest import ingest
from crmguard.lake import Lake
from crmguard.schema import COLUMNS
from crmguard.simulate import simulate
from crmguard.sources.sql import connect, ident, sql_str


def replicate(seed: Lake, target: Path, events: int) -> int:
    """Write copies of ``seed``'s events under ``target``/events until ``events`` rows; returns
    the number of rows written."""
    con = seed.connect()
    con.execute("SET memory_limit = '3GB'")
    n, lo, hi = con.execute("SELECT count(*), min(time), max(time) FROM events").fetchall()[0]
    period = (hi.date() - lo.date()).days + 1
    copies = max(1, -(-events // n))
    out = target / "events"
    out.mkdir(parents=True, exist_ok=True)
    cols = ", ".join(
        f"time + to_days(CAST(k * {period} AS INTEGER)) AS time" if c.name == "time"
        else "md5(event_id || '/' || k) AS event_id" if c.name == "event_id"
        else "NULL::VARCHAR AS raw" if c.name == "raw"
        else ident(c.name)
        for c in COLUMNS
    )
    written = 0
    batch = max(1, 2_000_000 // n)  # copies per COPY statement: bounds the writer's memory
    # The last copy keeps the seed's first events by id, so every build holds the same events.
    last, keep = copies - 1, events - (copies - 1) * n
    con.execute("CREATE TEMP TABLE ranked AS SELECT * EXCLUDE (raw), row_number() OVER (ORDER BY event_id) AS _rank FROM events")
    for start in range(0, copies, batch):
        ks = range(start, min(copies, start + batch))
        limit = min(events - written, n * len(ks))
        con.execute(
            f"""COPY (SELECT *, CAST(time AS DATE) AS date FROM (
                    SELECT {cols} FROM ranked, range({ks.start}, {ks.stop}) r(k)
                    WHERE k < {last} OR _rank <= {keep}))
                TO '{sql_str(str(out))}' (FORMAT parquet, PARTITION_BY (source, date), FILENAME_PATTERN 'part-{start}-{{i}}',
                ROW_GROUP_SIZE 122880, COMPRESSION zstd, OVERWRITE_OR_IGNORE true)"""
        )
        written += limit
        if written >= events:
            break
    return written


def run_detect(lake: Path, state: Path, command: tuple[str, ...] = ("detect", "--json")) -> dict:
    """Run ``crmguard <command>`` on ``lake`` in a child process; return its wall time, alerts (when
    it prints them) and peak RSS (bytes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("crmguard")), *command, "--lake", str(lake), "--state", str(state)],
        capture_output=True, text=True, check=True,
    )
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    alerts = json.loads(proc.stdout) if "--json" in command else []
    return {"seconds": wall, "alerts": len(alerts), "peak_rss": max(peak, before) * 1024, "stderr": proc.stderr.strip()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000_000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", help="keep the lakes here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--baseline", action="store_true", help="time `crmguard baseline update` instead of detect")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crmguard-scale-") as tmp:
        work = Path(args.workdir or tmp)
        seed_lake = Lake(work / "seed")
        if not seed_lake.event_files():
            simulate(work / "sim", users=args.users, days=args.days, seed=args.seed)
            ingest([str(work / "sim" / "salesforce"), str(work / "sim" / "okta")], seed_lake)
        big = work / f"lake-{args.events}"
        t0 = time.perf_counter()
        if not (big / "events").exists():
            replicate(seed_lake, big, args.events)
        build_s = time.perf_counter() - t0
        n = connect().execute(
            f"SELECT count(*) FROM read_parquet('{sql_str(str(big))}/events/**/*.parquet')").fetchall()[0][0]
        size = sum(p.stat().st_size for p in (big / "events").rglob("*.parquet"))
        state = work / "scale-state.db"
        state.unlink(missing_ok=True)
        if args.baseline:
            import shutil

            shutil.rmtree(big / "baseline", ignore_errors=True)
            result = run_detect(big, state, ("baseline", "update", "--no-alerts"))
            result["again_s"] = run_detect(big, state, ("baseline", "update", "--no-alerts"))["seconds"]
        else:
            result = run_detect(big, state)
    report = {"events": n, "lake_bytes": size, "build_s": round(build_s, 1), **result,
              "events_per_s": n / result["seconds"]}
    if args.baseline:
        print(json.dumps(report, indent=1) if args.json else
              f"{n:,} events: baseline update {result['seconds']:.1f} s ({report['events_per_s']:,.0f} events/s), "
              f"peak RSS {result['peak_rss'] / 2**30:.2f} GB; again with nothing new {result['again_s']:.1f} s\n"
              f"{result['stderr']}")
        return 0
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{n:,} events ({size / 1e9:.1f} GB of Parquet, built in {build_s:.0f} s)")
    print("| events | detect s | events/s | alerts | peak RSS |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    print(f"| {n:,} | {result['seconds']:.1f} | {report['events_per_s']:,.0f} | {result['alerts']:,} | "
          f"{result['peak_rss'] / 2**30:.2f} GB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
