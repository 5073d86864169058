"""Benchmark: `crmguard watch` under a fixed event rate over loopback HTTP, while campaigns run.

1. Simulate an org with all four campaigns, ingest it into a reference lake and write its records
   in time order as one NDJSON stream (what a log forwarder would send), cut into payloads.
2. Start ``crmguard watch --listen`` as a subprocess (its own process, as in production), with a
   webhook sink pointing at a receiver in this process.
3. POST the payloads at ``--rate`` events/s for at most ``--duration`` seconds (two sender
   threads, keep-alive connections), recording each payload's send time and receipt.
4. Wait until the watcher has evaluated everything, stop it with SIGINT, and read its state DB:
   - sustained rate: events evaluated / (last batch done - first send) (a short run pays the
     last batch's latency in full: a watcher that keeps up shows slightly under the offered rate),
     and the steady rate: events of every batch but the first / time between the first and last
     batch commits;
   - keeping up: the p99 payload latency of the first and of the last third of the sending (equal
     when latency does not grow) and how long after the last send the last batch was done;
   - event latency: a payload's send time to the commit of the batch that evaluated it (its
     events are in the lake and any alert they raise is stored);
   - alert latency, stored and delivered: from the send time of the payload holding the event that
     fired the alert (the alert's ``fired_at``: the event that brought a detection's group to its
     threshold, or at which a correlation's condition first held; payloads follow event time, and
     of several events at that time the earliest payload counts) to the alert's ``created_at``,
     and to the moment the receiver got it. Also reported, as a bound: from the *earliest* send
     time among the payloads of the batch that created the alert (``..._batch_bound_...``).

Usage::

    python benchmarks/realtime.py --rate 20000 --duration 60     # the README table
    python benchmarks/realtime.py --rate 2000 --duration 10 --users 100 --days 2   # smoke run
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np

from crmguard.ingest import ingest
from crmguard.lake import Lake
from crmguard.simulate import simulate
from crmguard.sinks import outbox

CLI = str(Path(sys.executable).parent / "crmguard")
TOKEN = "benchmark-token"


@dataclass(frozen=True)
class Stream:
    """A simulated org's events as NDJSON payloads, in event-time order."""

    payloads: list[bytes]
    counts: list[int]
    """Events per payload."""
    last_us: list[int]
    """Per payload, the time of its last event (epoch microseconds): non-decreasing."""

    def holding(self, at_us: int) -> int:
        """Index of the first payload holding an event at ``at_us`` (or after it)."""
        return bisect.bisect_left(self.last_us, at_us)


def build_stream(work: Path, users: int, days: int, seed: int, payload_events: int) -> Stream:
    """Simulate, ingest into a reference lake and return its events as a :class:`Stream`."""
    simulate(work / "sim", users=users, days=days, seed=seed)
    ref = Lake(work / "ref")
    ingest([str(work / "sim" / "salesforce"), str(work / "sim" / "okta")], ref)
    con = ref.connect()
    reader = con.sql("SELECT raw, epoch_us(time) FROM events ORDER BY time, event_id").to_arrow_reader(payload_events)
    payloads, counts, last_us = [], [], []
    pending: list[str] = []
    times: list[int] = []
    for batch in reader:
        pending += batch.column(0).to_pylist()
        times += batch.column(1).to_pylist()
        while len(pending) >= payload_events:
            part, pending = pending[:payload_events], pending[payload_events:]
            payloads.append(("\n".join(part) + "\n").encode())
            counts.append(len(part))
            last_us.append(times[payload_events - 1])
            times = times[payload_events:]
    if pending:
        payloads.append(("\n".join(pending) + "\n").encode())
        counts.append(len(pending))
        last_us.append(times[-1])
    con.close()
    return Stream(payloads, counts, last_us)


