"""The GDPR Art. 33 regulator report, in phases, and the decisions recorded in the breach register.

:func:`report_context` gathers what Art. 33(3) asks for from the incident, its scope (``scope.json``)
and its journal:

(a) the nature of the breach, the categories and approximate numbers of data subjects and of
    personal-data records concerned — by category and by country of residence;
(b) the contact point (controller, DPO);
(c) the likely consequences, derived from the categories exposed and the share of high spenders;
(d) the measures taken (journal, done tasks) and proposed (open tasks, defaults, ``--proposed``).

It also states the clocks, whether the report is late and why (Art. 33(1)), and — for a
``complementary`` report (Art. 33(4)) — the earlier filings it completes. :func:`render` turns the
context into Markdown or print-ready HTML with the versioned Jinja2 templates under
``templates/report/<version>/``; :func:`file_report` writes the document, appends a ``report``
entry to the breach register and journals ``report``. :func:`decide` records a decision to notify
or not (with its reason) in the register and the journal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import jinja2
import pycountry

from crmguard.errors import ResponseError
from crmguard.response.incidents import PLACEHOLDER, Incident, IncidentStore, iso, parse_time
from crmguard.response.register import BreachRegister, RegisterEntry

TEMPLATE_VERSION = "v1"
TEMPLATES = Path(__file__).parent / "templates" / "report"
Phase = Literal["initial", "complementary"]
Format = Literal["md", "html"]

SUBJECT_CATEGORIES = {"Contact": "customers", "Account": "customers", "Lead": "prospects (leads)",
                      "Case": "customers who contacted customer service", "User": "staff"}
COLUMN_CATEGORIES = {"FirstName": "identity (name)", "LastName": "identity (name)", "Email": "contact details (e-mail address)",
                     "Phone": "contact details (phone number)", "MailingStreet": "postal address",
                     "MailingCity": "postal address", "MailingPostalCode": "postal address",
                     "MailingCountry": "postal address", "TotalSpend": "purchase history (lifetime spend)",
                     "Brand": "customer relationship (brand)", "Language": "language preference"}
CONSEQUENCES = {
    "contact details (e-mail address)": "Phishing and spear-phishing e-mails that impersonate the brands, made "
                                        "convincing by the customer's name, brand and purchase level.",
    "contact details (phone number)": "Fraudulent calls and text messages (vishing, smishing) and SIM-swap attempts "
                                      "against the customers' mobile numbers.",
    "postal address": "Fraudulent letters or deliveries, and physical targeting of customers known to own luxury goods.",
    "purchase history (lifetime spend)": "Targeting of the highest spenders, who are the most valuable to fraudsters.",
    "date of birth": "Identity theft, where the date of birth is used to answer identity checks.",
    "customer-service case contents (free text)": "Disclosure of whatever customers wrote to customer service.",
    "staff account data": "Targeted phishing of staff to gain further access.",
}
DEFAULT_PROPOSED = [
    "Inform the affected customers without undue delay (Art. 34), with advice on phishing, vishing and SIM-swap.",
    "Revoke the OAuth tokens and connected apps used in the attack; reset the credentials and MFA factors involved.",
    "Restrict API access of integration and analyst accounts to known networks and monitor for further access.",
]
ACTION_TEXT = {
    "open": "Incident opened", "aware": "Breach confirmed (awareness recorded)", "scope": "Affected customers scoped",
    "observe": "Observables updated", "controller": "Contact point updated", "task_add": "Task added",
    "task_done": "Task done", "task_open": "Task reopened", "note": "Note", "close": "Incident closed",
    "report": "Regulator report filed", "decide": "Notification decision recorded",
}


def _country_name(code: str) -> str:
    found = pycountry.countries.get(alpha_2=code) if len(code) == 2 else None
    return found.name if found else code


def load_scope(folder: Path) -> dict[str, Any] | None:
    """The incident's ``scope.json`` (written by ``incident scope``), or None before scoping."""
    path = folder / "scope.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _subjects(scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Data-subject categories with approximate numbers: customers (the bracket), other objects' records."""
    c = scope["customers"]
    rows = [{"category": "customers", "lower": c["lower"], "upper": c["upper"], "exact": c["exact"],
             "estimate": c["is_estimate"]}]
    for o in scope["tables"]["objects"]:
        if o["object"] in ("Contact", "Account"):
            continue
        rows.append({"category": SUBJECT_CATEGORIES.get(o["object"], o["object"]), "lower": o["records_lower"],
                     "upper": o["records_upper"], "exact": o["records_exact"], "estimate": not o["exact"]})
    return rows


