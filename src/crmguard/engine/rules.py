"""Loading Sigma rules (with pySigma) and compiling them to DuckDB conditions.

A rule file is Sigma YAML; several documents per file are allowed (a correlation and its base
rules). crmguard reads its own settings from the rule's custom ``crmguard:`` attribute::

    crmguard:
      dedup: {fields: [actor], period: 1h}   # alerts with the same key in one period merge
      threshold: 1                           # minimum matching events per dedup period
      allowlist: {app: [Okta Sync Service]}  # never alert on these values (tuning, not detection)
      examples:                              # events that must and must not match (crmguard rules test)
        match: [{action: query, rows: 50000}]
        nomatch: [{action: query, rows: 10}]

Tuning without editing a rule: a ``tuning.yml`` beside the rules maps rule id or name to the same
``dedup`` / ``threshold`` / ``allowlist`` keys, and overrides the rule's own.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationCondition, SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.rule import SigmaDetection, SigmaRule
from sigma.types import SigmaFieldReference

from crmguard.engine.backend import DuckDBBackend
from crmguard.engine.pipeline import SOURCES_BY_LOGSOURCE, crmguard_pipeline
from crmguard.engine.rule_expr import Expr, conjunction, from_sigma, rules_of, to_text
from crmguard.errors import RuleError
from crmguard.schema import COLUMN_NAMES, COLUMNS, duckdb_type

DEFAULT_DEDUP_PERIOD = dt.timedelta(hours=1)
ACTOR = "actor"
"""Pseudo-field: the identity an event is about (username, else the username known for the user id,
else the user id)."""


def mentions(column: str, sql: str) -> bool:
    """Whether the SQL text ``sql`` (a rule condition, a column name) names the column ``column``
    (as a whole word, not as a qualified name's part)."""
    return re.search(rf'(?<![\w.]){re.escape(column)}(?!\w)', sql) is not None

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


METRIC_TYPES = ("value_sum", "value_avg", "value_median", "value_percentile")
"""Correlation types whose condition applies to a statistic of a numeric field's values."""

NUMERIC_FIELDS = frozenset(c.name for c in COLUMNS if pa.types.is_integer(c.type) or pa.types.is_floating(c.type))


@dataclass(frozen=True)
class Correlation:
    """A compiled Sigma correlation: ``type`` (event_count, value_count, temporal,
    temporal_ordered, or one of :data:`METRIC_TYPES`), the base rule names in order, ``group_by``
    fields, ``timespan``, the condition operator and count (a threshold, fractional for metrics),
    the field value_count and the metrics read, and the percentile of value_percentile.
    ``expression`` is a temporal correlation's extended condition (see
    :mod:`crmguard.engine.rule_expr`), which replaces the count. ``aliases`` are Sigma's field
    aliases: a group-by name that reads a different field in each base rule, as
    ``((alias, ((rule, field), ...)), ...)``."""

    type: str
    rules: tuple[str, ...]
    group_by: tuple[str, ...]
    timespan: dt.timedelta
    op: str
    count: float
    field: str | None = None
    aliases: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    percentile: float | None = None
    expression: Expr | None = None

    def alias(self, name: str) -> dict[str, str] | None:
        """The rule → field mapping of alias ``name``, or None when ``name`` is a plain field."""
        for alias, mapping in self.aliases:
            if alias == name:
                return dict(mapping)
        return None

    def fields(self) -> set[str]:
        """Every event field the correlation reads: group-by fields (through aliases) and the counted field."""
        out = {f for g in self.group_by for f in ((self.alias(g) or {g: g}).values())}
        return out | ({self.field} if self.field else set())

    def describe(self) -> str:
        """The correlation in words, e.g. ``value_sum of rows over api_rows within 1h (gte 100000)``."""
        kind = f"value_percentile (p{number_text(self.percentile)})" if self.type == "value_percentile" else self.type
        what = f"{kind} of {self.field} over" if self.type in METRIC_TYPES else f"{kind} of"
        cond = to_text(self.expression) if self.expression else f"{self.op} {number_text(self.count)}"
        return f"{what} {', '.join(self.rules)} within {span_text(self.timespan)} ({cond})"


def number_text(x: float | None) -> str:
    """A threshold as written: ``10`` for a whole number, ``2.5`` otherwise."""
    return str(int(x)) if x is not None and float(x).is_integer() else str(x)


def span_text(td: dt.timedelta) -> str:
    """A timespan as a Sigma user writes it: 1d, 12h, 30m, 45s."""
    secs = int(td.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs and secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


@dataclass(frozen=True)
class Rule:
    """A loaded rule. Detection rules carry ``condition`` (DuckDB SQL over the event schema);
    correlation rules carry ``correlation``. ``hidden`` rules only feed correlations."""

    id: str
    name: str
    title: str
    level: str
    description: str
    tags: tuple[str, ...]
    falsepositives: tuple[str, ...]
    path: str
    condition: str | None = None
    correlation: Correlation | None = None
    hidden: bool = False
    dedup_fields: tuple[str, ...] = (ACTOR,)
    dedup_period: dt.timedelta = DEFAULT_DEDUP_PERIOD
    threshold: int = 1
    allowlist: dict[str, tuple[str, ...]] = field(default_factory=dict)
    examples: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        """The Sigma level, as alert severity."""
        return self.level


def builtin_rules_dir() -> Path:
    """The folder of the built-in rule pack."""
    return Path(str(resources.files("crmguard.rules") / "builtin"))


def parse_period(text: str | int | None, where: str) -> dt.timedelta:
    """Parse ``30m`` / ``1h`` / ``2d`` / seconds into a timedelta; raises ``RuleError``."""
    if text is None:
        return DEFAULT_DEDUP_PERIOD
    if isinstance(text, int):
        return dt.timedelta(seconds=text)
    try:
        return dt.timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])
    except (KeyError, ValueError, IndexError) as exc:
        raise RuleError(f"bad period {text!r}: use e.g. 30m, 1h, 2d", file=where) from exc


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_rules(dirs: list[Path] | None = None, include_builtin: bool = True) -> RulePack:
    """Load every ``*.yml`` rule under the built-in pack and ``dirs`` (folders, or single rule
    files); compile detections to SQL.

    Returns the rules sorted by id, as a :class:`RulePack` that also lists the rules skipped because
    they are written for other logs (``logsource.product`` other than salesforce, okta or any). Raises
    ``RuleError`` naming the file (and field) of a rule pySigma rejects, that uses a field outside
    the event schema, or with bad crmguard settings, and naming a path of ``dirs`` that does not
    exist.
    """
    for d in dirs or []:
        if not Path(d).exists():
            raise RuleError("no such rules folder or file", file=str(d))
    paths = ([builtin_rules_dir()] if include_builtin else []) + [Path(d) for d in dirs or []]
    folders = [d for d in paths if d.is_dir()]
    files = [f for d in paths for f in (sorted(d.rglob("*.yml")) if d.is_dir() else [d]) if f.name != "tuning.yml"]
    tuning: dict[str, dict[str, Any]] = {}
    for d in folders:
        if (d / "tuning.yml").exists():
            tuning.update(yaml.safe_load((d / "tuning.yml").read_text()) or {})
    collections = []
    for f in files:
        try:
            # libyaml's parser (pySigma's from_yaml uses the pure-Python one: 6 s for 1,000 rules).
            docs = list(yaml.load_all(f.read_text(), Loader=_YAML_LOADER))
            collections.append(_tagged(SigmaCollection.from_dicts(docs, collect_errors=False, resolve_references=False),
                                       str(f)))
        except yaml.YAMLError as exc:
            raise RuleError(f"not valid YAML: {exc}", file=str(f)) from exc
        except SigmaError as exc:
            raise RuleError(str(exc), file=str(f)) from exc
    collection = SigmaCollection.merge(collections)
    try:
        collection.resolve_rule_references()
    except SigmaError as exc:
        raise RuleError(f"correlation references: {exc}") from exc
    applicable, skipped = _for_our_logs(collection.rules)
    rules = [_compile(r, tuning) for r in applicable]
    ids = [r.id for r in rules]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise RuleError(f"duplicate rule ids: {', '.join(sorted(dupes))}")
    _check_conditions(rules)
    return RulePack(sorted(rules, key=lambda r: r.id), skipped)


