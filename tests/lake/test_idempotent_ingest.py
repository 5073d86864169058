"""Property tests: counts always add up, and replaying input never stores anything twice."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmguard.ingest import ingest
from crmguard.lake import Lake

HEADER = '"EVENT_TYPE","TIMESTAMP","REQUEST_ID","USER_ID","CLIENT_IP","ROWS_PROCESSED"\n'

rows = st.lists(
    st.tuples(
        st.sampled_from(["API", "RestApi", "Login", "BulkApi2"]),
        # Mostly valid times; some impossible ones (month 13, empty, garbage).
        st.one_of(
            st.integers(0, 86_399).map(lambda s: f"20250401{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}.000"),
            st.sampled_from(["20251301000000.000", "", "yesterday"]),
        ),
        st.integers(0, 30).map(lambda i: f"req{i}"),
        st.sampled_from(["0055j000000utlP", "0055j000000utlPAAQ", "005000000000001"]),
        st.sampled_from(["81.2.69.142", "Salesforce.com IP", "2001:db8::1", ""]),
        st.integers(0, 10**6).map(str),
    ),
    max_size=40,
)


def write_csv(path: Path, records: list[tuple[str, ...]], ragged: int) -> None:
    lines = [",".join(f'"{v}"' for v in r) for r in records]
    for i in range(min(ragged, len(lines))):
        lines[i] = lines[i].rsplit(",", 1)[0]  # drop a column: a ragged row
    path.write_text(HEADER + "".join(line + "\n" for line in lines))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=rows, ragged=st.integers(0, 3))
def test_counts_add_up_and_replay_stores_nothing(records: list[tuple[str, ...]], ragged: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.csv"
        write_csv(log, records, ragged)
        lake = Lake(Path(tmp) / "lake")
        first = ingest([str(log)], lake)
        n_ragged = min(ragged, len(records))
        valid = [r for r in records[n_ragged:] if r[1] not in ("20251301000000.000", "", "yesterday")]
        assert first.total.read == len(records)
        assert first.total.read == first.total.stored + first.total.duplicate + first.total.quarantined
        assert first.total.quarantined == len(records) - len(valid)
        assert first.total.stored == len(set(valid))
        second = ingest([str(log)], lake)
        assert second.total.stored == 0
        assert second.total.duplicate == len(valid)
        con = lake.connect()
        assert con.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchall()[0] == (len(set(valid)),) * 2


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(
        st.fixed_dictionaries(
            {
                "published": st.integers(0, 3599).map(lambda s: f"2025-04-01T10:{s // 60:02d}:{s % 60:02d}.000Z"),
                "eventType": st.sampled_from(["user.session.start", "user.mfa.factor.reset_all", "user.authentication.sso"]),
                "actor": st.fixed_dictionaries({"alternateId": st.sampled_from(["a@x.com", "b@x.com"])}),
            }
        ),
        max_size=30,
    ),
    split=st.integers(0, 30),
)
def test_overlapping_files_store_each_event_once(events: list[dict], split: int) -> None:
    """Two exports that overlap (as paginated or re-pulled API logs do) store the union once."""
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.ndjson", Path(tmp) / "b.json"
        a.write_text("".join(json.dumps(e) + "\n" for e in events[: split + 5]))
        b.write_text(json.dumps(events[split:]))
        lake = Lake(Path(tmp) / "lake")
        summary = ingest([str(a), str(b)], lake)
        distinct = {json.dumps(e) for e in events}  # identity is the record as written, key order included
        assert summary.total.read == summary.total.stored + summary.total.duplicate + summary.total.quarantined
        assert summary.total.quarantined == 0
        stored = lake.connect().execute("SELECT count(*) FROM events").fetchall()[0][0]
        # The same event in NDJSON and in a JSON array is the same record (raw JSON is minified).
        assert stored == len(distinct)
        again = ingest([str(a), str(b)], lake)
        assert again.total.stored == 0 and again.total.duplicate == summary.total.stored + summary.total.duplicate
