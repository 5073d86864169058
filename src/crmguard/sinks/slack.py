"""The Slack incoming-webhook message for an alert: ``text`` (notification fallback) plus Block Kit
``blocks`` (header, section with fields, explanation, context with the alert id and idempotency key)."""

from __future__ import annotations

SEVERITY_EMOJI = {"critical": ":red_circle:", "high": ":large_orange_circle:", "medium": ":large_yellow_circle:",
                  "low": ":large_blue_circle:", "informational": ":white_circle:"}
HEADER_MAX, FIELD_MAX, SECTION_MAX = 150, 2000, 3000
"""Slack's limits for header text, a section field and a section text."""


def _esc(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_message(view: dict) -> dict:
    """Return the Slack message (``text`` + ``blocks``) for an alert view."""
    actor = view["actor"] or "unknown identity"
    severity = view["severity"]
    fields = [("Severity", f"{SEVERITY_EMOJI.get(severity, '')} {severity}".strip()), ("Actor", actor),
              ("Events", f"{view['event_count']:,}"), ("Customer records", f"{view['record_count']:,}"),
              ("First seen", view["first_seen"]), ("Last seen", view["last_seen"])]
    ips = view["context"].get("src_ips") or []
    if ips:
        fields.append(("Source IPs", ", ".join(str(ip) for ip in ips[:5])))
    return {
        "text": _cut(f"[{severity.upper()}] {view['title']} — {actor}", SECTION_MAX),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _cut(view["title"], HEADER_MAX), "emoji": True}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": _cut(f"*{name}*\n{_esc(value)}", FIELD_MAX)}
                                           for name, value in fields]},
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(_esc(view["explanation"]), SECTION_MAX)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _esc(
                f"crmguard alert {view['id']} · rule {view['rule_id']} · key {view['idempotency_key']}")}]},
        ],
    }
