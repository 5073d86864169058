"""A fake Salesforce org over real HTTP on localhost, for containment tests.

It is a test double, kept honest: it answers only what crmguard's containment sends and what the
real API allows for these objects — SOQL ``SELECT <fields> FROM <object> [WHERE f IN (...) [OR ...]]``
on User, UserLogin, OauthToken, AuthSession and ConnectedApplication; ``DELETE`` on AuthSession;
``PATCH`` of ``IsFrozen`` on UserLogin; ``POST /services/oauth2/revoke`` (form ``token=``, the
OauthToken ``DeleteToken`` or an access/refresh token). OauthToken and ConnectedApplication are
read-only, as in Salesforce (DELETE/PATCH answer 405 ``METHOD_NOT_ALLOWED``). Every request is
recorded; :meth:`FakeSalesforce.fail` makes the next matching calls answer an error status.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ID_FIELDS = {"Id", "UserId", "UsersId", "AppMenuItemId"}
TOKEN = "00D5j0000000i98!AQ0AQFakeAdminAccessTokenForTests"
API = "/services/data/v62.0"


@dataclass
class Request:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    body: str

    @property
    def call(self) -> str:
        """``METHOD path`` (with the SOQL's object for queries: ``GET query:AuthSession``)."""
        if self.path.endswith("/query"):
            m = re.search(r"\bFROM\s+(\w+)", self.query.get("q", ""), re.I)
            return f"GET query:{m.group(1) if m else '?'}"
        return f"{self.method} {re.sub(r'/services/data/v[0-9.]+', '', self.path)}"


@dataclass
class Failure:
    method: str
    path_contains: str
    status: int
    times: int
    retry_after: str | None = None
    apply: bool = False


@dataclass
class Org:
    """The org's state the fake serves."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    user_logins: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    loose_tokens: set[str] = field(default_factory=set)
    """Access/refresh tokens the revoke endpoint accepts besides the DeleteTokens."""

    def table(self, sobject: str) -> list[dict[str, Any]]:
        return {"user": list(self.users.values()), "userlogin": list(self.user_logins.values()), "oauthtoken": self.tokens,
                "authsession": list(self.sessions.values()), "connectedapplication": list(self.apps.values())}[sobject.lower()]


class FakeSalesforce:
    """A running fake org: ``url`` to point the client at, ``org`` to seed and inspect,
    ``requests`` to assert on. Use as a context manager (stops the server)."""

    def __init__(self, org: Org | None = None, token: str = TOKEN) -> None:
        self.org = org or Org()
        self.token = token
        self.requests: list[Request] = []
        self.failures: list[Failure] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                status, body, headers = fake._answer(self)
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def __enter__(self) -> FakeSalesforce:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def fail(self, method: str, path_contains: str, status: int, times: int = 1, retry_after: str | None = None,
             apply: bool = False) -> None:
        """Answer ``status`` to the next ``times`` requests of ``method`` whose path (or SOQL) contains
        ``path_contains``; with ``apply`` the request takes effect first (the answer is lost, not the change)."""
        self.failures.append(Failure(method, path_contains, status, times, retry_after, apply))

    def calls(self) -> list[str]:
        """Every request as ``METHOD path`` / ``GET query:<Object>``, in order."""
        return [r.call for r in self.requests]

    # --- the API -----------------------------------------------------------------------------------

    def _answer(self, h: BaseHTTPRequestHandler) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length).decode() if length else ""
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        req = Request(h.command, parts.path, query, raw)
        with self._lock:
            self.requests.append(req)
            if h.headers.get("Authorization") != f"Bearer {self.token}":
                return 401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}], {}
            for f in self.failures:
                if f.times > 0 and f.method == h.command and (f.path_contains in parts.path or f.path_contains in query.get("q", "")):
                    f.times -= 1
                    if f.apply:
                        self._route(req)
                    headers = {"Retry-After": f.retry_after} if f.retry_after else {}
                    return f.status, [{"errorCode": "SERVER_UNAVAILABLE" if f.status >= 500 else "REQUEST_LIMIT_EXCEEDED",
                                       "message": "injected failure"}], headers
            return self._route(req)

    def _route(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        if req.method == "POST" and req.path == "/services/oauth2/revoke":
            return self._revoke(parse_qs(req.body).get("token", [""])[0])
        if req.method == "GET" and req.path == f"{API}/query":
            return self._query(req.query.get("q", ""))
        m = re.fullmatch(rf"{re.escape(API)}/sobjects/(\w+)/([^/]+)", req.path)
        if m:
            sobject, rid = m.group(1), unquote(m.group(2))
            if req.method == "DELETE" and sobject == "AuthSession":
                if self.org.sessions.pop(rid, None) is None:
                    return 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}], {}
                return 204, None, {}
            if req.method == "PATCH" and sobject == "UserLogin":
                fields = json.loads(req.body or "{}")
                if set(fields) != {"IsFrozen"}:
                    return 400, [{"errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE", "message": f"cannot update {sorted(fields)}"}], {}
                if rid not in self.org.user_logins:
                    return 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}], {}
                self.org.user_logins[rid]["IsFrozen"] = bool(fields["IsFrozen"])
                return 204, None, {}
            return 405, [{"errorCode": "METHOD_NOT_ALLOWED", "message": f"HTTP Method '{req.method}' not allowed for {sobject}"}], {}
        return 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}], {}

    def _revoke(self, token: str) -> tuple[int, Any, dict[str, str]]:
        before = len(self.org.tokens)
        self.org.tokens = [t for t in self.org.tokens if t["DeleteToken"] != token]
        if len(self.org.tokens) < before or token in self.org.loose_tokens:
            self.org.loose_tokens.discard(token)
            return 200, None, {}
        return 400, {"error": "invalid_token", "error_description": "invalid token"}, {}

    def _query(self, soql: str) -> tuple[int, Any, dict[str, str]]:
        m = re.fullmatch(r"\s*SELECT\s+(.+?)\s+FROM\s+(\w+)(?:\s+WHERE\s+(.+?))?\s*", soql, re.I | re.S)
        if not m:
            return 400, [{"errorCode": "MALFORMED_QUERY", "message": f"the fake does not parse: {soql}"}], {}
        fields = [f.strip() for f in m.group(1).split(",")]
        try:
            rows = self.org.table(m.group(2))
        except KeyError:
            return 400, [{"errorCode": "INVALID_TYPE", "message": f"sObject type '{m.group(2)}' is not supported."}], {}
        conditions = []
        for cond in re.split(r"\s+OR\s+", m.group(3) or "", flags=re.I) if m.group(3) else []:
            c = re.fullmatch(r"(\w+)\s+IN\s+\((.*)\)", cond.strip(), re.S)
            if not c:
                return 400, [{"errorCode": "MALFORMED_QUERY", "message": f"the fake does not parse: {cond}"}], {}
            values = {v.replace("\\'", "'").replace("\\\\", "\\") for v in re.findall(r"'((?:[^'\\]|\\.)*)'", c.group(2))}
            if c.group(1) in ID_FIELDS:
                # as in Salesforce: ID filters take 15- or 18-character ids, anything else is an error
                bad = [v for v in values if not re.fullmatch(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?", v)]
                if bad:
                    return 400, [{"errorCode": "INVALID_QUERY_FILTER_OPERATOR", "message": f"invalid ID field: {bad[0]}"}], {}
                values = {v[:15] for v in values}
            conditions.append((c.group(1), values))
        hits = [r for r in rows if not conditions or any(_key(f, r.get(f)) in vals for f, vals in conditions)]
        missing = [f for f in fields if rows and f not in rows[0]]
        if missing:
            return 400, [{"errorCode": "INVALID_FIELD", "message": f"No such column '{missing[0]}'"}], {}
        records = [{"attributes": {"type": m.group(2)}, **{f: r.get(f) for f in fields}} for r in hits]
        return 200, {"totalSize": len(records), "done": True, "records": records}, {}


def _key(field: str, value: Any) -> Any:
    return value[:15] if field in ID_FIELDS and isinstance(value, str) else value


def org_from_snapshot(snapshot: dict[str, Any], sessions_per_user: int = 2, users: list[str] | None = None) -> Org:
    """An :class:`Org` seeded from a simulator snapshot (``org/snapshot.json``): its users (a
    UserLogin each, not frozen), connected apps, OAuth tokens (each given a DeleteToken) and
    ``sessions_per_user`` AuthSessions for each of ``users`` (user ids; default every user)."""
    org = Org()
    counter = itertools.count(1)
    for u in snapshot["users"]:
        org.users[u["Id"]] = {"Id": u["Id"], "Username": u["Username"], "IsActive": u.get("IsActive", True)}
        lid = f"0Yw5j{next(counter):013d}"
        org.user_logins[lid] = {"Id": lid, "UserId": u["Id"], "IsFrozen": False}
    for a in snapshot.get("connected_apps", []):
        org.apps[a["Id"]] = {"Id": a["Id"], "Name": a["Name"],
                             "OptionsAllowAdminApprovedUsersOnly": a.get("OptionsAllowAdminApprovedUsersOnly", False)}
    for t in snapshot.get("oauth_tokens", []):
        # OauthToken.Id is documented as always null; tokens are addressed by their DeleteToken.
        org.tokens.append({"Id": None, "DeleteToken": f"dt-{t['Id']}-{next(counter)}", "AppName": t["AppName"],
                           "AppMenuItemId": t.get("AppMenuItemId"), "UserId": t["UserId"],
                           "LastUsedDate": t.get("LastUsedDate"), "UseCount": t.get("UseCount", 0)})
    for uid in users if users is not None else list(org.users):
        for _ in range(sessions_per_user):
            sid = f"0Ak5j{next(counter):013d}"
            org.sessions[sid] = {"Id": sid, "UsersId": uid, "SourceIp": "203.0.113.7", "LoginType": "Application",
                                 "SessionType": "UI"}
    return org
