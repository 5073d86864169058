"""Property: whatever the receiver does (answer 200 or 500, in any order, on any clock), no alert is
lost, none is accepted twice, and the journal accounts for every request."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmguard.alerts.store import Store
from crmguard.sinks import deliver_due, enqueue
from crmguard.sinks.config import parse_config
from crmguard.sinks.outbox import connect, journal_rows, status_counts
from tests.sinks.conftest import T0, Receiver, make_alert

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 6), passes=st.lists(st.tuples(st.sampled_from([200, 500]), st.integers(0, 400)), max_size=12))
def test_no_alert_lost_or_accepted_twice(live: Receiver, n: int, passes: list[tuple[int, int]]) -> None:
    live.requests.clear()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "state.db"
        store = Store(db)
        store.save([make_alert(i) for i in range(n)])
        store.close()
        config = parse_config({"sinks": [{"name": "hook", "type": "webhook", "url": live.url,
                                          "retry": {"initial": "10s", "max_delay": "60s"}}]})
        enqueue(db, [f"alert{i:04d}" for i in range(n)], config)
        t = T0
        for status, advance in [*passes, (200, 60), (200, 60)]:  # end with the receiver up long enough
            live.status = status
            t += dt.timedelta(seconds=advance)
            report = deliver_due(db, config, now=t)
            assert report.pending + sum(1 for r in live.requests if r["status"] == 200) == n
        con = connect(db)
        assert status_counts(con)["hook"] == {"pending": 0, "delivered": n, "suppressed": 0, "dead": 0}
        accepted = sorted(r["json"]["id"] for r in live.requests if r["status"] == 200)
        assert accepted == [f"alert{i:04d}" for i in range(n)]
        outcomes = [j["outcome"] for j in journal_rows(con)]
        assert outcomes.count("failed") == sum(1 for r in live.requests if r["status"] == 500)
        assert outcomes.count("delivered") == n
        con.close()
