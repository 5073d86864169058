"""Art. 34 GDPR customer notices: versioned Jinja2 templates per language, rendered to a MIME e-mail.

Templates live in ``templates/notice/<version>/``: ``<lang>.txt.j2`` and ``<lang>.html.j2`` per
language, written natively (not translated at render time), and ``strings.yml`` with each language's
subject, month names and the names of the CRM fields a customer may have had exposed. A language is
available when both of its templates exist. The version is part of the outbox key: a reworded notice
is a new version, so nobody is told twice by the same version and the record says what each customer read.

Which language a customer reads: their own ``language`` when a template exists for it — in the
written form of their country when there is one (Chinese in Hong Kong, Macau and Taiwan is written
in traditional characters: ``zh-Hant``) — else the main language of their ``country``
(:data:`COUNTRY_LANGUAGE`), else English.
"""

from __future__ import annotations

import datetime as dt
import email.charset
import email.utils
import json
from dataclasses import dataclass
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from functools import cache
from pathlib import Path
from typing import Any, Optional

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from crmguard.errors import NotificationError
from crmguard.response.incidents import PLACEHOLDER

TEMPLATE_VERSION = "v1"
"""The template version new notices are rendered with."""

TEMPLATES = Path(__file__).parent / "templates" / "notice"
FALLBACK_LANGUAGE = "en"

COUNTRY_LANGUAGE: dict[str, str] = {
    # One main language per country (ISO 3166-1 alpha-2 → ISO 639-1), used only when the customer's
    # own language has no template. Multilingual countries get the language most of their people read.
    "FR": "fr", "BE": "fr", "LU": "fr", "MC": "fr",
    "IT": "it", "SM": "it", "VA": "it",
    "DE": "de", "AT": "de", "CH": "de", "LI": "de",
    "JP": "ja",
    "CN": "zh", "TW": "zh-Hant", "HK": "zh-Hant", "MO": "zh-Hant",
    "ES": "es", "MX": "es", "AR": "es", "CO": "es", "CL": "es", "PE": "es",
    "GB": "en", "IE": "en", "US": "en", "CA": "en", "AU": "en", "NZ": "en", "SG": "en",
}

REGIONAL_FORM: dict[tuple[str, str], str] = {
    # (language, country) → the form of the language written there, when it is not the default one.
    ("zh", "TW"): "zh-Hant", ("zh", "HK"): "zh-Hant", ("zh", "MO"): "zh-Hant",
}

INCIDENT_FILE = "incident.json"
CUSTOMERS_FILE = "affected_customers.parquet"

# The order fields are listed in a notice: who you are, how to reach you, where you live, what you bought.
FIELD_ORDER = ("FirstName", "LastName", "Email", "Phone", "MailingStreet", "MailingCity", "MailingPostalCode",
               "MailingCountry", "TotalSpend")


class Controller(BaseModel):
    """The data controller's contact point, as the incident records it (a field nobody has set
    yet, ``UNSET`` or empty, reads as None)."""

    model_config = ConfigDict(extra="ignore")

    name: Optional[str] = None
    contact_email: Optional[str] = None
    dpo_email: Optional[str] = None
    phone: Optional[str] = None

    @field_validator("*", mode="before")
    @classmethod
    def _unset_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip() in ("", PLACEHOLDER) else value


