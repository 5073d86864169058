"""Side-by-side mappings reuse their session cursors: each has the session (UTC, the country
table), a failed one is not reused, and the pool goes with its connection."""

from __future__ import annotations

import gc

import pytest

from crmguard.sources import sql


def test_a_cursor_given_back_is_reused_with_its_session() -> None:
    con = sql.connect()
    with sql.pooled_cursor(con) as first:
        assert first.execute("SELECT country_iso('France'), current_setting('TimeZone')").fetchall() == [("FR", "UTC")]
    with sql.pooled_cursor(con) as again, sql.pooled_cursor(con) as other:
        assert again is first and other is not first
        assert other.execute("SELECT country_iso('Germany')").fetchall() == [("DE",)]
    with pytest.raises(RuntimeError), sql.pooled_cursor(con) as failed:
        raise RuntimeError("a mapping failed")
    with sql.pooled_cursor(con) as after:
        assert after is not failed
    assert len(sql._IDLE) >= 1
    before = len(sql._IDLE)
    con.close()
    del con
    gc.collect()
    assert len(sql._IDLE) == before - 1
