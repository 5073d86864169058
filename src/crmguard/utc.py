"""Times as crmguard writes them: ISO 8601 in UTC with a ``Z`` (alerts, incidents, the watcher's
state)."""

from __future__ import annotations

import datetime as dt


def iso_z(t: dt.datetime) -> str:
    """``t`` (aware) as ISO 8601 UTC text ending in ``Z``, e.g. ``2025-03-04T10:17:23.5Z``."""
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