def _data_categories(scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Categories of personal data with the records exposing them (bracketed) and the customers."""
    objects = {o["object"]: o for o in scope["tables"]["objects"]}
    per: dict[tuple[str, str], dict[str, Any]] = {}
    for f in scope["tables"]["fields"]:
        if f["category"] == "other":
            continue
        key = (f["category"], f["object"])
        cur = per.setdefault(key, {"lower": 0, "upper": 0, "assumed": True})
        o = objects.get(f["object"], {"records_lower": 0, "records_upper": 0})
        lower = max(f["records_exact"], o["records_lower"] if f["via_estimate"] else 0)
        upper = max(f["records_exact"] + (o["records_upper"] - o["records_exact"] if f["via_estimate"] else 0), lower)
        cur["lower"], cur["upper"] = max(cur["lower"], lower), max(cur["upper"], upper)
        cur["assumed"] = cur["assumed"] and f["field_estimated"]
    customers: dict[str, dict[str, int]] = {}
    for r in scope["tables"]["customer_fields"]:
        cat = COLUMN_CATEGORIES.get(r["column"])
        if cat:
            cur = customers.setdefault(cat, {"exact": 0, "candidates": 0})
            cur["exact"], cur["candidates"] = max(cur["exact"], r["exact"]), max(cur["candidates"], r["candidates"])
    out: dict[str, dict[str, Any]] = {}
    for (cat, obj), v in sorted(per.items()):
        row = out.setdefault(cat, {"category": cat, "objects": [], "records_lower": 0, "records_upper": 0,
                                   "assumed": True, "customers_exact": 0, "customers_candidates": 0})
        row["objects"].append(obj)
        row["records_lower"] += v["lower"]
        row["records_upper"] += v["upper"]
        row["assumed"] = row["assumed"] and v["assumed"]
    for cat, v in customers.items():
        if cat in out:
            out[cat]["customers_exact"], out[cat]["customers_candidates"] = v["exact"], v["candidates"]
    return sorted(out.values(), key=lambda r: (-r["records_upper"], r["category"]))


def _measures(inc: Incident) -> list[dict[str, str]]:
    taken = []
    for j in inc.journal:
        if j.result != "ok" or j.action.startswith("report"):
            continue
        text = ACTION_TEXT.get(j.action, j.action.replace("_", " ").replace(".", ": "))
        if j.action.startswith("task_"):
            task = next((t for t in inc.tasks if t.number == j.detail.get("task")), None)
            text += f": {task.title}" if task else ""
        elif j.action == "note":
            text += f": {j.detail.get('what', '')}"
        elif j.action == "scope":
            c = j.detail.get("customers", {})
            text += f" ({c.get('exact', 0)} exact" + (f", {c.get('lower')}–{c.get('upper')} estimated" if c.get("is_estimate") else "") + ")"
        taken.append({"at": j.at, "who": j.who, "what": text})
    return taken


def report_context(inc: Incident, scope: dict[str, Any] | None, phase: Phase, now: dt.datetime,
                   previous: list[RegisterEntry], late_reason: str | None = None, proposed: list[str] | None = None,
                   nature: str | None = None) -> dict[str, Any]:
    """Everything the report templates show (plain data, no PII). ``previous`` are the incident's
    earlier register entries (for a complementary report's references)."""
    late = phase == "initial" and inc.late(now)
    obs = inc.observables
    auto_nature = (
        f"Confidentiality breach: customer records in the Salesforce CRM were read by "
        f"{', '.join(obs.users) or 'unidentified accounts'}"
        + (f" from {len(obs.ips)} IP address{'es' if len(obs.ips) != 1 else ''}" if obs.ips else "")
        + (f" through {', '.join(obs.apps[:3])}" if obs.apps else "")
        + (f", between {inc.breach_start} and {inc.breach_end} (UTC)." if inc.breach_start else ".")
    )
    countries = []
    if scope:
        countries = [{"code": r["country"], "name": _country_name(r["country"]), "exact": r["exact"],
                      "candidates": r["candidates"]} for r in scope["tables"]["country"]]
    categories = _data_categories(scope) if scope else []
    consequences = [CONSEQUENCES[c["category"]] for c in categories if c["category"] in CONSEQUENCES]
    tiers = {r["spend_tier"]: r for r in scope["tables"]["spend_tier"]} if scope else {}
    high = sum(tiers.get(t, {}).get("exact", 0) for t in ("top-1%", "top-10%"))
    if high:
        consequences.insert(0, f"{high} affected customer{' is' if high == 1 else 's are'} among the 10% highest spenders "
                               f"({tiers.get('top-1%', {}).get('exact', 0)} among the top 1%): the likely targets "
                               "of the spear-phishing and SIM-swap attempts that follow such thefts.")
    reports = [p for p in previous if p.kind == "report"]
    return {
        "version": TEMPLATE_VERSION,
        "phase": phase,
        "generated_at": iso(now),
        "incident": inc.model_dump(exclude={"journal", "timeline"}),
        "controller": inc.controller.model_dump(),
        "controller_unset": inc.controller.unset(),
        "placeholder": PLACEHOLDER,
        "clocks": {k: getattr(inc, k) for k in ("breach_start", "breach_end", "detected_at", "aware_at", "deadline")},
        "aware_by": inc.aware_by,
        "hours_since_aware": round((now - parse_time(inc.aware_at)).total_seconds() / 3600, 1) if inc.aware_at else None,
        "late": late,
        "late_reason": late_reason,
        "nature": nature or auto_nature,
        "scope": scope and {"customers": scope["customers"], "records": scope["records"], "window": scope["window"],
                            "export": Path(scope["customers_export"]["path"]).name,
                            "export_sha256": scope["customers_export"]["sha256"], "scoped_at": scope["scoped_at"]},
        "subjects": _subjects(scope) if scope else [],
        "categories": categories,
        "countries": countries,
        "tiers": [{"tier": t, **tiers[t]} for t in ("top-1%", "top-10%", "other") if t in tiers],
        "consequences": consequences,
        "taken": _measures(inc),
        "proposed": [t.title for t in inc.tasks if t.status == "open"] + DEFAULT_PROPOSED + list(proposed or []),
        "previous": [p.model_dump(include={"seq", "recorded_at", "phase", "document_sha256", "late"}) for p in reports],
        "decisions": [p.model_dump(include={"seq", "recorded_at", "decision", "audience", "reason", "who"})
                      for p in previous if p.kind == "decision"],
        "pending": [] if scope else ["The affected customers and records have not been scoped yet; numbers follow "
                                     "in a complementary report."],
    }


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES / TEMPLATE_VERSION), undefined=jinja2.StrictUndefined,
                              autoescape=jinja2.select_autoescape(["html.j2"]), keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True)


