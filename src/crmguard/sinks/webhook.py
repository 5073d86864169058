"""Webhook sinks: POST a JSON payload with an ``Idempotency-Key`` header.

The generic payload is the alert view itself (:func:`crmguard.sinks.payload.alert_view`); the Slack
sink posts :func:`crmguard.sinks.slack.slack_message` to the same kind of endpoint. Any 2xx is
delivered; anything else, a timeout or a refused connection is a failed attempt to retry (a 4xx
too: the URL or token may be fixed while the alert waits). Redirects are not followed, so a
misconfigured URL shows up as a failure rather than an alert posted somewhere else.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson

from crmguard import __version__
from crmguard.sinks.config import SinksConfig, SlackSink, WebhookSink
from crmguard.sinks.payload import SendFailed


def generic_payload(view: dict) -> dict:
    """The generic webhook body: the alert view as is (includes ``idempotency_key``)."""
    return view


class HttpSender:
    """Posts payloads for one webhook or Slack sink over one keep-alive connection."""

    def __init__(self, sink: WebhookSink | SlackSink, config: SinksConfig, payload: Callable[[dict], dict]) -> None:
        self.sink = sink
        self.payload = payload
        self.url = sink.url or config.secret(sink.url_env) or ""
        self.headers = {"Content-Type": "application/json", "User-Agent": f"crmguard/{__version__}", **sink.headers}
        token = config.secret(sink.bearer_token_env)
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(timeout=sink.timeout.total_seconds(), follow_redirects=False)

    def send(self, view: dict) -> str:
        """POST the payload for ``view``; returns ``HTTP <status>``, raises ``SendFailed``."""
        body = orjson.dumps(self.payload(view))
        try:
            response = self.client.post(self.url, content=body,
                                        headers={**self.headers, "Idempotency-Key": view["idempotency_key"]})
        except httpx.HTTPError as exc:
            # the URL may carry a secret (Slack): name the error kind, not the request
            raise SendFailed(f"{type(exc).__name__}: {_first_line(exc)}", sink=self.sink.name) from None
        if not 200 <= response.status_code < 300:
            raise SendFailed(f"HTTP {response.status_code}: {response.text[:200]}", sink=self.sink.name,
                             retry_after=_retry_after(response.headers.get("Retry-After")))
        return f"HTTP {response.status_code}"

    def close(self) -> None:
        """Close the connection."""
        self.client.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP-date: our own backoff is close enough
