"""The hits list tests rules as a tree of their shared leading AND terms: it must name exactly the
rules whose whole condition holds, as testing every condition alone does, NULLs included."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmguard.engine.conjuncts import conjuncts
from crmguard.engine.run import hits_sql

ATOMS = [
    "a = 1", "a >= 2", "b = 'x'", "b ILIKE 'y%'", "c IS NULL", "c > 1", "b = 'it''s AND (x'",
    "a BETWEEN 1 AND 2", "CASE WHEN a = 1 AND b = 'x' THEN true ELSE c = 2 END", '"b" IN (\'x\', \'z\')',
]


def expressions() -> st.SearchStrategy[str]:
    return st.recursive(
        st.sampled_from(ATOMS),
        lambda inner: st.one_of(
            st.tuples(inner, inner).map(lambda p: f"{p[0]} AND {p[1]}"),
            st.tuples(inner, inner).map(lambda p: f"({p[0]} AND {p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"({p[0]} OR {p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"{p[0]} OR {p[1]}"),
            inner.map(lambda e: f"NOT ({e})"),
        ),
        max_leaves=5,
    )


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE ev AS SELECT
             CASE WHEN i % 7 = 0 THEN NULL ELSE i % 4 END AS a,
             ['x', 'y1', 'z', NULL, 'it''s AND (x', 'Y2'][i % 6 + 1] AS b,
             CASE WHEN i % 5 = 0 THEN NULL ELSE i % 3 END AS c
           FROM range(420) t(i)"""
    )
    return con


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefixes=st.lists(expressions(), min_size=1, max_size=3),
       rules=st.lists(st.tuples(st.integers(0, 2), st.lists(expressions(), max_size=3)), min_size=1, max_size=8))
def test_the_tree_names_the_rules_each_condition_alone_names(con: duckdb.DuckDBPyConnection, prefixes: list[str],
                                                             rules: list[tuple[int, list[str]]]) -> None:
    # Rules share leading terms (a prefix), as a pack's variations of one behaviour do.
    conditions = [(f"r{i}", " AND ".join([prefixes[p % len(prefixes)], *rest]))
                  for i, (p, rest) in enumerate(rules)]
    alone = "[" + ", ".join(f"CASE WHEN {cond} THEN '{name}' END" for name, cond in conditions) + "]::VARCHAR[]"
    rows = con.execute(
        f"SELECT list_sort({hits_sql(conditions)}), list_sort(list_filter({alone}, lambda x: x IS NOT NULL)) FROM ev"
    ).fetchall()
    assert all(tree == each for tree, each in rows)


def test_conditions_split_at_their_top_level_and_only() -> None:
    assert conjuncts("a = 1 AND b = 2") == ["a = 1", "b = 2"]
    assert conjuncts("((a = 1 AND b = 2)) AND NOT c") == ["a = 1", "b = 2", "NOT c"]
    assert conjuncts("a AND b OR c") == ["a AND b OR c"]  # AND binds tighter: one term
    assert conjuncts("(a OR b) AND c") == ["a OR b", "c"]
    assert conjuncts("x BETWEEN 1 AND 5 AND y = 'A AND (B'") == ["x BETWEEN 1 AND 5", "y = 'A AND (B'"]
    assert conjuncts("CASE WHEN a AND b THEN 1 END = 1 AND d") == ["CASE WHEN a AND b THEN 1 END = 1", "d"]
    assert conjuncts('"AND" = 1 AND "x)" = 2') == ['"AND" = 1', '"x)" = 2']
    assert conjuncts("(a) OR (b)") == ["(a) OR (b)"]
