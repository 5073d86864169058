"""Benchmark: Salesforce API Event Log File CSV -> lake, against pyarrow's bare CSV read (the floor).

Generates N rows of API-type ELF CSV (the documented columns, realistic values) at run time,
then in separate child processes (so peak RSS is each one's own) times:

- floor: ``pyarrow.csv.read_csv`` of the same file (multithreaded, types inferred), nothing else;
- crmguard: ``crmguard.ingest.ingest`` into an empty lake (parse, map, event ids, dedup, Parquet).

With ``--many`` it instead simulates an org (``crmguard simulate``: a folder of ELF CSVs, RTEM and
audit NDJSON, Okta JSON arrays, one file per type and day) and times ingesting its ``salesforce/``
and ``okta/`` folders in one call (files parsed in batches) against one call per file (every file
planned and committed alone, as before batching).

Usage::

    python benchmarks/ingest.py --rows 2000000          # table for the README
    python benchmarks/ingest.py --gb 5                  # memory check on a 5 GB file
    python benchmarks/ingest.py --rows 200000 --json    # machine-readable
    python benchmarks/ingest.py --many --users 300 --days 7   # many small files
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from crmguard.sources.salesforce.elf_fields import ELF_FIELDS

API_VALUES = {
    "EVENT_TYPE": "'API'",
    "TIMESTAMP": "strftime(ts, '%Y%m%d%H%M%S.%g')",
    "REQUEST_ID": "'TID:' || substr(md5(i::VARCHAR), 1, 20)",
    "ORGANIZATION_ID": "'00D5j000000VI3n'",
    "USER_ID": "'0055j00000' || lpad((i % 4000)::VARCHAR, 5, '0')",
    "RUN_TIME": "(i % 700)::VARCHAR",
    "CPU_TIME": "(i % 90)::VARCHAR",
    "URI": "'Api'",
    "SESSION_KEY": "substr(md5((i // 50)::VARCHAR), 1, 16)",
    "LOGIN_KEY": "substr(md5((i // 200)::VARCHAR), 1, 16)",
    "USER_TYPE": "'Standard'",
    "REQUEST_STATUS": "CASE WHEN i % 97 = 0 THEN 'F' ELSE 'S' END",
    "DB_TOTAL_TIME": "(i * 7919 % 90000000)::VARCHAR",
    "API_TYPE": "CASE WHEN i % 3 = 0 THEN 'E' ELSE 'P' END",
    "API_VERSION": "'60.0'",
    "CLIENT_NAME": "['DataLoaderBulk', 'MarketingCloud', 'SupportChat', 'Workbench'][1 + i % 4]",
    "METHOD_NAME": "['query', 'queryMore', 'retrieve', 'update', 'insert'][1 + i % 5]",
    "ENTITY_NAME": "['Contact', 'Account', 'Lead', 'Case', 'Opportunity'][1 + (i // 7) % 5]",
    "ROWS_PROCESSED": "(i * 31 % 2000)::VARCHAR",
    "REQUEST_SIZE": "(200 + i % 3000)::VARCHAR",
    "RESPONSE_SIZE": "(i * 131 % 900000)::VARCHAR",
    "EXCEPTION_MESSAGE": "''",
    "DB_BLOCKS": "(i % 20000)::VARCHAR",
    "DB_CPU_TIME": "(i % 500)::VARCHAR",
    "TIMESTAMP_DERIVED": "strftime(ts, '%Y-%m-%dT%H:%M:%S.%gZ')",
    "USER_ID_DERIVED": "'0055j00000' || lpad((i % 4000)::VARCHAR, 5, '0') || 'AAQ'",
    "CLIENT_IP": "'81.' || (i % 200)::VARCHAR || '.' || (i // 7 % 250)::VARCHAR || '.' || (i % 251)::VARCHAR",
    "URI_ID_DERIVED": "''",
}


def generate(path: Path, rows: int) -> None:
    """Write ``rows`` API ELF rows (all columns quoted, as Salesforce serves them) to ``path``."""
    cols = ", ".join(f"{API_VALUES[c]} AS \"{c}\"" for c in ELF_FIELDS["API"])
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT {cols} FROM (SELECT i, TIMESTAMP '2025-04-01' + to_milliseconds(i * 40) AS ts "
        f"FROM range({rows}) t(i))) TO '{path}' (HEADER, QUOTE '\"', FORCE_QUOTE *)"
    )


FLOOR = """
import json, resource, sys, time
import pyarrow.csv
t = time.perf_counter()
n = pyarrow.csv.read_csv(sys.argv[1]).num_rows
print(json.dumps({"rows": n, "seconds": time.perf_counter() - t,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CRMGUARD = """
import json, resource, sys, time
from crmguard.ingest import ingest
from crmguard.lake import Lake
t = time.perf_counter()
s = ingest([sys.argv[1]], Lake(sys.argv[2]))
print(json.dumps({"rows": s.total.stored, "read": s.total.read, "seconds": time.perf_counter() - t,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


MANY = """
import json, resource, sys, time
from crmguard.ingest import ingest
from crmguard.lake import Lake
from crmguard.sources.inputs import expand
paths, lake, per_file = sys.argv[1:3], Lake(sys.argv[3]), sys.argv[4] == "per-file"
t = time.perf_counter()
if per_file:
    files = expand(paths)
    read = stored = 0
    for f in files:
        s = ingest([str(f)], lake)
        read, stored = read + s.total.read, stored + s.total.stored
else:
    s = ingest(paths, lake)
    files, read, stored = s.files, s.total.read, s.total.stored
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"files": len(files), "read": read, "rows": stored, "seconds": time.perf_counter() - t,
                  "cpu_s": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}))
