"""A JSON record's format is recognised by its keys (each parser's ``JSON_KEYS``): the SQL that ingest
runs and the Python check the HTTP endpoint runs on a body's first record must agree."""

from __future__ import annotations

import json

import pytest

from crmguard.sources import FORMAT_SQL, recognise
from crmguard.sources.sql import connect

RECORDS = [
    ({"eventType": "user.session.start", "actor": {"alternateId": "a@b.c"}}, "okta"),
    ({"eventtype": "user.session.start"}, "okta"),
    ({"EVENT_TYPE": "API", "USER_ID": "005"}, "salesforce_elf"),
    ({"Action": "insertConnectedApplication", "Section": "Connected Apps"}, "salesforce_audit"),
    ({"action": "x", "section": "y"}, "salesforce_audit"),
    ({"Action": "only one of the pair"}, None),
    ({"EventIdentifier": "e1", "EventDate": "2025-03-03T10:00:00Z"}, "salesforce_rtem"),
    ({"data": {"payload": {"EventDate": "2025-03-03T10:00:00Z"}}, "channel": "/event/LoginEventStream"},
     "salesforce_rtem"),
    ({"data": {"event": {}}, "channel": "/event/X"}, None),  # an envelope without payload
    ({"note": 'mentions "EVENT_TYPE" inside a value', "other": 1}, None),  # the text, not a key
    ({"nested": {"EVENT_TYPE": "API"}}, None),  # not a top-level key
    ({}, None),
]


@pytest.mark.parametrize(("record", "expected"), RECORDS, ids=[str(i) for i in range(len(RECORDS))])
def test_sql_and_python_recognise_the_same_format(record: dict, expected: str | None) -> None:
    [(in_sql,)] = connect().execute(f"SELECT {FORMAT_SQL} FROM (SELECT ?::VARCHAR AS rec)",
                                    [json.dumps(record)]).fetchall()
    assert in_sql == recognise(record) == expected