def _check_conditions(rules: list[Rule]) -> None:
    """Bind every detection's condition against an empty table of the event schema, all in one
    query, so a condition DuckDB cannot run (a malformed regular expression, a comparison of
    incompatible types) is a ``RuleError`` naming its file now, not a failure of the whole pack
    at detect time; only when that query fails is each condition bound alone to name it."""
    from crmguard.intel import register_macros
    from crmguard.sources.sql import connect

    conditions = [r for r in rules if r.condition]
    if not conditions:
        return
    con = connect()
    try:
        register_macros(con)
        columns = ", ".join(f"NULL::{duckdb_type(c)} AS {c.name}" for c in COLUMNS)
        con.execute(f"CREATE TEMP VIEW events AS SELECT {columns}, NULL::VARCHAR AS {ACTOR} LIMIT 0")
        try:
            con.execute("SELECT " + ", ".join(f"({r.condition})" for r in conditions) + " FROM events").fetchall()
        except duckdb.Error:
            for r in conditions:
                try:
                    con.execute(f"SELECT ({r.condition}) FROM events").fetchall()
                except duckdb.Error as exc:
                    raise RuleError(f"the condition does not run on the event schema: {str(exc).splitlines()[0]}",
                                    file=r.path) from exc
    finally:
        con.close()


