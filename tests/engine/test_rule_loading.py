"""Rule loading: references across files, clear errors naming the file, tuning without editing."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmguard.engine.rules import load_rules
from crmguard.errors import RuleError

BASE = """title: Bulk read
id: 11111111-1111-4111-8111-111111111111
name: base_bulk_read
logsource: {product: salesforce}
detection:
  sel: {action: query, rows|gte: 1000}
  condition: sel
"""
CORR = """title: Repeated bulk reads
id: 22222222-2222-4222-8222-222222222222
name: repeated_bulk_reads
correlation:
  type: event_count
  rules: [base_bulk_read]
  group-by: [actor]
  timespan: 1h
  condition: {gte: 3}
level: high
"""


def test_correlation_may_reference_a_rule_in_another_file(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(BASE)
    (tmp_path / "b.yml").write_text(CORR)
    rules = {r.name: r for r in load_rules([tmp_path], include_builtin=False)}
    assert rules["base_bulk_read"].hidden and rules["repeated_bulk_reads"].correlation.rules == ("base_bulk_read",)


def test_invalid_rule_names_its_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("title: x\nlogsource: {product: okta}\ndetection:\n  sel: {action|nosuchmodifier: a}\n  condition: sel\n")
    with pytest.raises(RuleError) as exc:
        load_rules([tmp_path], include_builtin=False)
    assert str(bad) in str(exc.value)


def test_a_file_that_is_not_yaml_names_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(BASE)
    bad = tmp_path / "bad.yml"
    bad.write_text("title: x\ndetection:\n  sel: {action: [a, b}\n  condition: sel\n")
    with pytest.raises(RuleError, match="not valid YAML") as exc:
        load_rules([tmp_path], include_builtin=False)
    assert str(bad) in str(exc.value) and "line 3" in str(exc.value)


def test_tuning_file_overrides_without_editing_the_rule(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(BASE.replace("name: base_bulk_read", "name: bulk_read_visible"))
    (tmp_path / "tuning.yml").write_text("bulk_read_visible: {threshold: 5, allowlist: {app: [Nightly ETL]}, dedup: {period: 1d}}\n")
    [rule] = load_rules([tmp_path], include_builtin=False)
    assert rule.threshold == 5 and rule.allowlist == {"app": ("Nightly ETL",)} and rule.dedup_period.days == 1


def test_unknown_field_in_settings_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(BASE + "crmguard: {dedup: {fields: [nosuchcolumn]}}\n")
    with pytest.raises(RuleError, match="nosuchcolumn"):
        load_rules([tmp_path], include_builtin=False)


def test_correlation_allowlist_from_tuning_suppresses_its_alerts(tmp_path: Path) -> None:
    import datetime as dt

    from crmguard.engine.run import run_rules
    from tests.engine.conftest import EngineDB

    (tmp_path / "a.yml").write_text(BASE)
    (tmp_path / "b.yml").write_text(CORR)
    events = [{"source": "salesforce_elf", "action": "query", "rows": 5000, "username": u,
               "time": (dt.datetime(2025, 3, 4, 8, tzinfo=dt.UTC) + dt.timedelta(minutes=i)).isoformat()}
              for u in ("ana@example.com", "etl@example.com") for i in range(3)]
    db = EngineDB()
    assert {a.actor for a in run_rules(db.load(events), load_rules([tmp_path], include_builtin=False))} == {
        "ana@example.com", "etl@example.com"}
    (tmp_path / "tuning.yml").write_text("repeated_bulk_reads: {allowlist: {actor: [ETL@example.com]}}\n")
    assert {a.actor for a in run_rules(db.load(events), load_rules([tmp_path], include_builtin=False))} == {
        "ana@example.com"}


def test_a_rules_path_that_does_not_exist_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no such rules folder or file") as caught:
        load_rules([tmp_path / "rulez"])
    assert caught.value.file == str(tmp_path / "rulez")


def test_a_rules_path_may_be_a_single_rule_file(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(BASE)
    (tmp_path / "b.yml").write_text(CORR)
    rules = {r.name for r in load_rules([tmp_path / "a.yml"], include_builtin=False)}
    assert rules == {"base_bulk_read"}


def _corr(tmp_path: Path, correlation: str) -> list:
    (tmp_path / "a.yml").write_text(BASE + "---\n" + BASE.replace("11111111-1111-4111-8111-111111111111",
                                                                   "33333333-3333-4333-8333-333333333333")
                                    .replace("base_bulk_read", "base_sign_in").replace("action: query, rows|gte: 1000",
                                                                                       "action: login"))
    (tmp_path / "b.yml").write_text("title: c\nid: 44444444-4444-4444-8444-444444444444\nname: c\nlevel: high\n"
                                    "correlation:\n" + "".join(f"  {line}\n" for line in correlation.strip().splitlines()))
    return load_rules([tmp_path], include_builtin=False)


@pytest.mark.parametrize(("correlation", "expected"), [
    ("type: value_sum\nrules: [base_bulk_read]\ngroup-by: [actor]\ntimespan: 1d\ncondition: {gte: 250000, field: rows}",
     dict(type="value_sum", field="rows", count=250000, percentile=None)),
    ("type: value_avg\nrules: [base_bulk_read]\ngroup-by: [actor]\ntimespan: 1h\ncondition: {gt: 2.5, field: bytes}",
     dict(type="value_avg", field="bytes", count=2.5)),
    ("type: value_median\nrules: [base_bulk_read]\ngroup-by: [actor]\ntimespan: 1h\ncondition: {gte: 900, field: rows}",
     dict(type="value_median", percentile=50)),
    ("type: value_percentile\nrules: [base_bulk_read]\ngroup-by: [actor]\ntimespan: 1h\n"
     "condition: {gte: 900, field: rows, percentile: 95}", dict(type="value_percentile", percentile=95)),
    ("type: temporal\ngroup-by: [actor]\ntimespan: 1h\ncondition: base_bulk_read and not base_sign_in",
     dict(rules=("base_bulk_read", "base_sign_in"),
          expression=("and", ("rule", "base_bulk_read"), ("not", ("rule", "base_sign_in"))))),
    ("type: temporal_ordered\nrules: [base_bulk_read, base_sign_in]\ngroup-by: [actor]\ntimespan: 1h\n"
     "condition: base_sign_in and base_bulk_read", dict(rules=("base_sign_in", "base_bulk_read"), expression=None, count=2)),
])
def test_metric_correlations_and_extended_conditions_load(tmp_path: Path, correlation: str, expected: dict) -> None:
    [corr] = [r.correlation for r in _corr(tmp_path, correlation) if r.correlation]
    assert {k: getattr(corr, k) for k in expected} == expected


@pytest.mark.parametrize(("correlation", "message", "field"), [
    ("type: value_sum\nrules: [base_bulk_read]\ngroup-by: [actor]\ntimespan: 1d\ncondition: {gte: 5, field: src_ip}",
     "'src_ip' is not a numeric field", "src_ip"),
    ("type: value_sum\nrules: [base_bulk_read]\ngroup-by: [actor]\ntimespan: 1d\ncondition: {gte: 5}",
     "without field reference", None),  # pySigma's own check
    ("type: value_percentile\nrules: [base_bulk_read]\ngroup-by: [actor]\ntimespan: 1d\ncondition: {gte: 5, field: rows}",
     "needs `percentile:` between 0 and 100", "percentile"),
    ("type: value_percentile\nrules: [base_bulk_read]\ngroup-by: [actor]\ntimespan: 1d\n"
     "condition: {gte: 5, field: rows, percentile: 101}", "between 0 and 100", "percentile"),
    ("type: value_count\nrules: [base_bulk_read]\ngroup-by: [actor]\ntimespan: 1d\ncondition: {gte: 5, field: [src_ip, app]}",
     "must be one field name", "field"),
    ("type: temporal_ordered\ngroup-by: [actor]\ntimespan: 1h\ncondition: base_sign_in or base_bulk_read",
     "joined by 'and'", "condition"),
])
def test_a_correlation_crmguard_cannot_evaluate_is_refused_naming_file_and_field(
        tmp_path: Path, correlation: str, message: str, field: str) -> None:
    with pytest.raises(RuleError, match=message) as exc:
        _corr(tmp_path, correlation)
    assert str(tmp_path / "b.yml") in str(exc.value) and exc.value.field == field


WINDOWS = """title: Encoded PowerShell
id: 55555555-5555-4555-8555-555555555555
name: encoded_powershell
logsource: {product: windows, category: process_creation}
detection:
  sel: {Image|endswith: '\\\\powershell.exe', CommandLine|contains: ' -enc '}
  condition: sel
