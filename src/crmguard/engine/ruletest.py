"""Check rules against the example events they ship with (``crmguard rules test``).

Examples live under a rule's ``crmguard: examples:`` key, as two lists, ``match`` (each must fire)
and ``nomatch`` (none may fire). An item of either list is one of:

- an **event**: a dict of event-schema columns (see :mod:`crmguard.schema`); ``time`` is an ISO 8601
  string (default ``2025-01-01T00:00:00Z``), every missing column is NULL, ``event_id`` defaults to a
  generated id and ``raw`` to the example as JSON;
- a **scenario**: a list of events that together must (or must not) raise an alert. Events without
  ``time`` are one second apart, in list order.

An event may carry meta keys, which start with ``_``: ``_repeat: N`` expands it into N copies
``_step`` seconds apart (default 60), and ``{i}`` in its string values becomes the copy number
(0, 1 ...), e.g. ``{username: "user{i}@example.com", action: login, outcome: failure, _repeat: 20}``.
An event with ``_repeat`` is a scenario of its copies.

How each example is checked (every one in its own in-memory ``events`` table, with the engine that
runs the lake — :func:`crmguard.engine.run.run_rules` — so examples test the real SQL):

- a single event against a **detection** rule: the event must (must not) satisfy the rule's condition
  and allowlist. Threshold and dedup are not applied: they count events over a period, so test them
  with a scenario;
- a scenario against a **detection** rule: the rule must (must not) raise an alert, threshold included;
  a match needs an alert whose evidence contains an event of the scenario;
- anything against a **correlation**: the example (a single event is a one-event scenario) runs with
  the correlation's base rules; the correlation must (must not) raise an alert;
- rules that only feed correlations (``hidden``) take single events only.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from crmguard.engine.rules import Rule, load_rules
from crmguard.engine.run import prepare_matches, run_rules
from crmguard.errors import RuleError
from crmguard.intel import register_macros
from crmguard.schema import COLUMN_NAMES, EVENT_SCHEMA
from crmguard.sources.sql import connect

DEFAULT_TIME = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
DEFAULT_STEP = 60


@dataclass(frozen=True)
class RuleTestResult:
    """The verdict for one rule: ``status`` is ``pass``, ``fail`` or ``skip`` (no examples);
    ``reasons`` says which examples disagreed and how; ``checked`` counts the examples run."""

    rule_id: str
    name: str
    status: str
    checked: int = 0
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """Whether every example agreed with the rule (a rule without examples has not passed)."""
        return self.status == "pass"


class ExampleError(ValueError):
    """An example is malformed (unknown column, bad time, wrong shape)."""


def _parse_time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        t = value
    elif isinstance(value, dt.date):
        t = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ExampleError(f"bad time {value!r}: use ISO 8601, e.g. 2025-03-03T10:00:00Z") from exc
    else:
        raise ExampleError(f"bad time {value!r}: use an ISO 8601 string")
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _expand(item: dict[str, Any]) -> list[dict[str, Any]]:
    """An example event with its meta keys applied: ``_repeat`` copies ``_step`` seconds apart."""
    meta = {k: v for k, v in item.items() if k.startswith("_")}
    unknown = set(meta) - {"_repeat", "_step"}
    if unknown:
        raise ExampleError(f"unknown meta key(s) {', '.join(sorted(unknown))}: use _repeat, _step")
    base = {k: v for k, v in item.items() if not k.startswith("_")}
    repeat = int(meta.get("_repeat", 1))
    step = float(meta.get("_step", DEFAULT_STEP))
    if repeat == 1 and "_repeat" not in meta:
        return [base]
    start = _parse_time(base["time"]) if "time" in base else None
    out = []
    for i in range(repeat):
        ev = {k: (v.replace("{i}", str(i)) if isinstance(v, str) else v) for k, v in base.items()}
        if start is not None:
            ev["time"] = start + dt.timedelta(seconds=i * step)
        else:
            ev["_offset"] = i * step
        out.append(ev)
    return out


def scenario_events(example: dict[str, Any] | list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """Turn one example into its events; also says whether it is a scenario (a list, or an event with
    ``_repeat``) rather than a single event. Raises :class:`ExampleError` when malformed."""
    if isinstance(example, dict):
        return _expand(example), "_repeat" in example
    if isinstance(example, list) and all(isinstance(e, dict) for e in example) and example:
        return [ev for e in example for ev in _expand(e)], True
    raise ExampleError("an example is an event (a mapping of columns) or a non-empty list of events")


def events_table(events: list[dict[str, Any]], prefix: str = "ex") -> pa.Table:
    """An Arrow table in the event schema holding ``events`` (missing columns NULL, times parsed,
    default ``event_id`` / ``raw`` / ``time`` filled in). Raises :class:`ExampleError` for an unknown
    column or a value of the wrong type."""
    rows = []
    for k, ev in enumerate(events):
        unknown = set(ev) - set(COLUMN_NAMES) - {"_offset"}
        if unknown:
            raise ExampleError(f"unknown column(s) {', '.join(sorted(unknown))}")
        row = dict(ev)
        offset = row.pop("_offset", None)
        if "time" in row:
            row["time"] = _parse_time(row["time"])
        else:
            row["time"] = DEFAULT_TIME + dt.timedelta(seconds=offset if offset is not None else k)
        row.setdefault("event_id", f"{prefix}-{k}")
        row.setdefault("raw", json.dumps({c: v for c, v in ev.items() if c != "_offset"}, default=str, sort_keys=True))
        rows.append(row)
    columns = {}
    for f in EVENT_SCHEMA:
        values = [r.get(f.name) for r in rows]
        if f.type == pa.string():
            # YAML reads ids such as 12345 or dates as numbers / dates; the schema has them as text.
            values = [v if v is None or isinstance(v, str) else str(v) for v in values]
        try:
            columns[f.name] = pa.array(values, f.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise ExampleError(f"column {f.name}: {exc}") from exc
    return pa.table(columns, schema=EVENT_SCHEMA)


def engine_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection in UTC with every macro rules may use (``cidr_match`` ...)."""
    con = connect()
    register_macros(con)
    return con


