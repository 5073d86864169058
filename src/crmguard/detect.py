"""Detection as a library call: load the rules, run them over the lake, store the alerts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb

from crmguard.alerts.store import Store, StoreResult
from crmguard.engine.rules import Rule, load_rules
from crmguard.engine.run import Alert, run_rules
from crmguard.lake import Lake


@dataclass(frozen=True)
class DetectResult:
    """Alerts raised by one run, and what storing them did."""

    alerts: list[Alert]
    stored: StoreResult
    rules: int


def engine_connection(lake: Lake) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection over ``lake`` with the macros rules use (``cidr_match``)."""
    con = lake.connect()
    try:
        from crmguard.intel import register_macros
    except ImportError:  # pragma: no cover - intel ships with crmguard; kept for partial installs
        return con
    register_macros(con)
    return con


def detect(lake: Lake, state: Path, rule_dirs: list[Path] | None = None, since: dt.datetime | None = None,
           until: dt.datetime | None = None, rules: list[Rule] | None = None) -> DetectResult:
    """Run the built-in rules plus those under ``rule_dirs`` over ``lake`` (``since`` inclusive,
    ``until`` exclusive, UTC) and save the alerts in the SQLite ``state`` database. Returns the
    :class:`DetectResult`. Raises ``RuleError`` for an invalid rule."""
    rules = rules if rules is not None else load_rules(rule_dirs)
    con = engine_connection(lake)
    alerts = run_rules(con, rules, since, until)
    store = Store(state)
    try:
        stored = store.save(alerts)
    finally:
        store.close()
    return DetectResult(alerts, stored, len(rules))
