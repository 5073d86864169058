"""Where the public sample logs are: ``$CRMGUARD_SHARED_DATA``, else ``../shared/data`` next to the
checkout. Tests that compare with them skip (with this reason) when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

MISSING = "public samples not found: ../shared/data is absent (set CRMGUARD_SHARED_DATA)"


def shared_data_dir() -> Path | None:
    """The ``shared/data`` folder, or None when it is not there."""
    env = os.environ.get("CRMGUARD_SHARED_DATA")
    folder = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return folder if (folder / "salesforce" / "elf").is_dir() else None