class RulePack(list[Rule]):
    """The rules :func:`load_rules` loaded, sorted by id, and ``skipped``: (file, product) of each
    rule left out because it is written for logs crmguard does not read (a Windows or AWS rule
    in a Sigma checkout), or correlates such rules."""

    def __init__(self, rules: list[Rule], skipped: list[tuple[str, str]]) -> None:
        super().__init__(rules)
        self.skipped = tuple(skipped)

    def skipped_note(self) -> str | None:
        """One line telling how many rules were skipped and for which products, or None."""
        if not self.skipped:
            return None
        products = Counter(product for _, product in self.skipped)
        listing = ", ".join(f"{p} ({n})" for p, n in sorted(products.items()))
        return (f"skipped {len(self.skipped)} rule{'s' if len(self.skipped) != 1 else ''} written for logs crmguard "
                f"does not read: {listing} (it reads product: {', '.join(sorted(PRODUCTS))}, or no product)")


PRODUCTS = frozenset({*(product for product, _ in SOURCES_BY_LOGSOURCE), "any"})
"""The log source products crmguard reads (``any``: every source)."""


def _for_our_logs(rules: list[SigmaRule | SigmaCorrelationRule]) -> tuple[list, list[tuple[str, str]]]:
    """Split ``rules`` into those crmguard can run and (file, product) of the others: detections
    whose ``logsource.product`` names other logs, and correlations over any such rule."""
    skipped: dict[int, str] = {}
    for r in rules:
        product = (r.logsource.product or "").lower() if isinstance(r, SigmaRule) else ""
        if product and product not in PRODUCTS:
            skipped[id(r)] = product
    changed = True
    while changed:  # correlations of correlations
        changed = False
        for r in rules:
            if isinstance(r, SigmaCorrelationRule) and id(r) not in skipped:
                gone = [skipped[id(ref.rule)] for ref in r.referenced_rules if id(ref.rule) in skipped]
                if gone:
                    skipped[id(r)] = gone[0]
                    changed = True
    return ([r for r in rules if id(r) not in skipped],
            [(r.custom_attributes.get("_crmguard_path", "?"), skipped[id(r)]) for r in rules if id(r) in skipped])


def _tagged(collection: SigmaCollection, path: str) -> SigmaCollection:
    for rule in collection.rules:
        rule.custom_attributes.setdefault("_crmguard_path", path)
    return collection


def _compile(rule: SigmaRule | SigmaCorrelationRule, tuning: dict[str, dict[str, Any]]) -> Rule:
    path = rule.custom_attributes.get("_crmguard_path", "?")
    settings = dict(rule.custom_attributes.get("crmguard") or {})
    rid = str(rule.id) if rule.id else (rule.name or rule.title)
    settings.update(tuning.get(rid) or tuning.get(rule.name or "") or {})
    dedup = settings.get("dedup") or {}
    common: dict[str, Any] = dict(
        id=rid, name=rule.name or rid, title=rule.title, level=str(rule.level.name.lower() if rule.level else "medium"),
        description=(rule.description or "").strip(), tags=tuple(str(t) for t in rule.tags),
        falsepositives=tuple(rule.falsepositives or ()), path=path,
        dedup_fields=tuple(dedup.get("fields") or (ACTOR,)), dedup_period=parse_period(dedup.get("period"), path),
        threshold=int(settings.get("threshold", 1)),
        allowlist={k: tuple(str(x) for x in (v if isinstance(v, list) else [v]))
                   for k, v in (settings.get("allowlist") or {}).items()},
        examples={k: tuple(v or ()) for k, v in (settings.get("examples") or {}).items()},
    )
    for fld in (*common["dedup_fields"], *common["allowlist"]):
        if fld not in COLUMN_NAMES and fld != ACTOR:
            raise RuleError(f"unknown field {fld!r} in crmguard settings", file=path, field=fld)
    if isinstance(rule, SigmaCorrelationRule):
        corr = _correlation(rule, path)
        return Rule(correlation=corr, **common)
    # Rules referenced by a correlation have output disabled by pySigma (unless `generate: true`);
    # crmguard still needs their condition, and records that they must not alert on their own.
    hidden = not rule._output
    rule._output = True
    try:
        backend = DuckDBBackend(processing_pipeline=crmguard_pipeline(), collect_errors=False)
        [condition] = backend.convert_rule(rule)
    except (SigmaError, NotImplementedError) as exc:  # pySigma says "not supported" either way
        raise RuleError(str(exc), file=path) from exc
    for det in rule.detection.detections.values():
        for fld in _fields(det):
            if fld not in COLUMN_NAMES and fld != ACTOR:
                raise RuleError(f"field {fld!r} is neither an event-schema column nor a vendor field name crmguard "
                                "maps to one (see docs: the event schema)", file=path, field=fld)
    return Rule(condition=condition, hidden=hidden, **common)


