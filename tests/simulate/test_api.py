"""The library interface: arguments, progress, summary, speed of a small run, and that the
simulator stays independent of the detector."""

from __future__ import annotations

import ast
import datetime as dt
import time
from pathlib import Path

import pytest

import crmguard.simulate as sim
from crmguard.simulate import CAMPAIGNS, DEFAULT_START, SimulationSummary, simulate


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 2}, "users"),
        ({"users": 50.5}, "users"),
        ({"days": 0}, "days"),
        ({"seed": -1}, "seed"),
        ({"campaigns": ["phishing"]}, "unknown campaign"),
        ({"campaigns": "vishing"}, "list of names"),
        ({"campaigns": ["insider", "insider"]}, "twice"),
        ({"start": "2025-03-03"}, "datetime.date"),
        ({"customers": 3}, "customers"),
        ({"workers": 0}, "workers"),
    ],
)
def test_invalid_arguments_raise_value_error(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"out": tmp_path, "users": 20, "days": 1, "seed": 1} | kwargs
    with pytest.raises(ValueError, match=message):
        simulate(**args)


def test_small_run_is_fast_reports_progress_and_summarises(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    summary = simulate(tmp_path, users=50, days=2, seed=2, campaigns=["insider"], progress=lambda d, n: calls.append((d, n)))
    assert time.perf_counter() - t0 < 10
    assert calls == [(1, 2), (2, 2)]
    assert isinstance(summary, SimulationSummary)
    assert summary.start == DEFAULT_START == dt.date(2025, 3, 3)
    assert [c.name for c in summary.campaigns] == ["insider"]
    assert summary.total_events == sum(v for k, v in summary.counts.items() if k not in ("customers", "snapshot"))
    assert 100 * 50 * 2 <= summary.total_events <= 300 * 53 * 2
    assert summary.paths["labels"].is_file() and summary.paths["customers"].is_file()
    assert summary.as_dict()["campaigns"][0]["actors"][0].startswith("insider ")


def test_campaign_names_and_default_start() -> None:
    assert CAMPAIGNS == ("vishing", "stolen-token", "insider", "credential-stuffing")


def test_start_date_moves_every_file(tmp_path: Path) -> None:
    summary = simulate(tmp_path, users=10, days=1, seed=4, campaigns=[], start=dt.date(2024, 11, 29))
    assert sorted(p.name for p in (tmp_path / "okta").iterdir()) == ["2024-11-29.json"]
    assert summary.campaigns == ()


def test_simulator_never_imports_the_detector() -> None:
    root = Path(sim.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(("crmguard.engine", "crmguard.rules", "crmguard.anomaly")), path