def _bases(rule: Rule, by_name: dict[str, Rule]) -> list[Rule]:
    assert rule.correlation is not None
    missing = [n for n in rule.correlation.rules if n not in by_name]
    if missing:
        raise ExampleError(f"correlation refers to unknown rule(s) {', '.join(missing)}")
    return [by_name[n] for n in rule.correlation.rules]


def _check(
    con: duckdb.DuckDBPyConnection, rule: Rule, by_name: dict[str, Rule], example: Any, expect: bool
) -> str | None:
    """Run one example; return why it disagrees with ``expect`` (None when it agrees)."""
    events, scenario = scenario_events(example)
    table = events_table(events)
    con.register("events", table)
    try:
        if rule.correlation is None and not scenario:
            prepare_matches(con, [rule], None, None, count_heavy=False)
            [(hits,)] = con.execute("SELECT count(*) FROM mr WHERE rule = ?", [rule.name]).fetchall()
            fired = hits > 0
            what = "the event satisfies the condition" if fired else "the event does not satisfy the condition"
        elif rule.correlation is None and rule.hidden:
            raise ExampleError("a rule that only feeds correlations takes single events, not scenarios")
        else:
            rules = [rule, *_bases(rule, by_name)] if rule.correlation else [rule]
            ids = set(table.column("event_id").to_pylist())
            alerts = [
                a for a in run_rules(con, rules) if a.rule_id == rule.id and (not expect or ids & set(a.event_ids))
            ]
            fired = bool(alerts)
            what = f"{len(alerts)} alert(s) raised" if fired else "no alert raised"
    finally:
        con.unregister("events")
    return None if fired == expect else what


def _describe(example: Any) -> str:
    text = json.dumps(example, default=str, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "..."


def test_rule(rule: Rule, by_name: dict[str, Rule], con: duckdb.DuckDBPyConnection | None = None) -> RuleTestResult:
    """Check one rule's examples; ``by_name`` holds every loaded rule by name (for a correlation's
    base rules). Returns its :class:`RuleTestResult`."""
    examples = rule.examples
    if not examples.get("match") and not examples.get("nomatch"):
        return RuleTestResult(rule.id, rule.name, "skip", 0, ("no examples",))
    con = con or engine_connection()
    reasons: list[str] = []
    checked = 0
    unknown = set(examples) - {"match", "nomatch"}
    if unknown:
        reasons.append(f"unknown example list(s) {', '.join(sorted(unknown))}: use match, nomatch")
    for kind, expect in (("match", True), ("nomatch", False)):
        for n, example in enumerate(examples.get(kind) or ()):
            checked += 1
            try:
                why = _check(con, rule, by_name, example, expect)
            except (ExampleError, duckdb.Error) as exc:
                reasons.append(f"{kind}[{n}] is invalid: {exc}")
                continue
            except Exception as exc:  # one broken example, or an engine bug, must not hide the others
                reasons.append(f"{kind}[{n}] hit an engine error: {type(exc).__name__}: {exc}")
                continue
            if why is not None:
                expected = "should fire" if expect else "should not fire"
                reasons.append(f"{kind}[{n}] {expected} but {why}: {_describe(example)}")
    return RuleTestResult(rule.id, rule.name, "fail" if reasons else "pass", checked, tuple(reasons))


def test_rules(rules: list[Rule]) -> list[RuleTestResult]:
    """Check every rule in ``rules`` against its examples (correlations find their base rules among
    ``rules``). Returns one :class:`RuleTestResult` per rule, in the order given."""
    by_name = {r.name: r for r in rules}
    con = engine_connection()
    try:
        return [test_rule(r, by_name, con) for r in rules]
    finally:
        con.close()


# pytest would otherwise collect the two functions above as tests when this module is imported there.
test_rule.__test__ = False  # type: ignore[attr-defined]
test_rules.__test__ = False  # type: ignore[attr-defined]


def rules_test_command(rule_dirs: list[Path] | None, console: Console) -> int:
    """``crmguard rules test [--rules DIR]``: load the built-in rules plus those under ``rule_dirs``,
    check their examples and print a table and a summary line on ``console``. Returns 0 when every
    rule with examples agrees with them, 1 otherwise (or when a rule does not load)."""
    try:
        rules = load_rules(rule_dirs)
    except RuleError as exc:
        console.print(f"[red]rule error:[/red] {exc}")
        return 1
    results = test_rules(rules)
    table = Table(title="Rule examples")
    for col in ("rule", "examples", "result", "why"):
        table.add_column(col)
    style = {"pass": "green", "fail": "red", "skip": "yellow"}
    for r in results:
        table.add_row(r.name, str(r.checked), f"[{style[r.status]}]{r.status}[/]", "\n".join(r.reasons))
    console.print(table)
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skip")}
    console.print(
        f"{len(results)} rules: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} without examples"
    )
    if rules.skipped:
        console.print(rules.skipped_note(), markup=False, highlight=False)
    return 1 if counts["fail"] else 0