---
title: Encoded PowerShell twice
id: 66666666-6666-4666-8666-666666666666
correlation:
  type: event_count
  rules: [encoded_powershell]
  group-by: [username]
  timespan: 1h
  condition: {gte: 2}
"""


def test_rules_for_logs_crmguard_does_not_read_are_skipped_and_counted(tmp_path: Path) -> None:
    """A Sigma checkout holds Windows, AWS ... rules: they are left out (with the correlations over
    them) and reported, and the CRM rules beside them load."""
    (tmp_path / "win.yml").write_text(WINDOWS)
    (tmp_path / "aws.yml").write_text("title: Console login\nlogsource: {product: aws, service: cloudtrail}\n"
                                      "detection:\n  sel: {eventName: ConsoleLogin}\n  condition: sel\n")
    (tmp_path / "crm.yml").write_text(BASE)
    pack = load_rules([tmp_path], include_builtin=False)
    assert [r.name for r in pack] == ["base_bulk_read"]
    assert sorted(pack.skipped) == [(str(tmp_path / "aws.yml"), "aws"), (str(tmp_path / "win.yml"), "windows"),
                                    (str(tmp_path / "win.yml"), "windows")]
    assert pack.skipped_note().startswith("skipped 3 rules written for logs crmguard does not read: aws (1), windows (2)")
    assert load_rules([tmp_path / "crm.yml"], include_builtin=False).skipped_note() is None


@pytest.mark.parametrize("detection", ["sel: {Image|endswith: powershell.exe}",
                                       "sel: {username|fieldref: TargetUserName}"])
def test_a_field_outside_the_event_schema_is_refused_naming_it(tmp_path: Path, detection: str) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(f"title: t\nlogsource: {{product: salesforce}}\ndetection:\n  {detection}\n  condition: sel\n")
    with pytest.raises(RuleError, match="neither an event-schema column nor a vendor field") as exc:
        load_rules([tmp_path], include_builtin=False)
    assert str(bad) in str(exc.value) and exc.value.field in ("Image", "TargetUserName")


def test_a_condition_duckdb_cannot_bind_is_named_at_load_not_at_detect(tmp_path: Path) -> None:
    """The safety net behind the backend: every compiled condition is bound against the event
    schema when rules load; one that does not bind names its rule's file."""
    import dataclasses

    from crmguard.engine.rules import _check_conditions

    (tmp_path / "a.yml").write_text(BASE)
    [rule] = load_rules([tmp_path], include_builtin=False)
    _check_conditions([rule])  # binds
    broken = dataclasses.replace(rule, condition='"rows" >= 5 AND no_such_function("username")', path="broken.yml")
    with pytest.raises(RuleError, match="does not run on the event schema") as exc:
        _check_conditions([rule, broken])
    assert exc.value.file == "broken.yml"


