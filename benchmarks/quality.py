"""Detection quality of the rule pack on simulated orgs: recall, precision, false alerts per day and
time to detect, per campaign, over several seeds.

For each seed: simulate an org with every campaign (``crmguard.simulate``), ingest it into a fresh lake,
run the rules (the built-in pack plus ``--rules`` folders) over the whole period, and compare the
alerts with the ground truth in ``labels.json``.

- An alert is **attributable** to a campaign when it names one of the campaign's labelled identities
  (its actor, or the actor of one of its evidence events) — for credential stuffing also when one of
  its evidence events comes from the campaign's source addresses — and its time span overlaps the
  campaign's window (``start`` .. ``end`` of the labels, widened by one hour on each side).
- **Recall** of a campaign: the share of seeds in which at least one alert is attributable to it.
- **Precision**: attributable alerts / all alerts. **False alerts per day**: the other alerts divided by
  the simulated days.
- **Time to detect**: from the campaign's first malicious event (labels ``start``), and from its first
  read of customer data (its earliest event, by the record keys in ``labels.json``, that returned rows),
  to the earliest moment
  an attributable alert could have been raised by a detector running incrementally — found by re-running
  the alert's rule (with its base rules) on the events up to a cut-off time, bisected to the second
  (an alert is raised when its threshold is reached or its correlation fires, not at its first evidence).

Three detectors are measured on the same data: the **rules** alone, the behavioural **baselines** alone
(``crmguard.anomaly``; an alert is raised when the identity's score crosses the threshold, its
``fired_at``), and **both** (the union; time to detect is the earlier of the two). The org is simulated
with ``--quiet-days`` of normal traffic before any campaign (the baselines' history) and every figure
covers the days after them only; false alerts are also given per day per 10,000 active users.

Run: ``.venv/bin/python benchmarks/quality.py [--seeds 5] [--users 300] [--days 14] [--quiet-days 7] [--json]``.
``--seeds`` is a count (seeds 1..N) or a comma-separated list. ``--workdir DIR`` keeps the simulated
orgs and lakes (and reuses them on the next run with the same arguments).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from crmguard.anomaly import RULE_ID as BASELINE_RULE
from crmguard.anomaly.features import READS
from crmguard.anomaly.run import run_baselines
from crmguard.detect import engine_connection
from crmguard.engine.rules import Rule, load_rules
from crmguard.engine.run import Alert, run_rules
from crmguard.ingest import ingest
from crmguard.lake import Lake
from crmguard.simulate import CAMPAIGNS, simulate

SLACK = dt.timedelta(hours=1)
IP_ATTRIBUTED = {"credential-stuffing"}
"""Campaigns whose source addresses belong to the attacker alone (the insider works from the office
network colleagues share, the token thief's addresses are checked through the identity)."""


@dataclass
class CampaignTruth:
    """One campaign of ``labels.json``: name, window, labelled identities and source addresses."""

    name: str
    start: dt.datetime
    end: dt.datetime
    identities: set[str]
    ips: set[str]

    @classmethod
    def from_label(cls, label: dict[str, Any]) -> CampaignTruth:
        ids = {str(a[k]) for a in label["actors"] for k in ("username", "user_id", "okta_id") if a.get(k)}
        return cls(label["name"], _ts(label["start"]), _ts(label["end"]), ids, set(label["attacker"]["ips"]))


@dataclass
class SeedResult:
    """What one seed gave: alerts, which campaign each is attributed to, time to detect per campaign."""

    seed: int
    days: int
    users: int
    events: int
    alerts: list[Alert]
    attributed: dict[str, str | None]
    detected: dict[str, bool]
    ttd: dict[str, float | None]
    from_read: dict[str, float | None]
    rule_names: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def prepare(seed: int, users: int, days: int, root: Path, quiet_days: int = 0) -> tuple[Path, Path, dict[str, float]]:
    """Simulate and ingest one seed under ``root`` (reused when already there); returns the lake
    folder, the labels file and the seconds each step took."""
    base = root / f"seed{seed}-u{users}-d{days}-q{quiet_days}"
    sim, lake_dir, done = base / "sim", base / "lake", base / ".ingested"
    seconds: dict[str, float] = {}
    if not done.exists():
        t = time.perf_counter()
        simulate(sim, users, days, seed, list(CAMPAIGNS), quiet_days=quiet_days)
        seconds["simulate"] = time.perf_counter() - t
        t = time.perf_counter()
        summary = ingest([str(sim / "salesforce"), str(sim / "okta")], Lake(lake_dir))
        if summary.failed:
            raise RuntimeError(f"seed {seed}: ingest failed for {[f.path for f in summary.failed]}")
        seconds["ingest"] = time.perf_counter() - t
        done.touch()
    return lake_dir, sim / "labels.json", seconds


def evidence(con: duckdb.DuckDBPyConnection, alerts: list[Alert]) -> dict[str, tuple[str | None, str | None]]:
    """Actor and source address of every evidence event of ``alerts``, by event id."""
    ids = sorted({e for a in alerts for e in a.event_ids})
    if not ids:
        return {}
    con.execute("CREATE OR REPLACE TEMP TABLE wanted AS SELECT unnest(?::VARCHAR[]) AS event_id", [ids])
    rows = con.execute(
        "SELECT e.event_id, coalesce(e.username, i.name, e.user_id), e.src_ip FROM events e JOIN wanted USING (event_id) "
        "LEFT JOIN identities i USING (user_id)"
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def attribute(alert: Alert, truths: list[CampaignTruth], ev: dict[str, tuple[str | None, str | None]]) -> str | None:
    """The campaign ``alert`` is attributable to (see the module docstring), or None."""
    actors = {alert.actor} | {ev[e][0] for e in alert.event_ids if e in ev}
    ips = {ev[e][1] for e in alert.event_ids if e in ev}
    for c in truths:
        if alert.last_seen < c.start - SLACK or alert.first_seen > c.end + SLACK:
            continue
        if actors & c.identities or (c.name in IP_ATTRIBUTED and ips & c.ips):
            return c.name
    return None


def _rules_for(rule: Rule, by_name: dict[str, Rule]) -> list[Rule]:
    if rule.correlation is None:
        return [rule]
    return [rule, *(by_name[n] for n in rule.correlation.rules)]


def time_to_detect(
    con: duckdb.DuckDBPyConnection,
    truth: CampaignTruth,
    alerts: list[Alert],
    rules: list[Rule],
    ev: dict[str, tuple[str | None, str | None]],
) -> float | None:
    """Seconds from the campaign's first malicious event to the earliest moment one of its attributable
    ``alerts`` could have been raised (bisecting a cut-off time per candidate rule), or None."""
    by_id = {r.id: r for r in rules}
    by_name = {r.name: r for r in rules}
    best: dt.datetime | None = None
    for alert in sorted(alerts, key=lambda a: a.first_seen):
        if best is not None and alert.first_seen >= best:
            break
        rule = by_id[alert.rule_id]
        subset = _rules_for(rule, by_name)

        def fires(until: dt.datetime, rule: Rule = rule, subset: list[Rule] = subset) -> bool:
            found = run_rules(con, subset, None, until)
            return any(
                a.rule_id == rule.id and attribute(a, [truth], ev | evidence(con, [a])) == truth.name for a in found
            )

        lo, hi = alert.first_seen, min(alert.last_seen, best or alert.last_seen) + dt.timedelta(microseconds=1)
        if not fires(hi):
            continue
        # Invariant: fires(hi), and not fires(lo) unless the very first evidence event raises it.
        if fires(lo + dt.timedelta(microseconds=1)):
            hi = lo + dt.timedelta(microseconds=1)
        while hi - lo > dt.timedelta(seconds=1):
            mid = lo + (hi - lo) / 2
            lo, hi = (lo, mid) if fires(mid) else (mid, hi)
        best = hi if best is None else min(best, hi)
    return None if best is None else max(0.0, (best - truth.start).total_seconds())


def first_read(con: duckdb.DuckDBPyConnection, label: dict[str, Any]) -> dt.datetime | None:
    """When the campaign of ``label`` first read customer data: its earliest event (found by the
    record keys ``labels.json`` lists) that returned rows."""
    keys = sorted({k for values in label["event_keys"].values() for k in values})
    if not keys:
        return None
    [(at,)] = con.execute(
        f"""SELECT min(time) FROM events WHERE {READS} AND rows > 0
            AND time BETWEEN ? AND ? AND coalesce(json_extract_string(raw, '$.REQUEST_ID'),
                json_extract_string(raw, '$.EventIdentifier'), json_extract_string(raw, '$.uuid')) IN
                (SELECT unnest(?::VARCHAR[]))""",
        [_ts(label["start"]), _ts(label["end"]), keys]).fetchall()
    return at


def evaluate_seed(seed: int, users: int, days: int, root: Path, rule_dirs: list[Path],
                  quiet_days: int = 0) -> dict[str, SeedResult]:
    """Simulate, ingest and detect one seed with the rules, the baselines and both; attribute the
    alerts of the days after ``quiet_days`` and time the detections. Returns a result per mode."""
    lake_dir, labels_path, seconds = prepare(seed, users, days, root, quiet_days)
    labels = json.loads(labels_path.read_text())
    truths = [CampaignTruth.from_label(c) for c in labels["campaigns"]]
    window = _ts(labels["period"]["start"]) + dt.timedelta(days=quiet_days)
    rules = load_rules(rule_dirs)
    con = engine_connection(Lake(lake_dir))
    # The bisection re-runs rules many times: read the (small) lake into memory once.
    con.execute("CREATE OR REPLACE TEMP TABLE events_mem AS SELECT * FROM events")
    con.execute("CREATE OR REPLACE TEMP VIEW events AS SELECT * FROM events_mem")
    [(n_events,)] = con.execute("SELECT count(*) FROM events_mem").fetchall()
    t = time.perf_counter()
    rule_alerts = [a for a in run_rules(con, rules) if a.last_seen >= window]
    seconds["detect"] = time.perf_counter() - t
    t = time.perf_counter()
    shutil.rmtree(lake_dir / "baseline", ignore_errors=True)
    base = run_baselines(con, Lake(lake_dir), None, since=window, directory=labels_path.parent / "org" / "snapshot.json")
    seconds["baselines"] = time.perf_counter() - t
    base_alerts = base.alerts
    ev = evidence(con, rule_alerts + base_alerts)
    names = {r.id: r.name for r in rules} | {BASELINE_RULE: "baseline (behaviour)"}
    scored_days = days - quiet_days
    ttd_rules: dict[str, float | None] = {}
    ttd_base: dict[str, float | None] = {}
    first_reads = {c.name: first_read(con, label) for c, label in zip(truths, labels["campaigns"], strict=True)}
    attributed = {a.id: attribute(a, truths, ev) for a in rule_alerts + base_alerts}
    t = time.perf_counter()
    for c in truths:
        mine = [a for a in rule_alerts if attributed[a.id] == c.name]
        ttd_rules[c.name] = time_to_detect(con, c, mine, rules, ev) if mine else None
        fired = [_ts(str(a.context["fired_at"])) for a in base_alerts if attributed[a.id] == c.name]
        ttd_base[c.name] = max(0.0, (min(fired) - c.start).total_seconds()) if fired else None
    seconds["time_to_detect"] = time.perf_counter() - t
    con.close()

    def result(alerts: list[Alert], ttd: dict[str, float | None]) -> SeedResult:
        from_read = {}
        for c in truths:
            read = first_reads[c.name]
            at = None if ttd[c.name] is None else c.start + dt.timedelta(seconds=ttd[c.name])
            from_read[c.name] = None if at is None or read is None else max(0.0, (at - read).total_seconds())
        return SeedResult(seed, scored_days, users, int(n_events), alerts, {a.id: attributed[a.id] for a in alerts},
                          {c.name: ttd[c.name] is not None for c in truths}, ttd, from_read, names, seconds)

    both = {c.name: min((x for x in (ttd_rules[c.name], ttd_base[c.name]) if x is not None), default=None)
            for c in truths}
    return {"rules": result(rule_alerts, ttd_rules), "baselines": result(base_alerts, ttd_base),
            "both": result(rule_alerts + base_alerts, both)}


def summarise(results: list[SeedResult]) -> dict[str, Any]:
    """Aggregate figures over seeds: per campaign and overall, plus per-rule alert counts."""
    campaigns: dict[str, Any] = {}
    for name in CAMPAIGNS:
        seen = [r for r in results if name in r.detected]
        ttds = [r.ttd[name] for r in seen if r.ttd.get(name) is not None]
        reads = [r.from_read[name] for r in seen if r.from_read.get(name) is not None]
        alerts = sum(1 for r in seen for a in r.alerts if r.attributed[a.id] == name)
        campaigns[name] = {
            "seeds": len(seen),
            "recall": sum(r.detected[name] for r in seen) / len(seen) if seen else None,
            "alerts": alerts,
            "ttd_median_s": statistics.median(ttds) if ttds else None,
            "ttd_max_s": max(ttds) if ttds else None,
            "from_read_median_s": statistics.median(reads) if reads else None,
            "from_read_max_s": max(reads) if reads else None,
        }
    total = sum(len(r.alerts) for r in results)
    true = sum(1 for r in results for a in r.alerts if r.attributed[a.id])
    days = sum(r.days for r in results)
    rules: dict[str, dict[str, int]] = {}
    for r in results:
        for a in r.alerts:
            row = rules.setdefault(r.rule_names[a.rule_id], {"alerts": 0, "attributed": 0})
            row["alerts"] += 1
            row["attributed"] += bool(r.attributed[a.id])
    return {
        "seeds": [r.seed for r in results],
        "days_per_seed": results[0].days if results else 0,
        "events": sum(r.events for r in results),
        "alerts": total,
        "attributed_alerts": true,
        "precision": true / total if total else None,
        "false_alerts_per_day": (total - true) / days if days else None,
        "false_alerts_per_day_per_10k_users": (total - true) / days / results[0].users * 10_000 if days else None,
        "recall": (
            sum(c["recall"] * c["seeds"] for c in campaigns.values() if c["recall"] is not None)
            / sum(c["seeds"] for c in campaigns.values())
        )
        if results
        else None,
        "campaigns": campaigns,
        "rules": dict(sorted(rules.items())),
        "seconds": {
            k: round(sum(r.seconds.get(k, 0.0) for r in results), 1)
            for k in ("simulate", "ingest", "detect", "baselines", "time_to_detect")
        },
        "false_alerts": [
            {
                "seed": r.seed,
                "rule": r.rule_names[a.rule_id],
                "actor": a.actor,
                "first_seen": a.first_seen.isoformat(),
                "events": a.event_count,
            }
            for r in results
            for a in r.alerts
            if not r.attributed[a.id]
        ],
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def markdown(summary: dict[str, Any], users: int, mode: str = "rules") -> str:
    """The summary of one mode as Markdown tables."""
    s = summary
    out = [
        f"**{mode}** — seeds {', '.join(map(str, s['seeds']))}: {users} users, {s['days_per_seed']} scored days each "
        f"(after the quiet days), all four campaigns, {s['events']:,} events in all.",
        "",
        "| campaign | recall | attributed alerts | time to detect (median) | (max) | after the first data read (median) | (max) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, c in s["campaigns"].items():
        recall = "—" if c["recall"] is None else f"{c['recall']:.0%}"
        out.append(
            f"| {name} | {recall} | {c['alerts']} | {_duration(c['ttd_median_s'])} | {_duration(c['ttd_max_s'])} | "
            f"{_duration(c['from_read_median_s'])} | {_duration(c['from_read_max_s'])} |"
        )
    precision = "—" if s["precision"] is None else f"{s['precision']:.1%}"
    fapd = "—" if s["false_alerts_per_day"] is None else f"{s['false_alerts_per_day']:.2f}"
    recall = "—" if s["recall"] is None else f"{s['recall']:.0%}"
    per10k = "—" if s["false_alerts_per_day_per_10k_users"] is None else f"{s['false_alerts_per_day_per_10k_users']:.2f}"
    out += [
        "",
        "| alerts | attributable | precision | false alerts / day | false alerts / day / 10k users | recall (all campaigns) |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {s['alerts']} | {s['attributed_alerts']} | {precision} | {fapd} | {per10k} | {recall} |",
        "",
        "| rule | alerts | attributable |",
        "| --- | --- | --- |",
    ]
    out += [f"| {name} | {r['alerts']} | {r['attributed']} |" for name, r in s["rules"].items()]
    if s["false_alerts"]:
        out += ["", "False alerts:", ""]
        out += [
            f"- seed {f['seed']}: {f['rule']} on {f['actor']} at {f['first_seen']} ({f['events']} events)"
            for f in s["false_alerts"]
        ]
    return "\n".join(out)


def _seeds(text: str) -> list[int]:
    if "," in text:
        return [int(x) for x in text.split(",") if x.strip()]
    return list(range(1, int(text) + 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="5", help="how many seeds (1..N) or a comma-separated list")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--quiet-days", type=int, default=7, help="days of normal traffic before the campaigns")
    parser.add_argument("--rules", type=Path, action="append", default=[], help="extra rule folder (repeatable)")
    parser.add_argument("--workdir", type=Path, help="keep simulated orgs and lakes here (reused when present)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crmguard-quality-") as tmp:
        root = args.workdir or Path(tmp)
        results: dict[str, list[SeedResult]] = {"rules": [], "baselines": [], "both": []}
        for seed in _seeds(args.seeds):
            by_mode = evaluate_seed(seed, args.users, args.days, root, args.rules, args.quiet_days)
            for mode, r in by_mode.items():
                results[mode].append(r)
            print(f"seed {seed}: " + ", ".join(f"{m} {len(r.alerts)} alerts" for m, r in by_mode.items()), file=sys.stderr)
    summaries = {mode: summarise(rs) for mode, rs in results.items()}
    if args.json:
        print(json.dumps(summaries, indent=2, default=str))
    else:
        print("\n\n".join(markdown(s, args.users, mode) for mode, s in summaries.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
