"""What each customer reads: the v1 notice of every language, text and HTML, pinned as snapshots.

Refresh after an intended change of the templates with:
    CRMGUARD_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/response/test_notice_snapshots.py
(then read the diff: it is the text customers will receive; a reworded notice needs a new version).
"""

from __future__ import annotations

import os
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from notify_fixtures import ALL_FIELDS, INCIDENT

from crmguard.response.notices import Customer, Incident, NoticeRenderer, build_message

HERE = Path(__file__).parent
RENDERER = NoticeRenderer("v1")
INC = Incident.model_validate(INCIDENT)

# A fixed customer per language, named as a native speaker would be.
PEOPLE = {
    "en": ("Emma", "Clarke", "GB"), "fr": ("Camille", "Martin", "FR"), "it": ("Giulia", "Rossi", "IT"),
    "de": ("Jonas", "Müller", "DE"), "es": ("Lucía", "García", "ES"), "ja": ("花子", "佐藤", "JP"),
    "zh": ("伟", "王", "CN"), "zh-Hant": ("美玲", "陳", "HK"),
}


def _customer(language: str, **changes: object) -> Customer:
    first, last, country = PEOPLE[language]
    values = dict(customer_id="003Q000001AbCdE", first_name=first, last_name=last, email="customer@example.org",
                  country=country, language=language, brand="Maison A", fields_exposed=tuple(ALL_FIELDS), exact=True)
    values.update(changes)
    return Customer(**values)  # type: ignore[arg-type]


def test_every_required_language_has_a_template() -> None:
    assert {"en", "fr", "it", "de", "ja", "zh"} <= set(RENDERER.languages)
    assert set(PEOPLE) == set(RENDERER.languages), "add a snapshot person for each new language"


@pytest.mark.parametrize("language", sorted(PEOPLE))
@pytest.mark.parametrize("part", ["txt", "html"])
def test_notice_snapshot(language: str, part: str) -> None:
    notice = RENDERER.render(INC, _customer(language), language)
    rendered = f"Subject: {notice.subject}\n\n{notice.text}" if part == "txt" else notice.html
    snapshot = HERE / "snapshots" / f"notice_v1_{language}.{part}"
    if os.environ.get("CRMGUARD_UPDATE_SNAPSHOTS"):
        snapshot.write_text(rendered, encoding="utf-8")
    assert rendered == snapshot.read_text(encoding="utf-8")


@pytest.mark.parametrize("language", sorted(PEOPLE))
def test_notice_lists_exactly_the_exposed_fields_in_the_customers_language(language: str) -> None:
    labels = RENDERER.strings[language]["fields"]
    notice = RENDERER.render(INC, _customer(language, fields_exposed=("Email", "MailingCity")), language)
    for name, label in labels.items():
        listed = any(line.strip(" -・·") == label for line in notice.text.splitlines())
        assert listed == (name in ("Email", "MailingCity")), (name, label)
        assert (f"<li>{label}</li>" in notice.html) == (name in ("Email", "MailingCity"))
    # No phone exposed: no SIM-swap advice; the brand never asks for codes: always said.
    assert "SIM" not in notice.text
    assert "Maison A" in notice.text and INC.controller.dpo_email in notice.text and INC.id in notice.text


def test_possible_exposure_is_worded_as_possible() -> None:
    sure = RENDERER.render(INC, _customer("en"), "en").text
    maybe = RENDERER.render(INC, _customer("en", exact=False), "en").text
    assert "was exposed" in sure and "may have been exposed" not in sure
    assert "may have been exposed" in maybe and "may have copied" in maybe


def test_names_and_fields_are_escaped_in_html_only() -> None:
    notice = RENDERER.render(INC, _customer("en", first_name="<b>Eve</b>", fields_exposed=("Email", "<x>")), "en")
    assert "&lt;b&gt;Eve&lt;/b&gt;" in notice.html and "<b>Eve</b>" not in notice.html
    assert "&lt;x&gt;" in notice.html
    assert "Dear <b>Eve</b> Clarke," in notice.text


def test_japanese_and_chinese_names_family_name_first() -> None:
    assert RENDERER.render(INC, _customer("ja"), "ja").text.startswith("佐藤花子 様")
    assert RENDERER.render(INC, _customer("zh"), "zh").text.startswith("尊敬的王伟：")
    assert RENDERER.render(INC, _customer("zh-Hant"), "zh-Hant").text.startswith("親愛的陳美玲：")
    latin = RENDERER.render(INC, _customer("ja", first_name="Jeanne", last_name="Dupont"), "ja").text
    assert latin.startswith("Jeanne Dupont 様")


def test_missing_incident_dates_still_read_well() -> None:
    bare = Incident.model_validate({**INCIDENT, "breach_start": None, "breach_end": None, "detected_at": None,
                                    "aware_at": None})
    for language in PEOPLE:
        notice = RENDERER.render(bare, _customer(language), language)
        march = RENDERER.strings[language]["months"][2]
        assert march not in notice.text and march not in notice.html
        assert "{" not in notice.text and "  ." not in notice.text


@pytest.mark.parametrize("language", sorted(PEOPLE))
def test_message_is_utf8_multipart_alternative_with_language_and_id(language: str) -> None:
    notice = RENDERER.render(INC, _customer(language), language)
    msg = build_message(notice, sender="Maison A <notices@maison-exemple.com>", recipient="customer@example.org",
                        message_id="<abc@maison-exemple.com>", reply_to="privacy@maison-exemple.com")
    raw = msg.as_bytes()
    raw.decode("ascii")  # 7-bit clean on the wire: headers RFC 2047, bodies QP/base64
    back = message_from_bytes(raw, policy=policy.default)
    assert back.get_content_type() == "multipart/alternative"
    assert back["Subject"] == notice.subject and back["Content-Language"] == language
    assert back["Message-ID"] == "<abc@maison-exemple.com>"
    text, html = (p for p in back.iter_parts())
    assert text.get_content_type() == "text/plain" and text.get_content_charset() == "utf-8"
    assert text.get_content() == notice.text and html.get_content() == notice.html
