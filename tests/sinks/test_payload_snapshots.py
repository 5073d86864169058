"""What each sink sends for one alert, pinned: generic webhook JSON, Slack message, e-mail text and
HTML, OCSF Detection Finding.

Refresh after an intended change with:
    CRMGUARD_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/sinks/test_payload_snapshots.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from crmguard.sinks.config import parse_config
from crmguard.sinks.mail import message
from crmguard.sinks.ocsf import detection_finding
from crmguard.sinks.payload import alert_view
from crmguard.sinks.slack import slack_message
from crmguard.sinks.webhook import generic_payload
from tests.sinks.conftest import make_alert

HERE = Path(__file__).parent
SMTP = parse_config({"sinks": [{"name": "mail", "type": "smtp", "host": "localhost", "from": "crmguard@shop.example",
                                "to": ["soc@shop.example"]}]}).sinks[0]


def _view() -> dict:
    a = make_alert(7, severity="critical")
    return alert_view({**a.__dict__, "first_seen": "2025-03-04T08:07:00Z", "last_seen": "2025-03-04T08:12:00Z",
                       "created_at": "2025-03-04T08:15:02.5Z"})


def _json(payload: dict) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


RENDERERS: dict[str, Callable[[dict], str]] = {
    "webhook.json": lambda v: _json(generic_payload(v)),
    "slack.json": lambda v: _json(slack_message(v)),
    "ocsf.json": lambda v: _json(detection_finding(v)),
    "mail.txt": lambda v: message(v, SMTP).get_body(("plain",)).get_content(),
    "mail.html": lambda v: message(v, SMTP).get_body(("html",)).get_content(),
}


@pytest.mark.parametrize("name", list(RENDERERS))
def test_payload_snapshot(name: str) -> None:
    text = RENDERERS[name](_view())
    snapshot = HERE / "snapshots" / name
    if os.environ.get("CRMGUARD_UPDATE_SNAPSHOTS"):
        snapshot.write_text(text)
    assert text == snapshot.read_text()
    assert "003CUSTOMER" not in text
