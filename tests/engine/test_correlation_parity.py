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
        st.one_of(st.none(), st.integers(-5, 40)),  # rows (the metrics' field)
    ),
    max_size=60,
)

EXPRESSIONS = [
    ("and", ("rule", "a"), ("rule", "b")),
    ("or", ("rule", "a"), ("and", ("rule", "b"), ("rule", "c"))),
    ("rule", "c"),
    ("and", ("rule", "a"), ("not", ("rule", "b"))),
    ("or", ("not", ("rule", "a")), ("rule", "c")),
]

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
    # Extended conditions; the first three are monotone (possible_sql can tell), the others not.
    st.builds(Correlation, type=st.just("temporal"), rules=st.just(("a", "b", "c")), group_by=st.just(("username",)),
              timespan=st.sampled_from([dt.timedelta(minutes=20), dt.timedelta(hours=1)]), op=st.just("gte"),
              count=st.just(1), expression=st.sampled_from(EXPRESSIONS)),
    # Metrics over rows: thresholds on both sides of the values; percentiles whose positions are exact
    # in binary, so Python and DuckDB round alike.
    st.builds(Correlation, type=st.sampled_from(["value_sum", "value_avg"]), rules=st.sampled_from([("a",), ("a", "b")]),
              group_by=st.just(("username",)), timespan=st.sampled_from([dt.timedelta(minutes=10), dt.timedelta(hours=1)]),
              op=st.sampled_from(["gte", "gt", "lt", "lte", "eq", "neq"]),
              count=st.sampled_from([0, 7.5, 20, 45, 60]), field=st.just("rows")),
    st.builds(Correlation, type=st.just("value_percentile"), rules=st.sampled_from([("a",), ("a", "b")]),
              group_by=st.just(("username",)), timespan=st.sampled_from([dt.timedelta(minutes=10), dt.timedelta(hours=1)]),
              op=st.sampled_from(["gte", "gt", "lte"]), count=st.sampled_from([5, 12.5, 30]), field=st.just("rows"),
              percentile=st.sampled_from([0, 25, 50, 75, 100])),
)


def matches_con(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    """A connection whose ``mr`` table holds ``rows`` (rule, event number, seconds, user, IP, rows)."""
    con = duckdb.connect()
    con.execute("SET timezone = 'UTC'")
    con.register("mr", pa.table({
        "rule": [r[0] for r in rows],
        "event_id": [f"e{r[1]:02d}" for r in rows],
        "time": pa.array([T0 + dt.timedelta(seconds=r[2] + r[1]) for r in rows], pa.timestamp("us", tz="UTC")),
        "username": pa.array([r[3] for r in rows], pa.string()),
        "src_ip": pa.array([r[4] for r in rows], pa.string()),
        "rows": pa.array([r[5] for r in rows], pa.int64()),
        "actor": pa.array([r[3] for r in rows], pa.string()),
    }))
    return con


def sql_episodes(corr: Correlation, rows: list[tuple]) -> list[tuple]:
    con = matches_con(rows)
    out = con.execute(f"SELECT grp, first_seen, last_seen, event_count, event_ids, fired_value "
                      f"FROM ({correlation_sql(corr)}) ORDER BY grp, first_seen").fetchall()
    return [(tuple(g), f, last, n, tuple(ids), v) for g, f, last, n, ids, v in out]


def reference_matches(corr: Correlation, rows: list[tuple]) -> list[Match]:
    """``rows`` as the reference's matches, with the value ``corr`` reads (IP or rows)."""
    value = 5 if corr.field == "rows" else 4
    return [Match(r[0], f"e{r[1]:02d}", T0 + dt.timedelta(seconds=r[2] + r[1]), (r[3],), r[value]) for r in rows]


def normalise(rows: list[tuple]) -> list[tuple]:
    # One event has one time and one user/IP whatever rules it matched, as in a real lake.
    seen: dict[int, tuple] = {}
    out = []
    for rule, ev, sec, user, ip, n in rows:
        base = seen.setdefault(ev, (sec, user, ip, n))
        if (rule, ev) not in {(r[0], r[1]) for r in out}:
            out.append((rule, ev, *base))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corr=correlations, raw=match_lists)
def test_duckdb_and_reference_agree(corr: Correlation, raw: list[tuple]) -> None:
    rows = normalise(raw)
    matches = reference_matches(corr, rows)
    expected = [(e.group, e.first_seen, e.last_seen, e.event_count, e.event_ids, e.fired_value)
                for e in evaluate(corr, matches)]
    assert sql_episodes(corr, rows) == expected