"""


def many(args: argparse.Namespace) -> int:
    """Simulate an org and time ingesting its folders batched and one file at a time."""
    from crmguard.simulate import simulate

    with tempfile.TemporaryDirectory(prefix="crmguard-bench-", dir=args.dir) as tmp:
        work = Path(tmp)
        simulate(work / "sim", users=args.users, days=args.days, seed=args.seed)
        folders = [str(work / "sim" / "salesforce"), str(work / "sim" / "okta")]
        size = sum(f.stat().st_size for d in folders for f in Path(d).rglob("*") if f.is_file())
        runs = {mode: child(MANY, *folders, str(work / f"lake-{mode}"), mode) for mode in ("batched", "per-file")}
    result = {"users": args.users, "days": args.days, "seed": args.seed, "input_mb": round(size / 1e6, 1),
              "cores": os.cpu_count(), "files": runs["batched"]["files"], "events": runs["batched"]["read"]}
    for mode, r in runs.items():
        result[mode] = {"seconds": round(r["seconds"], 2), "cpu_s": round(r["cpu_s"], 1),
                        "rows_per_s": round(r["rows"] / r["seconds"]), "peak_rss_mb": round(r["rss_mb"])}
    result["speedup"] = round(runs["per-file"]["seconds"] / runs["batched"]["seconds"], 2)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"simulated {args.users} users x {args.days} days: {result['files']} files, {result['input_mb']:,} MB, "
          f"{result['events']:,} events, {os.cpu_count()} cores")
    print("| run | seconds | CPU s | rows/s | peak RSS MB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for mode, label in (("per-file", "one ingest call per file"), ("batched", "crmguard ingest of the folders")):
        r = result[mode]
        print(f"| {label} | {r['seconds']} | {r['cpu_s']} | {r['rows_per_s']:,} | {r['peak_rss_mb']:,} |")
    print(f"batched is {result['speedup']}x faster")
    return 0


def child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh Python and return the JSON it prints."""
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows to generate (default 2,000,000)")
    parser.add_argument("--gb", type=float, help="generate about this many GB instead of --rows")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--dir", help="work folder (default: a temp folder, removed after)")
    parser.add_argument("--many", action="store_true", help="ingest a simulated org's many files instead")
    parser.add_argument("--users", type=int, default=300, help="--many: simulated users (default 300)")
    parser.add_argument("--days", type=int, default=7, help="--many: simulated days (default 7)")
    parser.add_argument("--seed", type=int, default=1, help="--many: simulator seed (default 1)")
    args = parser.parse_args()
    if args.many:
        return many(args)
    with tempfile.TemporaryDirectory(prefix="crmguard-bench-", dir=args.dir) as tmp:
        work = Path(tmp)
        csv = work / "API.csv"
        rows = args.rows
        if args.gb:
            generate(csv, 100_000)
            rows = int(args.gb * 1e9 / (csv.stat().st_size / 100_000))
        t = time.perf_counter()
        generate(csv, rows)
        gen_s = time.perf_counter() - t
        size = csv.stat().st_size
        floor = child(FLOOR, str(csv)) if not args.gb else None
        ours = child(CRMGUARD, str(csv), str(work / "lake"))
        lake_bytes = sum(f.stat().st_size for f in (work / "lake").rglob("*.parquet"))
    result = {
        "rows": rows, "csv_mb": round(size / 1e6, 1), "generate_s": round(gen_s, 2), "cores": os.cpu_count(),
        "crmguard": {"seconds": round(ours["seconds"], 2), "rows_per_s": round(ours["rows"] / ours["seconds"]),
                     "peak_rss_mb": round(ours["rss_mb"]), "lake_mb": round(lake_bytes / 1e6, 1)},
    }
    if floor:
        result["pyarrow_floor"] = {"seconds": round(floor["seconds"], 2), "rows_per_s": round(floor["rows"] / floor["seconds"]),
                                   "peak_rss_mb": round(floor["rss_mb"])}
        result["ratio_vs_floor"] = round(ours["seconds"] / floor["seconds"], 2)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{rows:,} API ELF rows, {result['csv_mb']:,} MB CSV, {os.cpu_count()} cores")
    print("| run | seconds | rows/s | peak RSS MB |")
    print("| --- | ---: | ---: | ---: |")
    if floor:
        f = result["pyarrow_floor"]
        print(f"| pyarrow.csv.read_csv (floor) | {f['seconds']} | {f['rows_per_s']:,} | {f['peak_rss_mb']:,} |")
    c = result["crmguard"]
    print(f"| crmguard ingest -> lake | {c['seconds']} | {c['rows_per_s']:,} | {c['peak_rss_mb']:,} |")
    if floor:
        print(f"crmguard / floor time ratio: {result['ratio_vs_floor']}x; lake size {c['lake_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
