"""The outbox: idempotent enqueue, routing, actor suppression, backoff on an injected clock, dead rows."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from crmguard.alerts.store import Store
from crmguard.sinks import deliver_due, enqueue
from crmguard.sinks.config import parse_config
from crmguard.sinks.outbox import connect, journal_rows, rows, status_counts
from tests.sinks.conftest import T0, make_alert


def _file_config(tmp_path: Path, **sink: object) -> object:
    return parse_config({"sinks": [{"name": "siem", "type": "file", "path": str(tmp_path / "out.jsonl"), **sink}]})


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket is closed


def test_store_save_returns_created_and_updated_ids(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    first = store.save([make_alert(1), make_alert(2)])
    assert first.created_ids == ("alert0001", "alert0002") and first.updated_ids == ()
    grown = make_alert(2)
    grown = type(grown)(**{**grown.__dict__, "event_count": 99})
    again = store.save([make_alert(1), grown])
    store.close()
    assert (again.created, again.updated, again.unchanged) == (0, 1, 1) and again.updated_ids == ("alert0002",)


def test_enqueue_twice_adds_nothing_and_routes(tmp_path: Path, state) -> None:
    db = state(make_alert(1, severity="low"), make_alert(2, severity="high"), make_alert(3, severity="critical", title="Okta MFA reset"))
    config = parse_config({"sinks": [
        {"name": "all", "type": "file", "path": str(tmp_path / "a")},
        {"name": "high", "type": "file", "path": str(tmp_path / "b"), "min_severity": "high", "exclude_rules": ["okta*"]}]})
    ids = ["alert0001", "alert0002", "alert0003", "not-an-alert"]
    assert enqueue(db, ids, config) == 3 + 1
    assert enqueue(db, ids, config) == 0
    con = connect(db)
    assert status_counts(con) == {"all": {"pending": 3, "delivered": 0, "suppressed": 0, "dead": 0},
                                  "high": {"pending": 1, "delivered": 0, "suppressed": 0, "dead": 0}}
    assert [r["alert_id"] for r in rows(con, "pending") if r["sink"] == "high"] == ["alert0002"]
    con.close()


def test_file_sink_delivers_each_alert_once_most_severe_first(tmp_path: Path, state) -> None:
    db = state(make_alert(1, severity="low"), make_alert(2, severity="critical"), make_alert(3, severity="medium"))
    config = _file_config(tmp_path)
    enqueue(db, ["alert0001", "alert0002", "alert0003"], config)
    report = deliver_due(db, config, now=T0)
    assert (report.delivered, report.failed, report.pending) == (3, 0, 0)
    assert deliver_due(db, config, now=T0 + dt.timedelta(hours=1)).delivered == 0
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [x["finding_info"]["uid"] for x in lines] == ["alert0002", "alert0003", "alert0001"]
    [entry] = journal_rows(connect(db), "alert0002")
    assert entry["outcome"] == "delivered" and entry["attempt"] == 1 and entry["latency_ms"] >= 0


def test_actor_suppression_window(tmp_path: Path, state) -> None:
    db = state(make_alert(1, severity="high"), make_alert(2, severity="medium", minutes=1),
               make_alert(3, severity="high", actor="bob@example.com"), make_alert(4, severity="high", minutes=40),
               make_alert(5, severity="critical", minutes=50), make_alert(6, actor=None), make_alert(7, actor=None))
    config = _file_config(tmp_path, suppress_actor_for="30m")
    enqueue(db, ["alert0001", "alert0002", "alert0003", "alert0006", "alert0007"], config)
    report = deliver_due(db, config, now=T0)
    assert (report.delivered, report.suppressed) == (4, 1)  # 2 is ana's second within 30 min; no actor: never suppressed
    con = connect(db)
    [sup] = [j for j in journal_rows(con) if j["outcome"] == "suppressed"]
    assert sup["alert_id"] == "alert0002" and "alert0001" in sup["detail"]

    enqueue(db, ["alert0005"], config)  # more severe than what ana's window was opened by: goes through
    assert deliver_due(db, config, now=T0 + dt.timedelta(minutes=10)).delivered == 1
    enqueue(db, ["alert0004"], config)  # within 30 min of the critical one
    assert deliver_due(db, config, now=T0 + dt.timedelta(minutes=20)).suppressed == 1
    assert status_counts(con)["siem"] == {"pending": 0, "delivered": 5, "suppressed": 2, "dead": 0}
    # suppressed alerts stay in the alert store
    assert con.execute("SELECT count(*) FROM alerts").fetchall()[0][0] == 7
    con.close()


def test_backoff_schedule_on_injected_clock_then_delivery(tmp_path: Path, state, receiver) -> None:
    db = state(make_alert(1), make_alert(2))
    port = _closed_port()
    config = parse_config({"sinks": [{"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{port}/x",
                                      "retry": {"initial": "10s", "max_delay": "60s"}}]})
    enqueue(db, ["alert0001", "alert0002"], config, now=T0)
    con = connect(db)
    t, schedule = T0, []
    for _ in range(6):
        report = deliver_due(db, config, now=t)
        # one attempt per pass: the sink failed, so its other row waits instead of paying a timeout too
        assert (report.failed, report.deferred, report.delivered, report.pending) == (1, 1, 0, 2)
        assert deliver_due(db, config, now=t + dt.timedelta(seconds=1)).failed == 0  # not due yet
        nxt = dt.datetime.fromisoformat(rows(con, "pending")[0]["next_attempt_at"].replace("Z", "+00:00"))
        schedule.append((nxt - t).total_seconds())
        assert all(r["next_attempt_at"] >= rows(con, "pending")[0]["next_attempt_at"] for r in rows(con, "pending"))
        t = nxt
    assert schedule == [10, 20, 40, 60, 60, 60]
    failed = [j for j in journal_rows(con) if j["outcome"] == "failed"]
    assert len(failed) == 6 and [j["attempt"] for j in failed] == [1, 2, 3, 4, 5, 6]
    assert "ConnectError" in failed[0]["detail"]

    # the sink comes back (same config, now pointing at a live receiver): both arrive, once each
    live = parse_config({"sinks": [{"name": "hook", "type": "webhook", "url": receiver.url}]})
    report = deliver_due(db, live, now=t)
    assert (report.delivered, report.pending, report.dead_total) == (2, 0, 0)
    assert sorted(r["json"]["id"] for r in receiver.requests) == ["alert0001", "alert0002"]
    con.close()


def test_max_attempts_makes_rows_dead_not_dropped(tmp_path: Path, state) -> None:
    db = state(make_alert(1))
    config = parse_config({"sinks": [{"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{_closed_port()}/",
                                      "retry": {"initial": "1s", "max_attempts": 2}}]})
    enqueue(db, ["alert0001"], config)
    assert deliver_due(db, config, now=T0).failed == 1
    report = deliver_due(db, config, now=T0 + dt.timedelta(seconds=1))
    assert (report.dead, report.dead_total, report.pending) == (1, 1, 0)
    con = connect(db)
    [dead] = rows(con, "dead")
    assert dead["alert_id"] == "alert0001" and dead["attempts"] == 2 and "ConnectError" in dead["last_error"]
    assert dead["title"] == "Bulk export of customer records"
    con.close()


def test_sink_removed_from_config_keeps_its_rows(tmp_path: Path, state) -> None:
    db = state(make_alert(1))
    enqueue(db, ["alert0001"], _file_config(tmp_path))
    report = deliver_due(db, parse_config({"sinks": []}), now=T0)
    assert (report.unconfigured, report.pending, report.delivered) == (1, 1, 0)


def test_budget_defers_the_rest(tmp_path: Path, state) -> None:
    db = state(*(make_alert(i) for i in range(5)))
    config = _file_config(tmp_path)
    enqueue(db, [f"alert{i:04d}" for i in range(5)], config)
    report = deliver_due(db, config, now=T0, budget_s=0)
    assert (report.delivered, report.deferred, report.pending) == (0, 5, 5)


def test_deliver_loop_and_since(tmp_path: Path, state) -> None:
    from crmguard.sinks import deliver_loop, deliver_stored

    db = state(make_alert(1), make_alert(2, minutes=600))
    config = _file_config(tmp_path)
    added, report = deliver_stored(db, config, since=T0 + dt.timedelta(hours=2))
    assert (added, report.delivered) == (1, 1)  # alert 1 was last seen before --since
    passes: list[tuple[int, int]] = []
    waits: list[float] = []
    total = deliver_loop(db, config, 5.0, stop=lambda: len(passes) == 3,
                         on_pass=lambda added, r: passes.append((added, r.delivered)), wait=waits.append)
    assert passes == [(1, 1), (0, 0), (0, 0)] and waits == [5.0, 5.0] and total.delivered == 1


def test_missing_alert_is_dead_and_sender_bug_is_a_failed_attempt(tmp_path: Path, state, receiver, monkeypatch) -> None:
    db = state(make_alert(1), make_alert(2))
    config = parse_config({"sinks": [{"name": "slack", "type": "slack", "url": receiver.url}]})
    enqueue(db, ["alert0001", "alert0002"], config)
    con = connect(db)
    con.execute("DELETE FROM alerts WHERE id = 'alert0001'")

    def broken(view: dict) -> dict:
        raise KeyError("blocks")

    monkeypatch.setattr("crmguard.sinks.deliver.slack_message", broken)
    report = deliver_due(db, config, now=T0)
    assert (report.dead, report.failed, report.pending) == (1, 1, 1)
    assert report.errors["slack"] == "KeyError: 'blocks'"
    [dead] = rows(con, "dead")
    assert dead["alert_id"] == "alert0001" and "no longer in the alert store" in dead["last_error"]
    con.close()