def test_event_count_example() -> None:
    corr = Correlation("event_count", ("a",), ("username",), dt.timedelta(minutes=10), "gte", 3)
    rows = [("a", i, s, "ana", None, None) for i, s in enumerate([0, 60, 120, 3000, 3060])]
    [episode] = sql_episodes(corr, rows)
    assert episode[3] == 3 and episode[0] == ("ana",)


def test_one_value_seen_twice_at_the_same_instant_is_one_value() -> None:
    # The same sign-in logged by two sources at the same instant (ELF Login and its RTEM LoginEvent):
    # one country, not two, however the engine orders tied rows.
    corr = Correlation("value_count", ("a",), ("username",), dt.timedelta(hours=1), "gte", 2, field="src_ip")
    for n in range(2, 40):
        rows = [("a", i, 0, "ana", "1.1.1.1", None) for i in range(n)]
        rows = [(r, i, s - i, u, ip, x) for r, i, s, u, ip, x in rows]  # sql_episodes adds the event number
        assert sql_episodes(corr, rows) == [], n


def test_simultaneous_firings_make_one_episode() -> None:
    corr = Correlation("event_count", ("a",), ("username",), dt.timedelta(minutes=10), "gte", 1)
    rows = [("a", i, 100 - i, "ana", None, None) for i in range(30)]  # 30 events at one instant
    [episode] = sql_episodes(corr, rows)
    assert episode[3] == 30


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corr=correlations, raw=match_lists)
def test_a_correlation_told_unable_to_fire_has_no_episode(corr: Correlation, raw: list[tuple]) -> None:
    """``possible_sql`` (which spares incremental runs the windows of correlations that cannot fire)
    is a necessary condition: whenever the reference finds an episode, it names the correlation."""
    rows = normalise(raw)
    matches = reference_matches(corr, rows)
    fires = bool(evaluate(corr, matches))
    sql = possible_sql({"c": corr})
    if sql is None:  # a condition that more matches can hurt: nothing to check
        assert corr.op in ("lt", "lte", "neq") or corr.expression in EXPRESSIONS[3:]
        return
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
    matches = reference_matches(corr, rows)
    expected = [(e.group, e.first_seen, e.last_seen, e.event_count, e.event_ids) for e in evaluate(corr, matches)
                if e.last_seen >= touched]
    con = matches_con(rows)
    out = con.execute(f"SELECT grp, first_seen, last_seen, event_count, event_ids FROM ({batch_sql({'c': corr}, touched=touched)}) "
                      "ORDER BY grp, first_seen").fetchall()
    got = [(tuple(g), f, last, n, tuple(ids)) for g, f, last, n, ids in out]
    assert [e for e in got if e[2] >= touched] == expected
    sql = possible_sql({"c": corr}, touched=touched)
    assert sql is None or bool(con.execute(sql).fetchall()) or not expected


# Dense matches for the metrics and extended conditions: few events in a short range, so windows
# often start or end on another match and thresholds fall between interpolated values.
dense_matches = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 12),
        st.integers(0, 30).map(lambda m: m * 60),
        st.sampled_from(["ana", "bob"]),
        st.just(None),
        st.one_of(st.none(), st.integers(-3, 9)),
    ),
    max_size=25,
)

dense_correlations = st.one_of(
    st.builds(Correlation, type=st.sampled_from(["value_sum", "value_avg", "value_median"]), rules=st.just(("a", "b")),
              group_by=st.just(("username",)), timespan=st.sampled_from([dt.timedelta(minutes=5), dt.timedelta(minutes=12)]),
              op=st.sampled_from(["gte", "gt", "lt", "lte", "eq", "neq"]), count=st.sampled_from([-1, 2, 3.5, 6, 10, 17]),
              field=st.just("rows"), percentile=st.just(50)),
    st.builds(Correlation, type=st.just("value_percentile"), rules=st.just(("a", "b")), group_by=st.just(("username",)),
              timespan=st.sampled_from([dt.timedelta(minutes=5), dt.timedelta(minutes=12)]),
              op=st.sampled_from(["gte", "gt", "lt", "lte"]), count=st.sampled_from([1.25, 2.5, 4, 6.75]),
              field=st.just("rows"), percentile=st.sampled_from([0, 25, 75, 100])),
    st.builds(Correlation, type=st.just("temporal"), rules=st.just(("a", "b", "c")), group_by=st.just(("username",)),
              timespan=st.sampled_from([dt.timedelta(minutes=5), dt.timedelta(minutes=12)]), op=st.just("gte"),
              count=st.just(1), expression=st.sampled_from(EXPRESSIONS)),
)