class Receiver:
    """A webhook receiver on loopback recording when each alert id arrived."""

    def __init__(self) -> None:
        self.delivered: dict[str, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                alert_id = json.loads(body).get("id")
                outer.delivered.setdefault(alert_id, time.time())
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("watch exited during start-up")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("watch did not start")


def send(url: str, payloads: list[bytes], counts: list[int], rate: float, duration: float,
         threads: int = 2) -> list[tuple[float, str, int, int]]:
    """POST ``payloads`` on schedule (payload k at k * events / rate) for at most ``duration``
    seconds; returns (send time, receipt, events, k) per acknowledged payload."""
    schedule = np.concatenate([[0.0], np.cumsum(counts)[:-1]]) / rate
    sent: list[tuple[float, str, int, int]] = []
    lock = threading.Lock()
    start = time.time() + 0.5
    next_k = [0]

    def worker() -> None:
        with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {TOKEN}",
                                               "Content-Type": "application/x-ndjson"}) as client:
            while True:
                with lock:
                    k = next_k[0]
                    next_k[0] += 1
                if k >= len(payloads) or schedule[k] > duration:
                    return
                delay = start + schedule[k] - time.time()
                if delay > 0:
                    time.sleep(delay)
                t = time.time()
                r = client.post(f"{url}/v1/events", content=payloads[k])
                if r.status_code != 202:
                    raise SystemExit(f"POST refused: {r.status_code} {r.text}")
                with lock:
                    sent.append((t, r.json()["receipt"], counts[k], k))

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sent


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` (and its threads) has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> int | None:
    """Peak resident memory of process ``pid`` (Linux ``VmHWM``), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _steady(batches: list[tuple[int, float, float, int]]) -> int | None:
    """Events evaluated per second between the first and the last batch commit (the events of every
    batch but the first / the time between those commits): the throughput once running, without
    the first batch's wait or the last one's latency, which a finite run pays once."""
    done = sorted((d, e) for _b, _s, d, e in batches)
    if len(done) < 2 or done[-1][0] <= done[0][0]:
        return None
    return round(sum(e for _d, e in done[1:]) / (done[-1][0] - done[0][0]))


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def measure(state: Path, sent: list[tuple[float, str, int, int]], delivered: dict[str, float],
            stream: Stream) -> dict[str, object]:
    """Read the watcher's state DB and compute the figures (see the module doc)."""
    db = sqlite3.connect(state)
    receipts = {r: (b, done) for r, b, done in db.execute("SELECT receipt, batch, done FROM watch_receipts")}
    batches = db.execute("SELECT id, started, done, events FROM watch_batches ORDER BY id").fetchall()
    spent: dict[str, float] = {}
    for (detail,) in db.execute("SELECT detail FROM watch_batches"):
        for k, v in json.loads(detail).get("timings", {}).items():
            spent[k] = spent.get(k, 0.0) + v
    alerts = db.execute("SELECT id, created_at, json_extract(context, '$.fired_at') FROM alerts").fetchall()
    db.close()
    sent_at = {r: (t, n) for t, r, n, _k in sent}
    sent_k = {k: t for t, _r, _n, k in sent}
    missing = [r for r in sent_at if r not in receipts]
    ev_lat = np.repeat([receipts[r][1] - t for r, (t, _n) in sent_at.items() if r in receipts],
                       [n for r, (_t, n) in sent_at.items() if r in receipts]).tolist()
    earliest: dict[int, float] = {}
    for r, (t, _n) in sent_at.items():
        if r in receipts:
            b = receipts[r][0]
            earliest[b] = min(earliest.get(b, t), t)
    first_send = min(t for t, _r, _n, _k in sent)
    stored_lat, delivered_lat, stored_bound, delivered_bound = [], [], [], []
    for alert_id, created, fired in alerts:
        at = _epoch(created)
        batch = next((b for b, s, d, _e in batches if s - 0.01 <= at <= d + 0.01 and b in earliest), None)
        if batch is None or at < first_send:
            continue
        trigger = sent_k.get(stream.holding(round(_epoch(fired) * 1_000_000)))
        if trigger is None:
            raise SystemExit(f"alert {alert_id}: no payload sent holds the event that fired it ({fired})")
        stored_lat.append(at - trigger)
        stored_bound.append(at - earliest[batch])
        if alert_id in delivered:
            delivered_lat.append(delivered[alert_id] - trigger)
            delivered_bound.append(delivered[alert_id] - earliest[batch])
    events = sum(n for _t, _r, n, _k in sent)
    last_done = max(d for _b, _s, d, _e in batches)
    last_send = max(t for t, _r, _n, _k in sent)
    send_span = last_send - first_send
    # Keeping up means latency does not grow: compare the first and last thirds of the sending.
    thirds = []
    for lo, hi in ((0.0, 1 / 3), (2 / 3, 1.0 + 1e-9)):
        part = [receipts[r][1] - t for r, (t, _n) in sent_at.items()
                if r in receipts and lo <= (t - first_send) / max(send_span, 1e-9) < hi]
        thirds.append(round(_pct(part, 99), 3))
    return {
        "events_sent": events, "payloads": len(sent), "unacknowledged_or_unprocessed": len(missing),
        "offered_events_per_s": round(events / send_span) if send_span else None,
        "sustained_events_per_s": round(events / (last_done - first_send)),
        "steady_events_per_s": _steady(batches),
        "batches": len(batches), "mean_batch_events": round(float(np.mean([e for *_x, e in batches]))),
        "event_to_evaluated_p50_s": round(_pct(ev_lat, 50), 3), "event_to_evaluated_p99_s": round(_pct(ev_lat, 99), 3),
        "payload_to_evaluated_p99_first_third_s": thirds[0], "payload_to_evaluated_p99_last_third_s": thirds[1],
        "last_payload_to_done_s": round(last_done - last_send, 3),
        "alerts_created": len(stored_lat),
        "alert_stored_p50_s": round(_pct(stored_lat, 50), 3), "alert_stored_p99_s": round(_pct(stored_lat, 99), 3),
        "alert_stored_max_s": round(max(stored_lat, default=float("nan")), 3),
        "alert_stored_batch_bound_p99_s": round(_pct(stored_bound, 99), 3),
        "alerts_delivered": len(delivered_lat),
        "alert_delivered_p50_s": round(_pct(delivered_lat, 50), 3),
        "alert_delivered_p99_s": round(_pct(delivered_lat, 99), 3),
        "alert_delivered_batch_bound_p99_s": round(_pct(delivered_bound, 99), 3),
        **{f"batch_time_{k}": round(v, 1) for k, v in spent.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20_000, help="Target events/s.")
    parser.add_argument("--duration", type=float, default=60, help="Seconds of sending.")
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--payload-events", type=int, default=1000, help="Events per POST.")
    parser.add_argument("--interval", type=float, default=1.0, help="Watcher micro-batch interval.")
    parser.add_argument("--compact-fanout", type=int, default=8, help="The watcher's --compact-fanout (0: no compaction).")
    parser.add_argument("--work", help="Working folder (default: a temporary one).")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crmguard-rt-") as tmp:
        work = Path(args.work or tmp)
        for old in ("sim", "ref", "home"):
            shutil.rmtree(work / old, ignore_errors=True)
        t = time.time()
        stream = build_stream(work, args.users, args.days, args.seed, args.payload_events)
        print(f"stream: {sum(stream.counts):,} events in {len(stream.payloads):,} payloads, built in {time.time() - t:.0f} s",
              file=sys.stderr)
        receiver = Receiver()
        home = work / "home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "sinks.yml").write_text(f"sinks:\n  - name: soc\n    type: webhook\n    url: {receiver.url}\n")
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(work / "watch.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([CLI, "watch", "--home", str(home), "--listen", f"127.0.0.1:{port}",
                                 "--token-env", "BENCH_TOKEN", "--interval", str(args.interval),
                                 "--status-every", "5", "--max-body", str(64 << 20),
                                 "--compact-fanout", str(args.compact_fanout)],
                                env={**os.environ, "BENCH_TOKEN": TOKEN}, stderr=log)
        try:
            _wait_healthy(url, proc)
            watcher_cpu, sender_cpu, wall = _cpu_seconds(proc.pid), time.process_time(), time.time()
            sent = send(url, stream.payloads, stream.counts, args.rate, args.duration)
            sender_cpu = time.process_time() - sender_cpu
            deadline = time.monotonic() + 600
            receipts = {r for _t, r, _n, _k in sent}
            while time.monotonic() < deadline:
                db = outbox.connect(home / "state.db")
                done = {r[0] for r in db.execute("SELECT receipt FROM watch_receipts")}
                pending = sum(c["pending"] for c in outbox.status_counts(db).values())
                db.close()
                if receipts <= done and not pending:
                    break
                time.sleep(0.2)
            watcher_cpu = _cpu_seconds(proc.pid) - watcher_cpu
            watcher_rss = _peak_rss_mb(proc.pid)
            wall = time.time() - wall
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
            log.close()
        figures = {"rate_target": args.rate, "duration_s": args.duration, "payload_events": args.payload_events,
                   "interval_s": args.interval, "compact_fanout": args.compact_fanout, **measure(home / "state.db", sent, receiver.delivered, stream),
                   "watcher_cpu_cores": round(watcher_cpu / wall, 2), "watcher_peak_rss_mb": watcher_rss, "sender_cpu_cores": round(sender_cpu / wall, 2)}
        receiver.server.shutdown()
        print((work / "watch.log").read_text()[-2000:], file=sys.stderr)
    report(figures, args.json)
    return 0


def report(figures: dict[str, object], as_json: bool, width: int = 32) -> None:
    """Print ``figures`` as one JSON object, or as aligned ``name value`` lines."""
    if as_json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            print(f"{k:{width}} {v}")


if __name__ == "__main__":
    sys.exit(main())
