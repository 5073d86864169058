"""Sigma detection language on DuckDB: each modifier and condition form, run on real events."""

from __future__ import annotations

import pytest
from sigma.collection import SigmaCollection

from crmguard.engine.backend import DuckDBBackend
from crmguard.engine.pipeline import crmguard_pipeline

EVENTS = [
    {"event_id": "a", "time": "2025-03-04T08:00:00Z", "source": "salesforce_elf", "action": "query", "object": "Contact",
     "rows": 50000, "user_agent": "python-requests/2.31", "query": "SELECT Id, Email FROM Contact", "src_ip": "10.1.2.3",
     "username": "ana@example.com", "app": "Data Loader"},
    {"event_id": "b", "time": "2025-03-04T08:01:00Z", "source": "salesforce_rtem", "action": "query", "object": "Account",
     "rows": 20, "user_agent": "Mozilla/5.0", "query": "SELECT Id FROM Account WHERE Id = '1'", "src_ip": "192.168.1.9",
     "username": "bob@example.com"},
    {"event_id": "c", "time": "2025-03-04T08:02:00Z", "source": "okta", "action": "login", "is_anonymizer": True,
     "src_ip": "2001:db8::7", "username": "ana@example.com", "user_agent": "curl/8.4"},
    {"event_id": "d", "time": "2025-03-04T08:03:00Z", "source": "salesforce_elf", "action": "export", "object": "Report",
     "rows": 999, "username": "it's_100%@example.com"},
]


def hits(con, detection: str, logsource: str = "{product: salesforce}") -> set[str]:
    """Ids of the events of ``con``'s ``events`` view that the Sigma ``detection`` matches."""
    rule = SigmaCollection.from_yaml(f"title: t\nlogsource: {logsource}\ndetection:\n{detection}").rules[0]
    [condition] = DuckDBBackend(processing_pipeline=crmguard_pipeline(), collect_errors=False).convert_rule(rule)
    return {r[0] for r in con.execute(f"SELECT event_id FROM events WHERE {condition}").fetchall()}


def matching(engine_con, detection: str, logsource: str = "{product: salesforce}") -> set[str]:
    return hits(engine_con.load(EVENTS), detection, logsource)


@pytest.mark.parametrize(
    ("detection", "logsource", "expected"),
    [
        ("  s: {action: QUERY}\n  condition: s", "{product: salesforce}", {"a", "b"}),  # case-insensitive
        ("  s: {query|contains: 'from contact'}\n  condition: s", "{product: salesforce}", {"a"}),
        ("  s: {user_agent|startswith: ['python-', 'curl/']}\n  condition: s", "{product: okta}", {"c"}),
        ("  s: {user_agent|startswith: ['python-', 'curl/']}\n  condition: s", "{category: any}", {"a", "c"}),
        ("  s: {app|endswith: loader}\n  condition: s", "{product: salesforce}", {"a"}),
        ("  s: {query|re: 'FROM (Contact|Lead)$'}\n  condition: s", "{product: salesforce}", {"a"}),
        ("  s: {query|re: 'from contact'}\n  condition: s", "{product: salesforce}", set()),  # regex is case-sensitive
        ("  s: {query|contains|all: [Id, Email]}\n  condition: s", "{product: salesforce}", {"a"}),
        ("  s: {rows|gte: 999}\n  condition: s", "{product: salesforce}", {"a", "d"}),
        ("  s: {rows|gt: 999}\n  condition: s", "{product: salesforce}", {"a"}),
        ("  s: {rows|lt: 999}\n  condition: s", "{product: salesforce}", {"b"}),
        ("  s: {rows|lte: 20}\n  condition: s", "{product: salesforce}", {"b"}),
        ("  s: {app|exists: true}\n  condition: s", "{product: salesforce}", {"a"}),
        ("  s: {app|exists: false}\n  condition: s", "{product: salesforce}", {"b", "d"}),
        ("  s: {is_anonymizer: true}\n  condition: s", "{product: okta}", {"c"}),
        ("  s: {username: \"it's_100%@example.com\"}\n  condition: s", "{product: salesforce}", {"d"}),  # quotes, LIKE chars
        ("  s: {username: 'it*'}\n  condition: s", "{product: salesforce}", {"d"}),
        ("  s: {username: 'ana@example.co?'}\n  condition: s", "{category: any}", {"a", "c"}),
        ("  q: {action: query}\n  big: {rows|gte: 1000}\n  condition: q and not big", "{product: salesforce}", {"b"}),
        ("  q: {action: query}\n  e: {action: export}\n  condition: q or e", "{product: salesforce}", {"a", "b", "d"}),
        ("  e: {action: EXPORT}\n  condition: e", "{product: salesforce}", {"d"}),  # vocabulary: value lower-cased
        ("  e: {event_type: LOGINEVENT}\n  condition: e", "{category: any}", set()),
        ("  o: {object: REPORT}\n  condition: o", "{product: salesforce}", {"d"}),  # vendor values: ILIKE
        ("  sel_a: {rows|gte: 40000}\n  sel_b: {object: Report}\n  condition: 1 of sel_*", "{product: salesforce}", {"a", "d"}),
        ("  sel_a: {action: query}\n  sel_b: {object: Contact}\n  condition: all of sel_*", "{product: salesforce}", {"a"}),
        ("  s: {SourceIp: 10.1.2.3}\n  condition: s", "{product: salesforce}", {"a"}),  # vendor field alias
        ("  s: {USER_NAME: bob@example.com}\n  condition: s", "{product: salesforce, service: rtem}", {"b"}),
        ("  s: {USER_NAME: ana@example.com}\n  condition: s", "{product: salesforce, service: rtem}", set()),
    ],
)
def test_detection_language(engine_con, detection: str, logsource: str, expected: set[str]) -> None:
    assert matching(engine_con, detection, logsource) == expected


