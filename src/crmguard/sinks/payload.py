"""What a sink may say about an alert: its fields and context, never customer records.

Alerts name staff identities and infrastructure (actor, IPs, apps); the customer records they
touched are only counted here (``record_count``), never listed. Context keys are allow-listed, so a
key added to alerts later does not reach a webhook until someone decides it may.
"""

from __future__ import annotations

import json
import sqlite3

from crmguard.errors import NotificationError
from crmguard.sinks.outbox import VERSION, idempotency_key

CONTEXT_KEYS = ("rows", "objects", "src_ips", "apps", "user_agents", "group_by", "rules")


class SendFailed(NotificationError):
    """One delivery attempt failed; ``retry_after`` (seconds) is the receiver's own wish, if it said one."""

    def __init__(self, message: str, *, sink: str, retry_after: float | None = None) -> None:
        super().__init__(message, field=f"sink {sink}")
        self.retry_after = retry_after


def alert_view(alert: dict, version: int = VERSION) -> dict:
    """Return the deliverable view of a stored alert (a row of ``alerts`` with ``context`` and
    ``record_ids`` as JSON text or decoded): id, idempotency key, rule, title, severity, actor, times,
    counts, explanation and the allow-listed context."""
    context = alert["context"]
    if isinstance(context, str):
        context = json.loads(context)
    records = alert.get("record_ids") or []
    if isinstance(records, str):
        records = json.loads(records)
    return {
        "id": alert["id"], "idempotency_key": idempotency_key(alert["id"], version), "version": version,
        "rule_id": alert["rule_id"], "title": alert["title"], "severity": alert["severity"], "actor": alert["actor"],
        "first_seen": alert["first_seen"], "last_seen": alert["last_seen"], "event_count": alert["event_count"],
        "record_count": len(records), "explanation": alert["explanation"],
        "context": {k: context[k] for k in CONTEXT_KEYS if context.get(k) is not None},
        "created_at": alert.get("created_at"),
    }


def load_view(db: sqlite3.Connection, alert_id: str, version: int = VERSION) -> dict | None:
    """Return :func:`alert_view` of the stored alert ``alert_id``, or None if it is not stored."""
    rows = db.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchall()
    return alert_view(dict(rows[0]), version) if rows else None
