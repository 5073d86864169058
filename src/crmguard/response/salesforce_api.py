"""A small Salesforce REST client for containment: SOQL queries, sObject DELETE/PATCH and the OAuth
revoke endpoint, over httpx.

The instance URL is the org's My Domain (``https://acme.my.salesforce.com``); the bearer token is
an access token of an admin with Manage Users and Customize Application, read from an environment
variable or a file (never from the command line, where it would land in the shell history).
Server errors (5xx) and rate limiting (429) are retried with exponential backoff (``Retry-After``
honoured, capped); every other failure raises :class:`SalesforceApiError` naming the call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

import httpx

from crmguard.errors import ConfigError, SalesforceApiError

DEFAULT_API_VERSION = "62.0"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


@dataclass(frozen=True)
class ApiResponse:
    """One answered call: what was called, the HTTP status and the decoded JSON body (or None)."""

    call: str
    status: int
    body: Any


def read_token(token_env: Optional[str], token_file: Optional[str]) -> str:
    """Return the bearer token from ``token_file`` (first line) or else the environment variable
    ``token_env``; raises :class:`ConfigError` naming the source when it is missing or empty."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip().splitlines()[0:1]
        except OSError as exc:
            raise ConfigError(f"cannot read the token file: {exc.strerror}", file=token_file) from exc
        if not token or not token[0].strip():
            raise ConfigError("the token file is empty", file=token_file)
        return token[0].strip()
    name = token_env or "SALESFORCE_ACCESS_TOKEN"
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"no Salesforce access token: environment variable {name} is not set (or use --token-file)")
    return value


class SalesforceClient:
    """REST client for one org. ``transport`` and ``sleep`` are for tests; ``backoff`` is the first
    retry delay in seconds (doubled each retry), ``retries`` how many times a 5xx/429 is retried."""

    def __init__(self, instance_url: str, token: str, *, api_version: str = DEFAULT_API_VERSION, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 1.0, transport: Optional[httpx.BaseTransport] = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not instance_url.startswith(("https://", "http://")):
            raise ConfigError(f"the instance URL must start with https:// (got {instance_url!r})")
        self.instance_url = instance_url.rstrip("/")
        self.api_version = api_version.lstrip("v")
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._http = httpx.Client(base_url=self.instance_url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def data_path(self) -> str:
        """``/services/data/vXX.X``: the REST API root for the configured version."""
        return f"/services/data/v{self.api_version}"

    def request(self, method: str, path: str, *, json_body: Any = None, form: dict[str, str] | None = None,
                params: dict[str, str] | None = None, ok: tuple[int, ...] = (200, 201, 204)) -> ApiResponse:
        """Send one call (retrying 5xx/429) and return it when its status is in ``ok``; raise
        :class:`SalesforceApiError` naming ``METHOD path`` otherwise (401: the token was refused)."""
        call = f"{method} {path}"
        attempt = 0
        while True:
            try:
                resp = self._http.request(method, path, json=json_body, data=form, params=params)
            except httpx.TimeoutException as exc:
                error: SalesforceApiError | None = SalesforceApiError(f"timed out ({type(exc).__name__})", call=call)
                resp = None
            except httpx.TransportError as exc:
                error = SalesforceApiError(f"no answer from {self.instance_url}: {exc}", call=call)
                resp = None
            else:
                error = None
            if resp is not None and resp.status_code in ok:
                return ApiResponse(call, resp.status_code, _body(resp))
            retryable = resp is None or resp.status_code in RETRY_STATUSES
            if not retryable or attempt >= self.retries:
                if error is not None:
                    raise error
                assert resp is not None
                raise _api_error(call, resp)
            self._sleep(_delay(resp, self.backoff * 2 ** attempt))
            attempt += 1

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Run a SOQL query (following ``nextRecordsUrl``) and return the records without their
        ``attributes`` key."""
        first = self.request("GET", f"{self.data_path}/query", params={"q": soql})
        records, body = [], first.body or {}
        while True:
            records += [{k: v for k, v in r.items() if k != "attributes"} for r in body.get("records", [])]
            if body.get("done", True) or not body.get("nextRecordsUrl"):
                return records
            body = self.request("GET", body["nextRecordsUrl"]).body or {}

    def delete(self, sobject: str, record_id: str) -> ApiResponse:
        """``DELETE /sobjects/<sobject>/<id>``; a record already gone (404) is returned, not raised,
        so callers can treat it as done."""
        return self.request("DELETE", f"{self.data_path}/sobjects/{sobject}/{quote(record_id, safe='')}", ok=(200, 204, 404))

    def update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> ApiResponse:
        """``PATCH /sobjects/<sobject>/<id>`` with ``fields``."""
        return self.request("PATCH", f"{self.data_path}/sobjects/{sobject}/{quote(record_id, safe='')}", json_body=fields)

    def revoke(self, token: str) -> ApiResponse:
        """``POST /services/oauth2/revoke`` with ``token`` (an access, refresh or OauthToken
        DeleteToken). 400 ``invalid_token`` (already revoked or unknown) is returned, not raised."""
        return self.request("POST", "/services/oauth2/revoke", form={"token": token}, ok=(200, 400))


def _body(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text[:500]


def _delay(resp: httpx.Response | None, default: float) -> float:
    if resp is not None and (after := resp.headers.get("Retry-After")):
        try:
            return min(float(after), MAX_RETRY_AFTER)
        except ValueError:
            pass
    return default


def _api_error(call: str, resp: httpx.Response) -> SalesforceApiError:
    body = _body(resp)
    # Salesforce answers errors as [{"errorCode": ..., "message": ...}] (REST) or {"error": ...} (OAuth).
    if isinstance(body, list) and body and isinstance(body[0], dict):
        detail = f"{body[0].get('errorCode', '')}: {body[0].get('message', '')}"
    elif isinstance(body, dict):
        detail = f"{body.get('error', '')}: {body.get('error_description', '')}"
    else:
        detail = str(body or resp.reason_phrase)
    if resp.status_code == 401:
        detail = f"the access token was refused ({detail.strip(': ')}); get a fresh token for an admin user"
    elif resp.status_code == 403:
        detail = f"not allowed ({detail.strip(': ')}); the user needs Manage Users and Customize Application"
    return SalesforceApiError(detail.strip(": ") or resp.reason_phrase, call=call, status=resp.status_code, body=str(body)[:500])


def soql_list(values: list[str]) -> str:
    """A SOQL ``IN`` list: ``('a', 'b')`` with quotes and backslashes escaped."""
    return "(" + ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values) + ")"