class Incident(BaseModel):
    """The parts of ``incident.json`` a notice needs.

    Lenient (``extra="ignore"``): the incident file belongs to the incidents module and grows
    fields notices do not use.
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    title: str
    status: Optional[str] = None
    breach_start: Optional[dt.datetime] = None
    breach_end: Optional[dt.datetime] = None
    detected_at: Optional[dt.datetime] = None
    aware_at: Optional[dt.datetime] = None
    deadline: Optional[dt.datetime] = None
    controller: Controller
    observables: dict[str, Any] = Field(default_factory=dict)

    def require_contact_point(self, path: Path | str) -> None:
        """Raise :class:`NotificationError` (naming ``path`` and the command that fixes it) unless the
        controller has a name and an e-mail contact (DPO or contact point): a notice must say whom
        to ask."""
        c = self.controller
        missing = [f for f, ok in (("name", c.name), ("dpo_email or contact_email", c.dpo_email or c.contact_email))
                   if not ok]
        if missing:
            raise NotificationError(
                f"the controller's {' and '.join(missing)} not set; run `crmguard incident controller {self.id} "
                "--name NAME --contact-email ADDRESS --dpo-email ADDRESS --phone PHONE` first",
                file=str(path), field="controller")


@dataclass(frozen=True)
class Customer:
    """One affected customer as a notice needs them (a row of ``affected_customers.parquet``)."""

    customer_id: str
    first_name: Optional[str]
    last_name: Optional[str]
    email: Optional[str]
    country: Optional[str]
    language: Optional[str]
    brand: Optional[str]
    fields_exposed: tuple[str, ...]
    exact: bool = True


@dataclass(frozen=True)
class Notice:
    """A rendered notice: ``language``, template ``version``, ``subject``, plain ``text`` and ``html``."""

    language: str
    version: str
    subject: str
    text: str
    html: str


def incident_dir(home: Path, incident_id: str) -> Path:
    """Return ``<home>/incidents/<incident_id>`` (not checked)."""
    return Path(home) / "incidents" / incident_id


def require_incident_files(home: Path, incident_id: str) -> tuple[Path, Path]:
    """Return the paths of ``incident.json`` and ``affected_customers.parquet`` for an incident;
    raises :class:`NotificationError` naming the first missing file and the command that makes it."""
    folder = incident_dir(home, incident_id)
    paths = (folder / INCIDENT_FILE, folder / CUSTOMERS_FILE)
    for path in paths:
        if not path.is_file():
            raise NotificationError(
                f"missing; run `crmguard incident scope {incident_id} --customers FILE` first", file=str(path))
    return paths


def load_incident(path: Path) -> Incident:
    """Read and validate ``incident.json`` at ``path``; returns an :class:`Incident`."""
    try:
        return Incident.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise NotificationError(f"not a valid incident file: {str(exc).splitlines()[0]}", file=str(path)) from exc


def template_languages(version: str = TEMPLATE_VERSION) -> tuple[str, ...]:
    """Return the languages that have both a text and an HTML template in ``version``, sorted."""
    folder = TEMPLATES / version
    if not folder.is_dir():
        raise NotificationError(f"no notice templates for version {version!r}", file=str(folder))
    text = {p.name.removesuffix(".txt.j2") for p in folder.glob("*.txt.j2")}
    html = {p.name.removesuffix(".html.j2") for p in folder.glob("*.html.j2")}
    return tuple(sorted(text & html))


def choose_language(language: Optional[str], country: Optional[str], available: tuple[str, ...]) -> str:
    """Return the notice language (a template name) for a customer: ``language`` (ISO 639-1) as
    written in ``country`` (ISO 3166-1 alpha-2) if ``available`` has that form, else ``language``,
    else the main language of ``country``, else English."""
    own = (language or "").strip().lower()[:2]
    where = (country or "").strip().upper()
    for candidate in (REGIONAL_FORM.get((own, where)), own, COUNTRY_LANGUAGE.get(where),
                      (COUNTRY_LANGUAGE.get(where) or "").split("-")[0]):
        if candidate and candidate in available:
            return candidate
    return FALLBACK_LANGUAGE


@cache
def _environment(version: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES / version),
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env


@cache
def _strings(version: str) -> dict[str, Any]:
    path = TEMPLATES / version / "strings.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _is_cjk(text: str) -> bool:
    return any("\u3040" <= ch <= "\u30ff" or "\u3400" <= ch <= "\u9fff" for ch in text)


def display_name(first: Optional[str], last: Optional[str], language: str) -> str:
    """Return the customer's name as a letter in ``language`` addresses them: a Japanese or Chinese
    name is written family name first with no space in those languages; any other name given name
    first; '' if unknown."""
    first, last = (first or "").strip(), (last or "").strip()
    if language.split("-")[0] in ("ja", "zh") and _is_cjk(first + last):
        return "".join(p for p in (last, first) if p)
    return " ".join(p for p in (first, last) if p)


def _date(value: Optional[dt.datetime], strings: dict[str, Any]) -> str:
    if value is None:
        return ""
    day = value.astimezone(dt.UTC)
    month = strings["months"][day.month - 1]
    return strings["date"].format(d=day.day, m=day.month, y=day.year, month=month)


class NoticeRenderer:
    """Renders notices with one template version; construct once, call :meth:`render` per customer."""

    def __init__(self, version: str = TEMPLATE_VERSION) -> None:
        self.version = version
        self.languages = template_languages(version)
        self.env = _environment(version)
        self.strings = _strings(version)
        missing = [lang for lang in self.languages if lang not in self.strings]
        if missing:
            raise NotificationError(f"no strings for {', '.join(missing)}", file=str(TEMPLATES / version / "strings.yml"))

    def fields(self, fields_exposed: tuple[str, ...] | list[str], language: str) -> list[str]:
        """Return the exposed CRM fields as names a reader of ``language`` understands, in reading order
        (known fields first, unknown API names kept as they are so nothing exposed goes unmentioned)."""
        labels = self.strings[language]["fields"]
        known = [f for f in FIELD_ORDER if f in fields_exposed]
        other = sorted({f for f in fields_exposed if f not in FIELD_ORDER})
        return [labels[f] for f in known] + other

    def render(self, incident: Incident, customer: Customer, language: str) -> Notice:
        """Render the notice for ``customer`` about ``incident`` in ``language`` (one of
        :attr:`languages`); returns a :class:`Notice` with subject, text and HTML."""
        if language not in self.languages:
            raise NotificationError(f"no {self.version} notice template for language {language!r}")
        strings = self.strings[language]
        brand = (customer.brand or "").strip() or incident.controller.name or ""
        context = {
            "incident": incident,
            "controller": incident.controller,
            "customer": customer,
            "name": display_name(customer.first_name, customer.last_name, language),
            "brand": brand,
            "fields": self.fields(customer.fields_exposed, language),
            "exposed": set(customer.fields_exposed),
            "exact": customer.exact,
            "start": _date(incident.breach_start, strings),
            "end": _date(incident.breach_end, strings),
            "detected": _date(incident.detected_at or incident.aware_at, strings),
            "version": self.version,
        }
        subject = strings["subject"].format(brand=brand)
        text = self.env.get_template(f"{language}.txt.j2").render(context)
        html = self.env.get_template(f"{language}.html.j2").render({**context, "subject": subject})
        return Notice(language, self.version, subject, text, html)


# Latin text stays readable on the wire as quoted-printable; CJK text is shorter in base64.
_QP = email.charset.Charset("utf-8")
_QP.body_encoding = email.charset.QP
_B64 = email.charset.Charset("utf-8")


def build_message(notice: Notice, *, sender: str, recipient: str, message_id: str,
                  reply_to: Optional[str] = None, date: Optional[dt.datetime] = None) -> Message:
    """Return the notice as a UTF-8 multipart/alternative message (text, then HTML), 7-bit clean
    (RFC 2047 headers, quoted-printable or base64 bodies), with ``Message-ID`` set to ``message_id``
    and ``Content-Language`` to the notice's language.

    Built with the ``email.mime`` classes (compat32 policy), which build a message several times
    faster than ``EmailMessage``'s header registry: this runs once per customer."""
    charset = _B64 if notice.language.split("-")[0] in ("ja", "zh") else _QP
    msg = MIMEMultipart("alternative")
    name, address = email.utils.parseaddr(sender)
    msg["From"] = email.utils.formataddr((name, address), charset="utf-8")
    msg["To"] = recipient
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = notice.subject if notice.subject.isascii() else Header(notice.subject, "utf-8", header_name="Subject")
    msg["Date"] = email.utils.format_datetime(date or dt.datetime.now(dt.UTC))
    msg["Message-ID"] = message_id
    msg["Content-Language"] = notice.language
    msg.attach(MIMEText(notice.text, "plain", charset))
    msg.attach(MIMEText(notice.html, "html", charset))
    return msg
