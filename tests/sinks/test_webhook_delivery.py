"""Webhook and Slack sinks against a real HTTP receiver on localhost: down delays, never drops;
once up, every alert arrives exactly once, with its Idempotency-Key."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from crmguard.sinks import deliver_due, enqueue
from crmguard.sinks.config import parse_config
from crmguard.sinks.outbox import connect, journal_rows, rows
from tests.sinks.conftest import T0, make_alert

pytestmark = pytest.mark.integration
IDS = [f"alert{i:04d}" for i in range(6)]
ALERT_FIELDS = {"id", "idempotency_key", "version", "rule_id", "title", "severity", "actor", "first_seen", "last_seen",
                "event_count", "record_count", "explanation", "context", "created_at"}


def _config(url: str, kind: str = "webhook", **extra: object) -> object:
    return parse_config({"sinks": [{"name": "hook", "type": kind, "url": url, "retry": {"initial": "10s"}, **extra}]},
                        environ={"HOOK_TOKEN": "s3cret"})


def _deliver_until_empty(db, config, t: dt.datetime) -> dt.datetime:
    """Run passes on the injected clock, jumping to each next attempt, until nothing is pending."""
    con = connect(db)
    try:
        for _ in range(50):
            if deliver_due(db, config, now=t).pending == 0:
                return t
            t = max(dt.datetime.fromisoformat(r["next_attempt_at"].replace("Z", "+00:00")) for r in rows(con, "pending"))
    finally:
        con.close()
    raise AssertionError("outbox never drained")


def test_receiver_down_then_500_then_up_delivers_each_alert_exactly_once(state, receiver) -> None:
    db = state(*(make_alert(i) for i in range(6)))
    config = _config(receiver.url, bearer_token_env="HOOK_TOKEN", headers={"X-Team": "soc"})
    assert enqueue(db, IDS, config) == 6

    receiver.stop()  # down: connection refused
    report = deliver_due(db, config, now=T0)
    assert (report.failed, report.deferred, report.pending, report.delivered) == (1, 5, 6, 0)
    assert "ConnectError" in report.errors["hook"]

    receiver.start()  # back on the same port, but failing
    receiver.status = 500
    report = deliver_due(db, config, now=T0 + dt.timedelta(seconds=10))
    assert (report.failed, report.pending) == (1, 6) and report.errors["hook"].startswith("HTTP 500")

    receiver.status = 200
    _deliver_until_empty(db, config, T0 + dt.timedelta(seconds=30))
    delivered = receiver.delivered()
    assert sorted(r["json"]["id"] for r in delivered) == IDS  # each exactly once
    for r in delivered:
        assert r["headers"]["idempotency-key"] == r["json"]["idempotency_key"] == f"{r['json']['id']}-v1"
        assert r["headers"]["authorization"] == "Bearer s3cret" and r["headers"]["x-team"] == "soc"
        assert r["headers"]["content-type"] == "application/json"
    con = connect(db)
    failed = [j for j in journal_rows(con) if j["outcome"] == "failed"]
    assert len(failed) == 2 and failed[0]["alert_id"] == failed[1]["alert_id"]  # one probe per pass while down
    assert [j["attempt"] for j in failed] == [1, 2] and "ConnectError" in failed[0]["detail"]
    assert failed[1]["detail"].startswith("HTTP 500")
    [ok] = [j for j in journal_rows(con, failed[0]["alert_id"]) if j["outcome"] == "delivered"]
    assert ok["attempt"] == 3 and ok["detail"] == "HTTP 200"
    con.close()


def test_generic_payload_fields_and_no_customer_records(state, receiver) -> None:
    db = state(make_alert(1))
    config = _config(receiver.url)
    enqueue(db, ["alert0001"], config)
    assert deliver_due(db, config, now=T0).delivered == 1
    [req] = receiver.requests
    body = req["json"]
    assert set(body) == ALERT_FIELDS
    assert (body["rule_id"], body["severity"], body["actor"], body["event_count"], body["record_count"]) == (
        "rule-export", "high", "ana@example.com", 4, 2)
    assert body["context"] == {"rows": 5000, "objects": ["Contact"], "src_ips": ["81.2.69.142", "2001:db8::7"],
                               "apps": ["Data Loader"], "user_agents": ["DataLoader/60.0"]}
    assert "003CUSTOMER" not in str(body) and "record_ids" not in body


def test_retry_after_is_honoured(state, receiver) -> None:
    db = state(make_alert(1))
    config = _config(receiver.url)
    enqueue(db, ["alert0001"], config)
    receiver.status, receiver.headers = 429, {"Retry-After": "120"}
    assert deliver_due(db, config, now=T0).failed == 1
    con = connect(db)
    [row] = rows(con, "pending")
    assert row["next_attempt_at"].startswith("2025-03-04T08:02:00")
    con.close()


def test_slack_payload_is_block_kit(state, receiver) -> None:
    db = state(make_alert(1, title="Bulk export <of> customers & more", severity="critical"))
    config = _config(receiver.url, kind="slack")
    enqueue(db, ["alert0001"], config)
    assert deliver_due(db, config, now=T0).delivered == 1
    [req] = receiver.requests
    msg = req["json"]
    assert set(msg) == {"text", "blocks"}
    assert msg["text"] == "[CRITICAL] Bulk export <of> customers & more — ana@example.com"
    header, fields, explanation, context = msg["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "Bulk export <of> customers & more",
                                                 "emoji": True}}
    assert fields["type"] == "section" and 1 <= len(fields["fields"]) <= 10
    assert all(f["type"] == "mrkdwn" for f in fields["fields"])
    texts = [f["text"] for f in fields["fields"]]
    assert "*Actor*\nana@example.com" in texts and "*Customer records*\n2" in texts
    assert "*Source IPs*\n81.2.69.142, 2001:db8::7" in texts
    assert explanation["type"] == "section" and "&lt;of&gt; customers &amp; more" in explanation["text"]["text"]
    assert context["type"] == "context" and "alert0001-v1" in context["elements"][0]["text"]
    assert req["headers"]["idempotency-key"] == "alert0001-v1"
    assert "003CUSTOMER" not in str(msg)


def test_two_deliverers_at_once_send_each_alert_once(state, receiver) -> None:
    ids = [f"alert{i:04d}" for i in range(30)]
    db = state(*(make_alert(i) for i in range(30)))
    config = _config(receiver.url)
    enqueue(db, ids, config)
    reports = []
    threads = [threading.Thread(target=lambda: reports.append(deliver_due(db, config, now=T0))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(r.delivered for r in reports) == 30
    assert sorted(r["json"]["id"] for r in receiver.requests) == ids
