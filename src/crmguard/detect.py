"""Detection as a library call: load the rules, run them over the lake, store the alerts."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psutil

from crmguard.alerts.store import Store, StoreResult
from crmguard.engine.rules import Rule, RulePack, load_rules
from crmguard.engine.run import Alert, run_rules
from crmguard.lake import Lake


@dataclass(frozen=True)
class DetectResult:
    """Alerts raised by one run, and what storing them did."""

    alerts: list[Alert]
    stored: StoreResult
    rules: int
    skipped_note: str | None = None
    """A line on the rules left out as written for other logs (see ``RulePack.skipped_note``)."""


def memory_limit() -> str:
    """DuckDB's memory cap for detection: ``$CRMGUARD_MEMORY_LIMIT`` (e.g. ``2GB``), else half of
    this machine's RAM up to 4 GB. Above it DuckDB spills to the lake's ``_tmp`` folder instead of
    growing."""
    if os.environ.get("CRMGUARD_MEMORY_LIMIT"):
        return os.environ["CRMGUARD_MEMORY_LIMIT"]
    return f"{min(4096, psutil.virtual_memory().total // 2**21)}MB"


def engine_connection(lake: Lake, intel_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection over ``lake`` with the macros rules use (``cidr_match``), memory capped
    by :func:`memory_limit`; when ``intel_dir`` holds intel files, the ``events`` view is enriched
    from them (anonymizer flag and kind, ASN, ISP, country for ``src_ip``; values the logs state
    themselves win)."""
    from crmguard.intel import load, register_macros

    con = lake.connect()
    con.execute(f"SET memory_limit = '{memory_limit()}'")
    register_macros(con)
    db = load(intel_dir) if intel_dir is not None else None
    if db is not None and not db.empty:
        con.execute(f"CREATE OR REPLACE TEMP VIEW events_lake AS {lake.events_sql()}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW events AS {db.enrich_sql(con, 'events_lake')}")
    return con


def detect(lake: Lake, state: Path, rule_dirs: list[Path] | None = None, since: dt.datetime | None = None,
           until: dt.datetime | None = None, rules: list[Rule] | None = None,
           intel_dir: Path | None = None) -> DetectResult:
    """Run the built-in rules plus those under ``rule_dirs`` over ``lake`` (``since`` inclusive,
    ``until`` exclusive, UTC), enriching IPs from ``intel_dir`` when it holds intel files, and save
    the alerts in the SQLite ``state`` database. Returns the :class:`DetectResult`. Raises
    ``RuleError`` for an invalid rule."""
    rules = rules if rules is not None else load_rules(rule_dirs)
    con = engine_connection(lake, intel_dir)
    alerts = run_rules(con, rules, since, until)
    store = Store(state)
    try:
        stored = store.save(alerts)
    finally:
        store.close()
    return DetectResult(alerts, stored, len(rules), rules.skipped_note() if isinstance(rules, RulePack) else None)