def test_cidr_modifier(engine_con) -> None:
    assert matching(engine_con, "  s: {src_ip|cidr: 10.0.0.0/8}\n  condition: s", "{category: any}") == {"a"}
    assert matching(engine_con, "  s: {src_ip|cidr: '2001:db8::/32'}\n  condition: s", "{category: any}") == {"c"}


def test_time_part_modifiers_read_the_event_time_in_utc(engine_con) -> None:
    events = [{"event_id": "night", "time": "2025-03-01T23:30:00Z", "source": "salesforce_elf", "action": "export"},
              {"event_id": "day", "time": "2025-03-04T10:05:00Z", "source": "salesforce_elf", "action": "export"}]
    con = engine_con.load(events)
    con.execute("SET timezone = 'Asia/Tokyo'")  # 23:30 UTC is 08:30 the next day there

    assert hits(con, "  s: {time|hour: [22, 23, 0, 1]}\n  condition: s") == {"night"}
    assert hits(con, "  s: {time|day: 1}\n  condition: s") == {"night"}
    assert hits(con, "  s: {time|minute: 5}\n  condition: s") == {"day"}
    assert hits(con, "  s: {time|month: 3}\n  s2: {time|year: 2025}\n  condition: s and s2") == {"night", "day"}
    assert hits(con, "  s: {time|week: 10}\n  condition: s") == {"day"}  # ISO week 10 of 2025 starts Monday 3 March


def test_a_time_part_modifier_on_a_field_that_is_not_a_time_is_refused(tmp_path) -> None:
    from crmguard.engine.rules import load_rules
    from crmguard.errors import RuleError

    (tmp_path / "r.yml").write_text("title: t\nlogsource: {product: salesforce}\ndetection:\n"
                                    "  s: {username|hour: 3}\n  condition: s\n")
    with pytest.raises(RuleError, match="apply to a time field"):
        load_rules([tmp_path], include_builtin=False)


def test_regex_flags_fieldref_base64offset_and_windash(engine_con) -> None:
    import base64

    encoded = base64.b64encode(b"run: SELECT Id FROM Contact").decode()
    events = [{"event_id": "enc", "time": "2025-03-04T08:00:00Z", "source": "salesforce_elf", "query": encoded,
               "username": "ana@example.com", "target_user": "ana@example.com"},
              {"event_id": "cli", "time": "2025-03-04T08:00:00Z", "source": "salesforce_elf",
               "user_agent": "sfdx /json --target-org prod", "username": "bob@example.com", "target_user": "eve@example.com"}]
    con = engine_con.load(events)

    assert hits(con, "  s: {query|base64offset|contains: 'FROM Contact'}\n  condition: s") == {"enc"}
    assert hits(con, "  s: {user_agent|windash|contains: ' -json'}\n  condition: s") == {"cli"}
    assert hits(con, "  s: {username|fieldref: target_user}\n  condition: s") == {"enc"}
    assert hits(con, "  s: {username|re|i: '^BOB@'}\n  condition: s") == {"cli"}
    assert hits(con, "  s: {username|re: '^BOB@'}\n  condition: s") == set()
