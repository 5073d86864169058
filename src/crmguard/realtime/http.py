"""HTTP ingest for the watcher: ``POST /v1/events``, ``GET /healthz``, ``GET /metrics``.

A body is a JSON array of records or NDJSON (one record per line), in any JSON format the parsers
know (Okta System Log, Salesforce RTEM events or streaming envelopes, ELF rows as JSON,
SetupAuditTrail). It is checked before anything is written — bearer token (401), size (413,
from Content-Length and again while reading), JSON syntax with the line or record number (400),
the first record's format (422) — then stored durably in the spool and acknowledged with 202 and a
receipt id. An acknowledged body is never lost; the watcher ingests it in its next batch.

JSON array bodies are spooled as NDJSON (records re-serialised, minified) so that every body of a
batch is ingested as one file; event ids do not change, since the parsers hash the minified record.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from crmguard.realtime.metrics import Metrics
from crmguard.realtime.spool import Spool
from crmguard.sources import recognise
from crmguard.sources.staging import UNRECOGNISED

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-seq")
JSON_TYPES = ("application/json",)
DEFAULT_MAX_BODY = 16 << 20


class BadRequest(Exception):
    """A request refused with ``status`` and a JSON body saying why."""

    def __init__(self, status: int, error: str, detail: str, **where: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.body = {"error": error, "detail": detail, **where}


def parse_body(body: bytes, kind: str) -> tuple[list[bytes], bytes]:
    """Split and check a body of ``kind`` (``ndjson`` or ``json``): returns (records as JSON text,
    the bytes to spool as NDJSON). Raises :class:`BadRequest` (400) naming the line or record."""
    if kind == "ndjson":
        records = []
        for n, line in enumerate(body.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise BadRequest(400, "malformed JSON", f"line {n}: {exc}", line=n) from exc
            if not isinstance(value, dict):
                raise BadRequest(400, "not a JSON object", f"line {n} is a JSON {type(value).__name__}, not an object",
                                 line=n)
            records.append(line)
        return records, body
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, "malformed JSON", f"line {exc.lineno}, column {exc.colno}: {exc.msg}",
                         line=exc.lineno, column=exc.colno) from exc
    items = value if isinstance(value, list) else [value]
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise BadRequest(400, "not a JSON object", f"record {n} is a JSON {type(item).__name__}, not an object",
                             record=n)
    records = [orjson.dumps(item) for item in items]
    return records, b"\n".join(records) + b"\n"


def body_kind(content_type: str | None, fmt: str | None, body: bytes) -> str:
    """``ndjson`` or ``json`` from ``?format=``, else the Content-Type, else the first byte.
    Raises :class:`BadRequest` for an unknown format name (400) or a non-JSON media type (415)."""
    if fmt:
        if fmt not in ("ndjson", "json"):
            raise BadRequest(400, "unknown format parameter", f"format must be ndjson or json, not {fmt!r}")
        return fmt
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in NDJSON_TYPES:
        return "ndjson"
    if media and media not in JSON_TYPES and media not in ("text/plain", "application/octet-stream"):
        raise BadRequest(415, "unsupported media type",
                         f"{media} is not JSON: send application/json or application/x-ndjson "
                         "(CSV log files go into the inbox folder)")
    head = body.lstrip()[:1]
    if head == b"[":
        return "json"
    if media in JSON_TYPES:
        # One object, possibly pretty-printed over several lines, or NDJSON sent as application/json.
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            return "ndjson"
        return "json"
    return "ndjson"


def create_app(spool: Spool, metrics: Metrics, token: str | None, max_body: int = DEFAULT_MAX_BODY,
               health: Callable[[], tuple[bool, dict]] | None = None,
               on_accept: Callable[[], None] | None = None) -> FastAPI:
    """The FastAPI app: spools accepted bodies into ``spool`` and counts requests in ``metrics``.
    ``token`` is the bearer token (None: no authentication, loopback use only); ``health`` returns
    (healthy, status document); ``on_accept`` is called after each accepted body."""
    app = FastAPI(title="crmguard watch", docs_url=None, redoc_url=None, openapi_url=None)
    expected = f"Bearer {token}".encode() if token else None

    def refuse(exc: BadRequest) -> JSONResponse:
        metrics.request(exc.status)
        headers = {"WWW-Authenticate": 'Bearer realm="crmguard"'} if exc.status == 401 else None
        return JSONResponse(exc.body, status_code=exc.status, headers=headers)

    @app.post("/v1/events")
    async def post_events(request: Request, format: str | None = None) -> Response:  # noqa: A002
        try:
            if expected is not None:
                given = request.headers.get("authorization", "").encode()
                if not hmac.compare_digest(given, expected):
                    raise BadRequest(401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer ...)")
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_body:
                raise BadRequest(413, "body too large", f"{int(declared):,} bytes declared; the limit is {max_body:,}",
                                 limit=max_body)
            chunks, size = [], 0
            async for part in request.stream():
                size += len(part)
                if size > max_body:
                    raise BadRequest(413, "body too large", f"more than {max_body:,} bytes; the limit is {max_body:,}",
                                     limit=max_body)
                chunks.append(part)
            body = b"".join(chunks)
            if not body.strip():
                raise BadRequest(400, "empty body", "the body holds no records")
            kind = body_kind(request.headers.get("content-type"), format, body)
            records, spooled = parse_body(body, kind)
            if not records:
                raise BadRequest(400, "empty body", "the body holds no records")
            first = orjson.loads(records[0])
            inner = first.get("records")
            if isinstance(inner, list) and inner and isinstance(inner[0], dict):
                first = inner[0]
            if recognise(first) is None:
                raise BadRequest(422, "unknown format", f"record 1: {UNRECOGNISED}", record=1)
        except BadRequest as exc:
            return refuse(exc)
        accepted = spool.put(spooled, "ndjson")
        metrics.request(202, len(records), len(body))
        if on_accept:
            on_accept()
        return JSONResponse({"receipt": accepted.receipt, "records": len(records), "bytes": len(body)},
                            status_code=202)

    @app.get("/healthz")
    def healthz() -> Response:
        ok, doc = health() if health else (True, {"status": "ok"})
        return JSONResponse(doc, status_code=200 if ok else 503)

    @app.get("/metrics")
    def prometheus() -> Response:
        return PlainTextResponse(metrics.prometheus(), media_type="text/plain; version=0.0.4")

    return app


class Server:
    """Runs ``app`` with uvicorn in a background thread on ``host``:``port`` (0: any free port)."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        import uvicorn

        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                     lifespan="off", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="http", daemon=True)

    def start(self, timeout_s: float = 10.0) -> tuple[str, int]:
        """Start serving; returns the (host, port) bound once the socket listens."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"could not listen on {self.config.host}:{self.config.port}")
            time.sleep(0.01)
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return host, port

    def stop(self) -> None:
        """Stop accepting, finish open requests, and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=10)
