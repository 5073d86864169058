"""The workspace: one folder holding the lake and the state DB, so commands need no options.

``--home`` wins, then the ``CRMGUARD_HOME`` environment variable, then ``./crmguard-data``.
``--lake`` and ``--state`` override the two parts individually.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "crmguard-data"


@dataclass(frozen=True)
class Workspace:
    """Resolved locations: ``home``, ``lake`` folder, ``state`` SQLite file, ``intel`` folder."""

    home: Path
    lake: Path
    state: Path

    @property
    def intel(self) -> Path:
        """Folder of the IP intel files (``crmguard intel update`` writes them)."""
        return self.home / "intel"


def resolve(home: str | None = None, lake: str | None = None, state: str | None = None) -> Workspace:
    """Resolve the workspace from explicit options and the environment; returns a
    :class:`Workspace` (nothing is created on disk)."""
    base = Path(home or os.environ.get("CRMGUARD_HOME") or DEFAULT_HOME)
    return Workspace(base, Path(lake) if lake else base / "lake", Path(state) if state else base / "state.db")
