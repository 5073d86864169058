"""Baseline scoring on a hand-made lake: own and peer references, first-seen facts, the alert gate,
cold start, the explanation and when the alert fired."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crmguard.anomaly import BaselineStore, find_anomalies
from crmguard.anomaly.run import scorable_days
from crmguard.anomaly.score import Settings
from crmguard.lake import Lake
from crmguard.schema import EVENT_SCHEMA

DAY0 = dt.datetime(2025, 3, 3, tzinfo=dt.UTC)
USUAL = {"src_ip": "81.2.69.142", "src_asn": 3215, "src_country": "FR", "app": "Salesforce for iOS",
         "user_agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15"}
_ids = itertools.count()


def _event(user: str, at: dt.datetime, rows: int, **over: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(EVENT_SCHEMA.names)
    row.update(time=at, event_id=f"e{next(_ids)}", source="salesforce_rtem", event_type="ApiEvent",
               category="api_activity", action="query", outcome="success", user_id=f"005{user:0>15}",
               username=f"{user}@example.com", api_type="REST", object="Contact", rows=rows, **USUAL)
    row.update(over)
    return row


def _write(lake: Path, events: list[dict[str, object]]) -> None:
    for day in sorted({e["time"].date() for e in events}):  # type: ignore[union-attr]
        rows = [e for e in events if e["time"].date() == day]  # type: ignore[union-attr]
        folder = lake / "events" / "source=salesforce_rtem" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), folder / "part-0.parquet")


@pytest.fixture
def scored(tmp_path: Path):  # type: ignore[no-untyped-def]
    events = []
    for d in range(10):
        for user in ("ana", "bo", "cy", "di"):
            for h in range(9, 17):
                events.append(_event(user, DAY0 + dt.timedelta(days=d, hours=h, minutes=7), 100))
    day = DAY0 + dt.timedelta(days=10)
    # ana: 50,000 Contact rows in an hour from infrastructure nobody in the org used.
    new_infra = {"src_ip": "203.0.113.9", "src_asn": 14061, "src_country": "SG", "app": "Exporter Pro",
                 "user_agent": "python-requests/2.31.0"}
    ana = [_event("ana", day + dt.timedelta(hours=10, minutes=m), 10_000, **new_infra) for m in (1, 2, 3, 4, 5)]
    # bo: 200,000 rows in an hour from the usual place: volume alone, extreme.
    bo = [_event("bo", day + dt.timedelta(hours=11, minutes=m), 40_000) for m in (1, 2, 3, 4, 5)]
    # cy: a normal day. eve: first day ever (cold start), 20,000 rows from the usual place.
    normal = [_event("cy", day + dt.timedelta(hours=h, minutes=7), 100) for h in range(9, 17)]
    eve = [_event("eve", day + dt.timedelta(hours=12, minutes=m), 5_000) for m in (1, 2, 3, 4)]
    _write(tmp_path / "lake", events + ana + bo + normal + eve)
    lake = Lake(tmp_path / "lake")
    store = BaselineStore(lake)
    store.set_peers(pa.table({"identity": [f"{u}@example.com" for u in ("ana", "bo", "cy", "di", "eve")],
                              "peer_group": ["Advisor"] * 5}))
    con = lake.connect()
    result = store.update(con)
    assert len(result.rebuilt) == 11
    con = lake.connect()
    store.register(con)
    days = scorable_days(store, Settings())
    assert days[-1] == day.date() and DAY0.date() not in days
    alerts = {a.actor: a for a in find_anomalies(con, [day.date()])}
    return con, alerts, ana, bo


def test_new_infrastructure_with_volume_alerts_at_once_and_explains(scored) -> None:  # type: ignore[no-untyped-def]
    _, alerts, ana, _ = scored
    alert = alerts["ana@example.com"]
    assert alert.explanation.startswith("ana@example.com scored")
    assert "read 50,000 Contact rows in 1 h; own p99 is 100; peer p99 (Advisor) is 100" in alert.explanation
    for fact in ("new ASN '14061'", "new country 'SG'", "new connected app 'Exporter Pro'",
                 "new user agent 'python-requests/2.31.0'"):
        assert fact in alert.explanation
    # Every fact is there at the first event and they alone reach the threshold.
    assert alert.context["fired_at"] == ana[0]["time"].isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    assert alert.severity == "high" and alert.event_count == 5 and alert.first_seen == ana[0]["time"]


def test_extreme_volume_alone_alerts_when_the_running_total_crosses(scored) -> None:  # type: ignore[no-untyped-def]
    _, alerts, _, bo = scored
    alert = alerts["bo@example.com"]
    assert "read 200,000 Contact rows in 1 h; own p99 is 100" in alert.explanation
    # 2**6.5 × the floor (500) = 45,255 rows: crossed by the second read (80,000).
    assert alert.context["fired_at"] == bo[1]["time"].isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]


def test_normal_days_and_cold_start_do_not_alert(scored) -> None:  # type: ignore[no-untyped-def]
    con, alerts, _, _ = scored
    assert set(alerts) == {"ana@example.com", "bo@example.com"}
    [(own, peer, bits)] = con.execute(
        "SELECT own_ref, peer_ref, round(bits, 2) FROM components WHERE identity = 'eve@example.com' "
        "AND kind = 'day' AND feature = 'rows:Contact'").fetchall()
    # No own history: judged against the peers' daily p99 (8 hours × 100 rows) and the floor only.
    assert own is None and peer == 800 and bits == pytest.approx(4.64, abs=0.01)
    assert con.execute("SELECT count(*) FROM components WHERE identity = 'eve@example.com' AND kind = 'fact'"
                       ).fetchall() == [(0,)]
