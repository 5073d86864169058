"""Correlation semantics: the DuckDB compilation and the pure-Python reference give identical
episodes on generated matches (hypothesis)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmguard.engine.correlate import batch_sql, correlation_sql, possible_sql
from crmguard.engine.reference import Match, evaluate
from crmguard.engine.rules import Correlation

T0 = dt.datetime(2025, 3, 3, tzinfo=dt.UTC)

match_lists = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),          # rule
        st.integers(0, 25),                        # event number (shared ids: one event, two rules)
        st.integers(0, 3 * 3600),                  # seconds after T0
        st.sampled_from(["ana", "bob", None]),     # group value
        st.sampled_from(["1.1.1.1", "2.2.2.2", "3.3.3.3", None]),  # counted value
    ),
    max_size=60,
)

correlations = st.one_of(
    st.builds(Correlation, type=st.just("event_count"), rules=st.sampled_from([("a",), ("a", "b")]),
              group_by=st.just(("username",)), timespan=st.sampled_from([dt.timedelta(minutes=10), dt.timedelta(hours=1)]),
              op=st.sampled_from(["gte", "gt"]), count=st.integers(1, 5)),
    st.builds(Correlation, type=st.just("value_count"), rules=st.just(("a",)), group_by=st.just(("username",)),
              timespan=st.sampled_from([dt.timedelta(minutes=30), dt.timedelta(hours=2)]), op=st.just("gte"),
              count=st.integers(1, 3), field=st.just("src_ip")),
    st.builds(Correlation, type=st.just("temporal"), rules=st.just(("a", "b", "c")), group_by=st.just(("username",)),
              timespan=st.sampled_from([dt.timedelta(minutes=20), dt.timedelta(hours=1)]), op=st.just("gte"),
              count=st.integers(2, 3)),
    st.builds(Correlation, type=st.just("temporal_ordered"), rules=st.sampled_from([("a", "b"), ("c", "a", "b")]),
              group_by=st.just(("username",)), timespan=st.sampled_from([dt.timedelta(minutes=20), dt.timedelta(hours=1)]),
              op=st.just("gte"), count=st.just(2)),
)


def matches_con(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    """A connection whose ``mr`` table holds ``rows`` (rule, event number, seconds, user, IP)."""
    con = duckdb.connect()
    con.execute("SET timezone = 'UTC'")
    con.register("mr", pa.table({
        "rule": [r[0] for r in rows],
        "event_id": [f"e{r[1]:02d}" for r in rows],
        "time": pa.array([T0 + dt.timedelta(seconds=r[2] + r[1]) for r in rows], pa.timestamp("us", tz="UTC")),
        "username": pa.array([r[3] for r in rows], pa.string()),
        "src_ip": pa.array([r[4] for r in rows], pa.string()),
        "actor": pa.array([r[3] for r in rows], pa.string()),
    }))
    return con


def sql_episodes(corr: Correlation, rows: list[tuple]) -> list[tuple]:
    con = matches_con(rows)
    out = con.execute(f"SELECT grp, first_seen, last_seen, event_count, event_ids FROM ({correlation_sql(corr)}) "
                      "ORDER BY grp, first_seen").fetchall()
    return [(tuple(g), f, last, n, tuple(ids)) for g, f, last, n, ids in out]


def normalise(rows: list[tuple]) -> list[tuple]:
    # One event has one time and one user/IP whatever rules it matched, as in a real lake.
    seen: dict[int, tuple] = {}
    out = []
    for rule, ev, sec, user, ip in rows:
        base = seen.setdefault(ev, (sec, user, ip))
        if (rule, ev) not in {(r[0], r[1]) for r in out}:
            out.append((rule, ev, *base))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corr=correlations, raw=match_lists)
def test_duckdb_and_reference_agree(corr: Correlation, raw: list[tuple]) -> None:
    rows = normalise(raw)
    matches = [Match(r[0], f"e{r[1]:02d}", T0 + dt.timedelta(seconds=r[2] + r[1]), (r[3],), r[4]) for r in rows]
    expected = [(e.group, e.first_seen, e.last_seen, e.event_count, e.event_ids) for e in evaluate(corr, matches)]
    assert sql_episodes(corr, rows) == expected


def test_event_count_example() -> None:
    corr = Correlation("event_count", ("a",), ("username",), dt.timedelta(minutes=10), "gte", 3)
    rows = [("a", i, s, "ana", None) for i, s in enumerate([0, 60, 120, 3000, 3060])]
    [episode] = sql_episodes(corr, rows)
    assert episode[3] == 3 and episode[0] == ("ana",)


def test_one_value_seen_twice_at_the_same_instant_is_one_value() -> None:
    # The same sign-in logged by two sources at the same instant (ELF Login and its RTEM LoginEvent):
    # one country, not two, however the engine orders tied rows.
    corr = Correlation("value_count", ("a",), ("username",), dt.timedelta(hours=1), "gte", 2, field="src_ip")
    for n in range(2, 40):
        rows = [("a", i, 0, "ana", "1.1.1.1") for i in range(n)]
        rows = [(r, i, s - i, u, ip) for r, i, s, u, ip in rows]  # sql_episodes adds the event number
        assert sql_episodes(corr, rows) == [], n


def test_simultaneous_firings_make_one_episode() -> None:
    corr = Correlation("event_count", ("a",), ("username",), dt.timedelta(minutes=10), "gte", 1)
    rows = [("a", i, 100 - i, "ana", None) for i in range(30)]  # 30 events at one instant
    [episode] = sql_episodes(corr, rows)
    assert episode[3] == 30


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corr=correlations, raw=match_lists)
def test_a_correlation_told_unable_to_fire_has_no_episode(corr: Correlation, raw: list[tuple]) -> None:
    """``possible_sql`` (which spares incremental runs the windows of correlations that cannot fire)
    is a necessary condition: whenever the reference finds an episode, it names the correlation."""
    rows = normalise(raw)
    matches = [Match(r[0], f"e{r[1]:02d}", T0 + dt.timedelta(seconds=r[2] + r[1]), (r[3],), r[4]) for r in rows]
    fires = bool(evaluate(corr, matches))
    sql = possible_sql({"c": corr})
    assert sql is not None
    possible = bool(matches_con(rows).execute(sql).fetchall())
    assert possible or not fires


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corr=correlations, raw=match_lists, cut=st.integers(0, 3 * 3600 + 30))
def test_evaluating_only_the_touched_groups_keeps_every_episode_reaching_the_cut(
        corr: Correlation, raw: list[tuple], cut: int) -> None:
    """``touched`` (an incremental run: only groups with a match at or after it are evaluated)
    gives, among episodes whose last event is at or after it, exactly the reference's; and it only
    drops correlations ``possible_sql`` could not name anyway."""
    rows = normalise(raw)
    touched = T0 + dt.timedelta(seconds=cut)
    matches = [Match(r[0], f"e{r[1]:02d}", T0 + dt.timedelta(seconds=r[2] + r[1]), (r[3],), r[4]) for r in rows]
    expected = [(e.group, e.first_seen, e.last_seen, e.event_count, e.event_ids) for e in evaluate(corr, matches)
                if e.last_seen >= touched]
    con = matches_con(rows)
    out = con.execute(f"SELECT grp, first_seen, last_seen, event_count, event_ids FROM ({batch_sql({'c': corr}, touched=touched)}) "
                      "ORDER BY grp, first_seen").fetchall()
    got = [(tuple(g), f, last, n, tuple(ids)) for g, f, last, n, ids in out]
    assert [e for e in got if e[2] >= touched] == expected
    possible = bool(con.execute(possible_sql({"c": corr}, touched=touched)).fetchall())  # type: ignore[arg-type]
    assert possible or not expected