@pytest.mark.parametrize(("detection", "hits"), [
    ("rows: '5*'", {"e1"}),                         # a string match on a number reads its text
    ("rows|re: '^50'", {"e1"}),
    ("time|startswith: '2025-03-04T08:00'", {"e1"}),  # a time reads as ISO 8601 UTC
    ("is_anonymizer: 'true'", {"e2"}),
    ("query|gte: 10", {"e2"}),                      # a comparison on text reads it as a number
    ("username: 7", {"e2"}),                        # a number on a text column matches its digits
    ("username|fieldref: rows", {"e2"}),            # fields of two types compare as text
])
def test_sigma_values_match_columns_of_another_type(engine_con, tmp_path: Path, detection: str, hits: set) -> None:
    (tmp_path / "r.yml").write_text(f"title: t\nlogsource: {{product: salesforce}}\ndetection:\n  sel:\n    {detection}\n"
                                    "  condition: sel\n")
    [rule] = load_rules([tmp_path], include_builtin=False)
    con = engine_con.load([
        {"event_id": "e1", "time": "2025-03-04T08:00:05Z", "source": "salesforce_elf", "rows": 5000, "username": "ana"},
        {"event_id": "e2", "time": "2025-03-04T09:00:00Z", "source": "salesforce_rtem", "rows": 7, "username": "7",
         "is_anonymizer": True, "query": "12"},
    ])
    assert {r[0] for r in con.execute(f"SELECT event_id FROM events WHERE {rule.condition}").fetchall()} == hits


def test_a_correlation_over_a_correlation_is_refused_rather_than_never_firing(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(BASE + "---\n" + CORR)
    (tmp_path / "b.yml").write_text("title: c\nid: 77777777-7777-4777-8777-777777777777\nlevel: high\ncorrelation:\n"
                                    "  type: temporal_ordered\n  rules: [repeated_bulk_reads, base_bulk_read]\n"
                                    "  group-by: [actor]\n  timespan: 1h\n")
    with pytest.raises(RuleError, match=r"over another correlation \(repeated_bulk_reads\)") as exc:
        load_rules([tmp_path], include_builtin=False)
    assert exc.value.file == str(tmp_path / "b.yml") and exc.value.field == "rules"
