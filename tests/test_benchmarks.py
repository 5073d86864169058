"""Every benchmark runs end to end at a tiny scale and reports figures that add up.

The benchmarks are the evidence behind the README's speed tables: these runs keep them working as
the code changes. Their speed is measured by running them at scale (see the README), not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

pytestmark = pytest.mark.integration


def run(script: str, *args: str) -> dict:
    """Run ``benchmarks/<script> ARGS --json`` in a child process; return its JSON report."""
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), *args, "--json"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_detect_compares_the_pack_with_sqlite_and_prints_the_floor() -> None:
    report = run("detect.py", "--users", "5", "--days", "1", "--sizes", "15,60", "--sqlite-max", "60")
    assert report["events"] == report["simulated"] == report["python_parsed"] > 0
    assert 0 < report["bare_read_s"] and 0 < report["ingest_s"]
    rows = {(r["rules"], r["clones"]): r for r in report["results"]}
    assert {n for n, _ in rows} == {15, 60}
    matching, silent = rows[(60, "match as the original")], rows[(60, "match nothing")]
    # Clones of rules that match add alerts; clones that match nothing add none.
    assert matching["crmguard"]["alerts"] > silent["crmguard"]["alerts"] > 0
    assert matching["sqlite"]["queries"] > 0 and matching["sqlite"]["events"] == report["events"]
    assert silent["sqlite"] is None


def test_detect_scale_runs_the_pack_over_a_replicated_lake() -> None:
    report = run("detect_scale.py", "--events", "50000", "--users", "5", "--days", "2")
    assert report["events"] == 50_000 and report["alerts"] > 0 and report["stderr"] == ""


def test_realtime_loses_nothing_and_times_every_alert() -> None:
    report = run("realtime.py", "--rate", "5000", "--duration", "4", "--users", "5", "--days", "2")
    assert report["unacknowledged_or_unprocessed"] == 0 and report["events_sent"] > 0
    assert report["alerts_created"] > 0 and report["alerts_delivered"] == report["alerts_created"]
    assert 0 < report["alert_stored_p50_s"] <= report["alert_stored_p99_s"] <= report["alert_stored_batch_bound_p99_s"]


def test_soak_runs_batches_and_raises_the_campaigns_alerts() -> None:
    report = run("soak.py", "--users", "5", "--batch", "500")
    assert report["batches"] >= 2 and report["events"] > 0 and report["alerts_created"] > 0


def test_quality_measures_every_campaign() -> None:
    report = run("quality.py", "--seeds", "1", "--users", "5", "--days", "3", "--quiet-days", "1")
    assert set(report) == {"rules", "baselines", "both"}
    rules = report["rules"]
    assert set(rules["campaigns"]) == {"vishing", "stolen-token", "insider", "credential-stuffing"}
    assert rules["alerts"] >= rules["attributed_alerts"] > 0 and 0 <= rules["precision"] <= 1


def test_ingest_measures_one_file_and_many() -> None:
    one = run("ingest.py", "--rows", "20000")
    assert one["rows"] == 20_000 and one["crmguard"]["lake_mb"] > 0 and one["ratio_vs_floor"] > 0
    many = run("ingest.py", "--many", "--users", "5", "--days", "1")
    assert many["events"] > 0 and many["files"] > 1 and {"batched", "per-file"} <= set(many)


def test_simulate_reports_its_rate() -> None:
    report = run("simulate.py", "--users", "5", "--days", "1")
    assert report["events"] > 0 and report["events_per_second"] > 0 and len(report["campaigns"]) == 4