def _fields(detection: SigmaDetection) -> Iterator[str]:
    """The field names a detection (after the pipeline's mapping) reads, field references included."""
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            yield from _fields(item)
            continue
        if item.field:
            yield item.field
        yield from (v.field for v in item.value if isinstance(v, SigmaFieldReference))


def _correlation(rule: SigmaCorrelationRule, path: str) -> Correlation:
    """Compile a pySigma correlation rule; raises ``RuleError`` naming ``path`` (and the field) for
    what crmguard cannot evaluate as written."""
    kind = rule.type.name.lower()
    names = {ref.reference: ref.rule.name or str(ref.rule.id) for ref in rule.referenced_rules}
    chained = [names[ref.reference] for ref in rule.referenced_rules if isinstance(ref.rule, SigmaCorrelationRule)]
    if chained:
        # Evaluated as written, it would quietly never fire (its base rules' matches are events).
        raise RuleError(f"a correlation over another correlation ({', '.join(chained)}) is not supported: "
                        "correlate the detection rules themselves", file=path, field="rules")
    cond = rule.condition
    expression = None
    if isinstance(cond, SigmaCorrelationCondition):
        op, count, fld, percentile = cond.op.name.lower(), cond.count, cond.fieldref, cond.percentile
        rules = tuple(names[ref.reference] for ref in rule.rules or ())
    else:
        expression = from_sigma(cond.parsed, names)
        op, count, fld, percentile = "gte", 1, None, None
        listed = [names[ref.reference] for ref in rule.rules or ()]
        rules = tuple(listed or rules_of(expression))
        if kind == "temporal_ordered":
            # A chain in order: only rules joined by `and` say one; with `or` / `not` it is open
            # to readings, so it is refused rather than guessed.
            order = conjunction(expression)
            if order is None or sorted(order) != sorted(rules):
                raise RuleError("a temporal_ordered condition must name each of its rules once, joined by "
                                "'and' (their order); use a temporal correlation for 'or' and 'not'",
                                file=path, field="condition")
            rules, expression = tuple(order), None
            count = len(rules)
    if isinstance(fld, list):
        raise RuleError(f"the condition's field must be one field name, not a list ({', '.join(map(str, fld))})",
                        file=path, field="field")
    if kind in METRIC_TYPES and fld not in NUMERIC_FIELDS:
        raise RuleError(f"{kind} reads a number: {fld!r} is not a numeric field of the event schema "
                        f"(numeric: {', '.join(sorted(NUMERIC_FIELDS))})", file=path, field=fld)
    if kind == "value_percentile":
        if percentile is None or not 0 <= percentile <= 100:
            raise RuleError("a value_percentile correlation needs `percentile:` between 0 and 100 in its condition",
                            file=path, field="percentile")
    elif kind == "value_median":
        percentile = 50
    else:
        percentile = None
    aliases = tuple(
        (name, tuple((names.get(ref.reference, ref.reference), f) for ref, f in alias.mapping.items()))
        for name, alias in (rule.aliases.aliases.items() if rule.aliases else ())
    )
    corr = Correlation(type=kind, rules=rules, group_by=tuple(rule.group_by or ()),
                       timespan=dt.timedelta(seconds=rule.timespan.seconds), op=op, count=count, field=fld,
                       aliases=aliases, percentile=percentile, expression=expression)
    for name, mapping in aliases:
        unknown = [r for r, _ in mapping if r not in corr.rules]
        if unknown:
            raise RuleError(f"alias {name!r} maps rule(s) {', '.join(unknown)} the correlation does not use",
                            file=path, field=name)
    for f in corr.fields():
        if f not in COLUMN_NAMES and f != ACTOR:
            raise RuleError(f"unknown field {f!r} in correlation", file=path, field=f)
    return corr