def render(context: dict[str, Any], fmt: Format) -> str:
    """Render the report ``context`` as Markdown (``md``) or print-ready HTML (``html``)."""
    if fmt not in ("md", "html"):
        raise ResponseError(f"unknown report format {fmt!r} (md or html)", field="format")
    env = _env()
    env.filters["n"] = lambda v: f"{v:,}" if isinstance(v, int) else v
    return env.get_template(f"report.{fmt}.j2").render(**context)


def file_report(store: IncidentStore, register: BreachRegister, incident_id: str, phase: Phase, fmt: Format, who: str,
                out: Path | None = None, late_reason: str | None = None, proposed: list[str] | None = None,
                nature: str | None = None, draft: bool = False) -> tuple[Path, dict[str, Any], RegisterEntry | None]:
    """Render the ``phase`` report of the incident to ``out`` (default: the incident folder,
    ``report-<phase>.<fmt>``); unless ``draft``, append a ``report`` entry to the register and
    journal it. Filing needs awareness recorded, and an initial report after the 72 h deadline
    needs ``late_reason`` (refusals are journaled). Returns the path, the context and the entry."""
    inc = store.require(incident_id)
    now = store.now()
    if not draft and not inc.aware_at:
        store.journal(inc.id, "report", who, "refused", {"phase": phase, "reason": "awareness not recorded"})
        raise ResponseError(f"record awareness first (crmguard incident aware {inc.id} --by NAME): the report states "
                            "when the controller became aware")
    if not draft and phase == "initial" and inc.late(now) and not (late_reason or "").strip():
        store.journal(inc.id, "report", who, "refused", {"phase": phase, "reason": "late without --late-reason",
                                                         "deadline": inc.deadline})
        raise ResponseError(f"the 72 h deadline ({inc.deadline}) has passed: give the reasons for the delay "
                            "(--late-reason), GDPR Art. 33(1)", field="late_reason")
    previous = register.entries(inc.id)
    if not draft and phase == "complementary" and not any(p.kind == "report" and p.phase == "initial" for p in previous):
        store.journal(inc.id, "report", who, "refused", {"phase": phase, "reason": "no initial report filed"})
        raise ResponseError(f"file the initial report of {inc.id} first: a complementary report completes it (Art. 33(4))")
    folder = store.folder(inc.id)
    scope = load_scope(folder)
    ctx = report_context(inc, scope, phase, now, previous, late_reason, proposed, nature)
    text = render(ctx, fmt)
    path = out or folder / f"report-{phase}{'-draft' if draft else ''}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if draft:
        store.journal(inc.id, "report_draft", who, "ok", {"phase": phase, "document": str(path)})
        return path, ctx, None
    digest = hashlib.sha256(text.encode()).hexdigest()
    entry = register.append(
        incident_id=inc.id, kind="report", who=who, phase=phase, late=ctx["late"], late_reason=late_reason if ctx["late"] else None,
        facts={"nature": ctx["nature"], "clocks": ctx["clocks"], "observables": inc.observables.model_dump()},
        effects={"subjects": ctx["subjects"], "categories": [c["category"] for c in ctx["categories"]],
                 "countries": {c["code"]: c["exact"] + c["candidates"] for c in ctx["countries"]}},
        remedial={"taken": [m["what"] for m in ctx["taken"]], "proposed": ctx["proposed"]},
        document=str(path), document_sha256=digest)
    store.timeline(inc.id, now, f"{phase} regulator report filed (register #{entry.seq})" + (" late" if ctx["late"] else ""),
                   "journal")
    store.journal(inc.id, "report", who, "ok", {"phase": phase, "format": fmt, "document": str(path), "sha256": digest,
                                                "register_seq": entry.seq, "late": ctx["late"], "late_reason": late_reason})
    return path, ctx, entry


