"""Evidence for an alert: its events from the lake, with customer PII masked by default.

Alerts name staff identities (the actor); the records they touched may carry customers' e-mail
addresses, phone numbers and names (in SOQL text, RTEM ``Records``, report rows). Those are masked
unless the caller asks for them explicitly.
"""

from __future__ import annotations

import re

from crmguard.lake import Lake
from crmguard.sources.sql import sql_list

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# International (+33 6 12 34 56 78) or grouped (06 12 34 56 78, (415) 555-0100) numbers; a bare run of
# digits is left alone, since ELF timestamps and ids are digit runs.
PHONE = re.compile(r"(?<![\w.])(?:\+\d[\d ().-]{6,}\d|\(?\d{2,4}\)?[ .-]\d{2,4}[ .-]\d{2,4}(?:[ .-]\d{2,4})*)(?![\w.])")
MASKED_FIELDS = ("raw", "query")


def mask(text: str, keep: set[str] | None = None) -> str:
    """Mask e-mail addresses (except those in ``keep``, e.g. the staff actor) and phone numbers."""
    keep = {k.lower() for k in keep or set()}

    def email(m: re.Match[str]) -> str:
        value = m.group(0)
        return value if value.lower() in keep else value[0] + "***@" + value.split("@", 1)[1]

    return PHONE.sub(lambda m: m.group(0)[:2] + "*" * (len(m.group(0)) - 2), EMAIL.sub(email, text))


def evidence_events(lake: Lake, alert: dict, unmask: bool = False, limit: int = 50) -> list[dict]:
    """Return the alert's evidence events (by ``event_ids``) from ``lake`` as dicts, time-ordered,
    with customer PII masked in ``raw`` and ``query`` unless ``unmask``."""
    ids = list(alert.get("event_ids") or [])[:limit]
    if not ids:
        return []
    con = lake.connect()
    table = con.sql(f"SELECT * EXCLUDE (date) FROM events WHERE event_id IN (SELECT unnest({sql_list(ids)})) ORDER BY time")
    rows = table.to_arrow_table().to_pylist()
    if not unmask:
        keep = {alert.get("actor") or ""}
        for row in rows:
            keep.add(row.get("username") or "")
        for row in rows:
            for f in MASKED_FIELDS:
                if row.get(f):
                    row[f] = mask(row[f], keep)
    return rows
