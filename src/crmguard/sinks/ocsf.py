"""OCSF 1.3.0 Detection Finding (class_uid 2004) for an alert, and the file sink writing them as JSONL.

Mapping: the alert is the finding (``finding_info.uid`` = alert id), its rule the analytic
(``type_id`` 1 Rule), its actor ``actor.user.name``, its source IPs ``evidences[].src_endpoint.ip``
and observables; ``count`` is the number of matching events. Customer records are only counted
(``unmapped.record_count``). ``metadata.uid`` is the idempotency key, so a SIEM can drop the
duplicate an at-least-once delivery may write after a crash.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import IO

import orjson

from crmguard import __version__
from crmguard.sinks.config import FileSink, severity_rank
from crmguard.sinks.payload import SendFailed

OCSF_VERSION = "1.3.0"
CLASS_UID = 2004
CATEGORY_UID = 2
ACTIVITY_CREATE = 1
SEVERITY_CAPTIONS = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
OBSERVABLE_IP, OBSERVABLE_USER_NAME = 2, 4


def _ms(text: str | None) -> int | None:
    if not text:
        return None
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int((t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp() * 1000)


def detection_finding(view: dict) -> dict:
    """Return the OCSF Detection Finding (a JSON-ready dict) for an alert view
    (:func:`crmguard.sinks.payload.alert_view`)."""
    ctx = view["context"]
    ips = [str(ip) for ip in ctx.get("src_ips") or []]
    severity_id = severity_rank(view["severity"])
    created = _ms(view.get("created_at")) or _ms(view["last_seen"])
    observables = [{"name": f"evidences[{i}].src_endpoint.ip", "type_id": OBSERVABLE_IP, "type": "IP Address",
                    "value": ip} for i, ip in enumerate(ips)]
    finding: dict = {
        "class_uid": CLASS_UID, "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID, "category_name": "Findings",
        "activity_id": ACTIVITY_CREATE, "activity_name": "Create",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE, "type_name": "Detection Finding: Create",
        "severity_id": severity_id, "severity": SEVERITY_CAPTIONS[severity_id],
        "status_id": 1, "status": "New", "is_alert": True,
        "time": created, "count": view["event_count"], "message": view["title"],
        "finding_info": {
            "uid": view["id"], "title": view["title"], "desc": view["explanation"],
            "created_time": created, "first_seen_time": _ms(view["first_seen"]), "last_seen_time": _ms(view["last_seen"]),
            "analytic": {"uid": view["rule_id"], "name": view["title"], "type_id": 1, "type": "Rule"},
        },
        "evidences": [{"src_endpoint": {"ip": ip}} for ip in ips],
        "metadata": {"version": OCSF_VERSION, "uid": view["idempotency_key"],
                     "product": {"name": "crmguard", "vendor_name": "crmguard", "version": __version__}},
        "unmapped": {k: v for k, v in {"record_count": view["record_count"], "rows": ctx.get("rows"),
                                      "objects": ctx.get("objects"), "apps": ctx.get("apps"),
                                      "group_by": ctx.get("group_by"), "rules": ctx.get("rules")}.items() if v is not None},
    }
    if view["actor"]:
        finding["actor"] = {"user": {"name": view["actor"]}}
        observables.insert(0, {"name": "actor.user.name", "type_id": OBSERVABLE_USER_NAME, "type": "User Name",
                               "value": view["actor"]})
    finding["observables"] = observables
    return finding


class FileSender:
    """Appends one finding per line to ``sink.path`` (folders created), flushed and fsynced per line
    so a line the journal calls delivered is on disk."""

    def __init__(self, sink: FileSink) -> None:
        self.sink = sink
        self.file: IO[bytes] | None = None

    def send(self, view: dict) -> str:
        """Append the finding for ``view``; returns what happened, raises ``SendFailed``."""
        line = orjson.dumps(detection_finding(view)) + b"\n"
        try:
            if self.file is None:
                Path(self.sink.path).parent.mkdir(parents=True, exist_ok=True)
                self.file = open(self.sink.path, "ab")  # noqa: SIM115 - kept open for the whole pass
            self.file.write(line)
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError as exc:
            self.close()
            raise SendFailed(f"cannot append to {self.sink.path}: {exc.strerror or exc}", sink=self.sink.name) from None
        return f"appended {len(line)} bytes to {self.sink.path}"

    def close(self) -> None:
        """Close the file."""
        if self.file is not None:
            self.file.close()
            self.file = None
