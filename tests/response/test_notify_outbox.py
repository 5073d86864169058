"""The outbox and its helpers without a server: idempotent enqueue, language choice, Message-IDs,
the token bucket, backoff, evidence parsing."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from notify_fixtures import INCIDENT_ID, LANGUAGE_CASES, customer, many_customers, write_incident

from crmguard.errors import NotificationError
from crmguard.response.mailer import TokenBucket, backoff, parse_hostport
from crmguard.response.notices import COUNTRY_LANGUAGE, REGIONAL_FORM, choose_language, template_languages
from crmguard.response.outbox import Outbox, read_delivered_ids

LANGUAGES = template_languages("v1")


def _enqueue(home: Path, outbox: Outbox, domain: str = "maison-exemple.com"):
    return outbox.enqueue(INCIDENT_ID, home / "incidents" / INCIDENT_ID / "affected_customers.parquet", "v1",
                          LANGUAGES, domain)


def test_enqueue_twice_adds_nothing_and_keeps_message_ids(tmp_path: Path) -> None:
    rows, _ = many_customers(50)
    rows.append(customer("003NOMAIL", "fr", "FR", email=None))
    rows.append(customer("003BADMAIL", "fr", "FR", email="not an address"))
    rows.append(dict(rows[0]))  # the same customer twice in the scope
    write_incident(tmp_path, rows)
    with Outbox(tmp_path / "state.db") as outbox:
        first = _enqueue(tmp_path, outbox)
        ids = {r["customer_id"]: r["message_id"] for r in outbox.rows(INCIDENT_ID)}
        again = _enqueue(tmp_path, outbox, domain="elsewhere.example")
        assert {r["customer_id"]: r["message_id"] for r in outbox.rows(INCIDENT_ID)} == ids
        assert (first.added, first.already, first.without_address) == (50, 0, 2)
        assert (again.added, again.already, again.without_address) == (0, 50, 2)
        assert len(outbox.rows(INCIDENT_ID)) == 50
        assert {r["status"] for r in outbox.rows(INCIDENT_ID)} == {"pending"}
    assert len(set(ids.values())) == 50
    assert all(re.fullmatch(r"<[0-9a-f]{40}@maison-exemple\.com>", m) for m in ids.values())


def test_a_new_template_version_is_a_new_notice(tmp_path: Path) -> None:
    write_incident(tmp_path, [customer("003A", "en", "GB")])
    parquet = tmp_path / "incidents" / INCIDENT_ID / "affected_customers.parquet"
    with Outbox(tmp_path / "state.db") as outbox:
        assert outbox.enqueue(INCIDENT_ID, parquet, "v1", LANGUAGES, "x.com").added == 1
        assert outbox.enqueue(INCIDENT_ID, parquet, "v2", LANGUAGES, "x.com").added == 1
        assert len({r["message_id"] for r in outbox.rows(INCIDENT_ID)}) == 2


def test_enqueue_chooses_own_language_then_country_then_english(tmp_path: Path) -> None:
    rows, expected = many_customers(len(LANGUAGE_CASES))
    write_incident(tmp_path, rows)
    with Outbox(tmp_path / "state.db") as outbox:
        _enqueue(tmp_path, outbox)
        got = {r["customer_id"]: r["language"] for r in outbox.rows(INCIDENT_ID)}
    assert got == expected
    for language, country, want in LANGUAGE_CASES:  # the library function agrees with the SQL
        assert choose_language(language, country, LANGUAGES) == want


@given(st.one_of(st.none(), st.text(max_size=5), st.sampled_from(["zh", "ZH ", "fr", "ko"])),
       st.one_of(st.none(), st.sampled_from(sorted(COUNTRY_LANGUAGE)), st.text(max_size=3)))
def test_choose_language_always_has_a_template(language, country) -> None:
    got = choose_language(language, country, LANGUAGES)
    assert got in LANGUAGES
    own = (language or "").strip().lower()[:2]
    if own in LANGUAGES:  # their own language, in the form written where they live
        assert got == REGIONAL_FORM.get((own, (country or "").strip().upper()), own)


def test_enqueue_reports_an_unreadable_scope_file(tmp_path: Path) -> None:
    bad = tmp_path / "affected_customers.parquet"
    bad.write_text("not parquet")
    with Outbox(tmp_path / "state.db") as outbox, pytest.raises(NotificationError, match="affected_customers"):
        outbox.enqueue(INCIDENT_ID, bad, "v1", LANGUAGES, "x.com")


def test_token_bucket_spaces_messages_at_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(5, burst=1, clock=lambda: now[0], sleep=sleep)
    for _ in range(11):
        bucket.take()
    assert now[0] == pytest.approx(2.0)  # 11 messages at 5/s: the first free, then 10 × 0.2 s
    unlimited = TokenBucket(0, clock=lambda: now[0], sleep=sleep)
    before = len(slept)
    for _ in range(1000):
        unlimited.take()
    assert len(slept) == before


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    for attempts in range(1, 12):
        delay = backoff(attempts, 30, 3600, rng)
        nominal = min(3600, 30 * 2 ** (attempts - 1))
        assert 0.5 * nominal <= delay < 1.5 * nominal


def test_parse_hostport() -> None:
    assert parse_hostport("mail.example.com:587") == ("mail.example.com", 587)
    assert parse_hostport("[::1]:25") == ("::1", 25)
    for bad in ("mail.example.com", ":25", "host:0", "host:smtp"):
        with pytest.raises(NotificationError, match="HOST:PORT"):
            parse_hostport(bad)


def test_delivered_ids_from_logs_mailboxes_and_lists(tmp_path: Path) -> None:
    f = tmp_path / "evidence"
    f.write_text("Mar  6 10:00:01 mx postfix/cleanup[1]: 4XyZ: message-id=<a1@maison-exemple.com>\n"
                 "Message-ID: <b2@maison-exemple.com>\n<c3@maison-exemple.com>\nnoise <not an id> x@y\n")
    assert read_delivered_ids(f) == {"<a1@maison-exemple.com>", "<b2@maison-exemple.com>", "<c3@maison-exemple.com>"}
    with pytest.raises(NotificationError, match="cannot read"):
        read_delivered_ids(tmp_path / "missing")
