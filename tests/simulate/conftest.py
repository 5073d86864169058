"""Fixtures for the simulator tests: one small simulated export shared by the whole module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crmguard.simulate import SimulationSummary, simulate

USERS, DAYS, SEED = 60, 3, 11


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationSummary]:
    """A small org (60 staff, 3 days, every campaign) simulated once: (output folder, summary)."""
    out = tmp_path_factory.mktemp("sim")
    return out, simulate(out, users=USERS, days=DAYS, seed=SEED)


@pytest.fixture(scope="session")
def labels(run: tuple[Path, SimulationSummary]) -> dict[str, Any]:
    """The run's ``labels.json``."""
    return json.loads((run[0] / "labels.json").read_text())