def _dense_times(rows: list[tuple]) -> list[tuple]:
    # sql_episodes and the reference add the event number to the seconds; take it back out so
    # events fall on whole minutes and window bounds coincide with other matches.
    return [(r, ev, sec - ev, *rest) for r, ev, sec, *rest in rows]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corr=dense_correlations, raw=dense_matches)
def test_metrics_and_extended_conditions_agree_on_dense_matches(corr: Correlation, raw: list[tuple]) -> None:
    rows = _dense_times(normalise(raw))
    expected = [(e.group, e.first_seen, e.last_seen, e.event_count, e.event_ids, e.fired_value)
                for e in evaluate(corr, reference_matches(corr, rows))]
    assert sql_episodes(corr, rows) == expected
    sql = possible_sql({"c": corr})
    assert sql is None or bool(matches_con(rows).execute(sql).fetchall()) or not expected


def test_value_percentile_interpolates_between_ranks() -> None:
    # rows 10, 20, 30, 40 a minute apart: p25 at position (n - 1) * 0.25 of the sorted values is
    # 10, 12.5, 15, then 17.5 (three quarters of the way from 10 to 20) once all four are in.
    rows = [("a", i, 60 * i - i, "ana", None, n) for i, n in enumerate([10, 20, 30, 40])]
    fires = Correlation("value_percentile", ("a",), ("username",), dt.timedelta(minutes=10), "gte", 17.5,
                        field="rows", percentile=25)
    assert [e[3] for e in sql_episodes(fires, rows)] == [4]
    assert sql_episodes(Correlation("value_percentile", ("a",), ("username",), dt.timedelta(minutes=10), "gt", 17.5,
                                    field="rows", percentile=25), rows) == []


def test_value_sum_counts_an_event_once_and_skips_nulls() -> None:
    # Event 0 matches two rules: its 60 rows count once. Event 1 has no rows.
    corr = Correlation("value_sum", ("a", "b"), ("username",), dt.timedelta(hours=1), "gte", 100, field="rows")
    rows = [("a", 0, 0, "ana", None, 60), ("b", 0, 0, "ana", None, 60), ("a", 1, 10, "ana", None, None),
            ("b", 2, 20, "ana", None, 39)]
    assert sql_episodes(corr, rows) == []
    rows.append(("a", 3, 30, "ana", None, 1))
    [episode] = sql_episodes(corr, rows)
    assert episode[3] == 4 and episode[4] == ("e00", "e01", "e02", "e03")


def test_an_extended_condition_with_not_fires_only_without_the_excluded_rule() -> None:
    # a and not b: an API read without a preceding sign-in in the window.
    corr = Correlation("temporal", ("a", "b"), ("username",), dt.timedelta(minutes=10), "gte", 1,
                       expression=("and", ("rule", "a"), ("not", ("rule", "b"))))
    rows = [("b", 0, 0, "ana", None, None), ("a", 1, 299, "ana", None, None),   # sign-in, then read: no
            ("a", 2, 0, "bob", None, None),                                     # read alone: yes
            ("b", 3, 0, "cy", None, None), ("a", 4, 600 - 4, "cy", None, None)]  # sign-in at the window's start: no
    [episode] = sql_episodes(corr, rows)
    assert episode[0] == ("bob",)


def test_a_sum_reached_in_a_window_is_possible_even_when_the_group_total_is_lower() -> None:
    # Negative values (a field that can be negative) after the window bring the group's total below
    # the threshold; the window still fires, and possible_sql must not rule it out.
    corr = Correlation("value_sum", ("a",), ("username",), dt.timedelta(minutes=5), "gte", 10, field="rows")
    rows = [("a", i, 60 * m - i, "ana", None, n) for i, (m, n) in enumerate([(0, 9), (1, 2), (30, -3), (40, -3), (50, -3)])]
    assert len(sql_episodes(corr, rows)) == 1
    assert matches_con(rows).execute(possible_sql({"c": corr})).fetchall() == [("c",)]