def decide(store: IncidentStore, register: BreachRegister, incident_id: str, who: str, notify: bool, reason: str | None,
           audience: Literal["authority", "subjects"] = "authority") -> RegisterEntry:
    """Record a decision to notify (or not) the supervisory ``authority`` (Art. 33) or the data
    ``subjects`` (Art. 34) in the register and the journal; not notifying needs a reason."""
    inc = store.require(incident_id)
    decision = ("notify-" if notify else "no-notify-") + audience
    if not notify and not (reason or "").strip():
        store.journal(inc.id, "decide", who, "refused", {"decision": decision, "reason": "no reason given"})
        raise ResponseError("a decision not to notify needs its reason (--reason)", field="reason")
    scope = load_scope(store.folder(inc.id))
    entry = register.append(
        incident_id=inc.id, kind="decision", who=who, decision=decision, audience=audience, reason=reason,
        facts={"title": inc.title, "clocks": {k: getattr(inc, k) for k in ("breach_start", "breach_end", "aware_at")}},
        effects={"customers": scope["customers"] if scope else None},
        remedial={"taken": [m["what"] for m in _measures(inc)]})
    store.timeline(inc.id, store.now(), f"decision: {decision}" + (f" ({reason})" if reason else ""), "journal")
    store.journal(inc.id, "decide", who, "ok", {"decision": decision, "reason": reason, "register_seq": entry.seq})
    return entry

