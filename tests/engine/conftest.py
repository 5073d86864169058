"""Helpers for engine tests: an in-memory `events` table in the event schema."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from crmguard.intel import register_macros
from crmguard.schema import EVENT_SCHEMA
from crmguard.sources.sql import connect


def events_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Build an event-schema Arrow table from dicts (missing columns NULL, time as ISO text)."""
    cols: dict[str, list[Any]] = {f.name: [] for f in EVENT_SCHEMA}
    for i, row in enumerate(rows):
        for name in cols:
            value = row.get(name)
            if name == "time" and isinstance(value, str):
                value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if name == "event_id" and value is None:
                value = f"e{i:04d}"
            cols[name].append(value)
    return pa.table(cols, schema=EVENT_SCHEMA)


class EngineDB:
    """A DuckDB connection with crmguard macros whose `events` view is set by :meth:`load`."""

    def __init__(self) -> None:
        self.con = connect()
        register_macros(self.con)

    def load(self, rows: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
        """Replace the `events` view with ``rows``; return the connection."""
        self.con.register("events_arrow", events_table(rows))
        self.con.execute("CREATE OR REPLACE TEMP VIEW events AS SELECT * FROM events_arrow")
        return self.con


@pytest.fixture
def engine_con() -> EngineDB:
    """An :class:`EngineDB`."""
    return EngineDB()
