"""Containment: the plan of Salesforce calls that cut the attacker off, and its executor.

Steps, in order (each verified by re-querying Salesforce after it ran):

1. ``evidence`` — export the incident and save the current Salesforce state (User, OauthToken,
   AuthSession, UserLogin, ConnectedApplication rows of the incident's users, IPs and apps) as JSON
   under ``<home>/incidents/<ID>/evidence/``, SHA-256 of each file in the journal. OauthToken
   ``DeleteToken`` values are replaced by their SHA-256 (they can revoke a grant). One folder per
   capture (``evidence/<UTC time>-<targets fingerprint>/``).
2. ``block_app`` — a **manual** step: Salesforce has no REST call that blocks a connected app
   (ConnectedApplication is read-only in the REST/SOAP API; "Block" lives in Setup → Connected Apps
   OAuth Usage; the Metadata API equivalent, ``oauthConfig/isAdminApproved``, needs the app's whole
   definition redeployed and cannot touch apps installed from another org). The plan says what to
   click; the executor verifies ``ConnectedApplication.OptionsAllowAdminApprovedUsersOnly`` and
   reports ``pending`` until it is true. It does not stop the run: step 3 revokes every grant of
   the app in every user, which is what cuts the app's access through the API.
3. ``revoke_tokens`` — ``POST /services/oauth2/revoke`` with each ``DeleteToken`` of the
   OauthToken rows of the users and apps (OauthToken supports only query, so ``DELETE
   /sobjects/OauthToken`` does not exist), and each token the incident holds. Verified: no
   OauthToken row left for those users and apps.
4. ``end_sessions`` — ``DELETE /sobjects/AuthSession/{Id}`` for every session of the users or from
   the incident's IPs. Verified: none left.
5. ``freeze_users`` — ``PATCH /sobjects/UserLogin/{Id}`` ``{"IsFrozen": true}``. Verified:
   every UserLogin of the users frozen.
6. ``rotate_credentials`` — not an API call: the list of secrets to change (users' passwords,
   the app's consumer secret, integration credentials, everything secret scanning found), written
   to ``rotation.json``.

A failed step stops the run (later steps are reported ``not run``) unless re-querying shows the
target state was reached anyway. Each step is journaled as ``contain.<step>``; a step journaled
``verified`` for the same targets (the plan's fingerprint) is skipped when the run is repeated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict

from crmguard.errors import SalesforceApiError
from crmguard.response.incidents import Incident, IncidentStore
from crmguard.response.salesforce_api import SalesforceClient, soql_list

USER_ID = re.compile(r"^005[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?$")
APP_ID = re.compile(r"^0H4[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?$")
STEP_KEYS = ("evidence", "block_app", "revoke_tokens", "end_sessions", "freeze_users", "rotate_credentials")
StepStatus = Literal["verified", "already done", "skipped", "pending", "listed", "failed", "not run", "not needed"]


class PlannedCall(BaseModel):
    """One Salesforce call of the plan: method, path, a body summary and what it is repeated for."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    method: str
    path: str
    body: str = ""
    each: str = ""


class Step(BaseModel):
    """One containment step: its calls, why it is done and how it is verified."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    number: int
    key: str
    title: str
    kind: Literal["api", "manual", "list"]
    calls: list[PlannedCall]
    why: str
    verify: str


class Plan(BaseModel):
    """The containment plan of one incident (targets and steps); ``fingerprint`` identifies the targets."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    incident_id: str
    instance_url: str
    api_version: str
    user_ids: list[str]
    usernames: list[str]
    apps: list[str]
    ips: list[str]
    tokens: int
    fingerprint: str
    steps: list[Step]


def mask(secret: str) -> str:
    """A preview that does not disclose ``secret``: its first 4 characters when it is long, then its length."""
    return (secret[:4] if len(secret) >= 16 else "") + f"…({len(secret)} chars)"


def build_plan(incident: Incident, instance_url: str, api_version: str) -> Plan:
    """The containment plan for ``incident``'s observables (users as ids or usernames, apps as
    connected-app names or 0H4 ids, IPs, tokens) against the org at ``instance_url``."""
    obs = incident.observables
    user_ids = [u for u in obs.users if USER_ID.match(u)]
    usernames = [u for u in obs.users if not USER_ID.match(u)]
    v = f"/services/data/v{api_version.lstrip('v')}"
    users = ", ".join(obs.users) or "-"
    who = "UserId IN (<users' ids>)"
    app_names = [a for a in obs.apps if not APP_ID.match(a)]
    app_ids = [a for a in obs.apps if APP_ID.match(a)]
    app_filter = (f" OR AppName IN {soql_list(app_names)}" if app_names else "") + \
        (f" OR AppMenuItemId IN {soql_list(app_ids)}" if app_ids else "")
    ip_filter = f" OR SourceIp IN {soql_list(obs.ips)}" if obs.ips else ""
    fingerprint = hashlib.sha256(json.dumps([sorted(obs.users), sorted(obs.apps), sorted(obs.ips), sorted(obs.tokens)]).encode()
                                 ).hexdigest()[:16]
    steps = [
        Step(number=1, key="evidence", title="capture evidence", kind="api", calls=[
            PlannedCall(method="GET", path=f"{v}/query", body="SELECT Id, Username, IsActive FROM User WHERE Username IN (<usernames>) OR Id IN (<ids>)",
                        each=f"user: {users}"),
            PlannedCall(method="GET", path=f"{v}/query", body=f"SELECT DeleteToken, AppName, AppMenuItemId, UserId, LastUsedDate, UseCount FROM OauthToken WHERE {who}{app_filter}"),
            PlannedCall(method="GET", path=f"{v}/query", body=f"SELECT Id, UsersId, SourceIp, LoginType, SessionType FROM AuthSession WHERE UsersId IN (...){ip_filter}"),
            PlannedCall(method="GET", path=f"{v}/query", body="SELECT Id, UserId, IsFrozen FROM UserLogin WHERE UserId IN (...)"),
            PlannedCall(method="GET", path=f"{v}/query", body="SELECT Id, Name, OptionsAllowAdminApprovedUsersOnly FROM ConnectedApplication WHERE Name IN (<names>) OR Id IN (<ids>)",
                        each=f"app: {', '.join(obs.apps) or '-'}"),
        ], why="keep the state before anything changes, for the investigation and the regulator",
            verify="files re-read; SHA-256 in the journal"),
        Step(number=2, key="block_app", title="block the connected app (manual)", kind="manual", calls=[],
             why="stop anyone authorising the app again; no REST call blocks a connected app",
             verify="ConnectedApplication.OptionsAllowAdminApprovedUsersOnly = true (re-queried)"),
        Step(number=3, key="revoke_tokens", title="revoke OAuth tokens", kind="api", calls=[
            PlannedCall(method="POST", path="/services/oauth2/revoke", body="token=<DeleteToken>",
                        each=f"OauthToken of the users{' and of the apps (every user)' if obs.apps else ''}"),
            *([PlannedCall(method="POST", path="/services/oauth2/revoke", body="token=<held token, masked>",
                           each=f"{len(obs.tokens)} token(s) the incident holds")] if obs.tokens else []),
        ], why="the stolen grants keep working after a password change until revoked",
            verify="re-query OauthToken: none left for the users and apps"),
        Step(number=4, key="end_sessions", title="end sessions", kind="api", calls=[
            PlannedCall(method="DELETE", path=f"{v}/sobjects/AuthSession/{{Id}}",
                        each=f"AuthSession of the users{' or from ' + ', '.join(obs.ips) if obs.ips else ''}"),
        ], why="open sessions survive token revocation", verify="re-query AuthSession: none left"),
        Step(number=5, key="freeze_users", title="freeze users", kind="api", calls=[
            PlannedCall(method="PATCH", path=f"{v}/sobjects/UserLogin/{{Id}}", body='{"IsFrozen": true}',
                        each=f"UserLogin of {users}"),
        ], why="no new login until the accounts are checked (freezing keeps the user, unlike deactivating)",
            verify="re-query UserLogin: IsFrozen = true for every user"),
        Step(number=6, key="rotate_credentials", title="credentials to rotate", kind="list", calls=[],
             why="secrets the attacker may hold: passwords, the app's consumer secret, secrets found in exposed records",
             verify="rotation.json written; rotating is done by their owners"),
    ]
    return Plan(incident_id=incident.id, instance_url=instance_url, api_version=api_version.lstrip("v"),
                user_ids=user_ids, usernames=usernames, apps=list(obs.apps), ips=list(obs.ips), tokens=len(obs.tokens),
                fingerprint=fingerprint, steps=steps)


def manual_block_instructions(apps: list[dict[str, Any]], names: list[str]) -> list[str]:
    """What an admin does to block each app (found ``apps`` rows, else the given ``names``)."""
    targets = [f"{a['Name']} ({a['Id']})" for a in apps] or names
    return [f"Setup → Connected Apps OAuth Usage → {t} → Block; or Setup → Manage Connected Apps → {t} → Edit Policies → "
            "Permitted Users: 'Admin approved users are pre-authorized' with no profile or permission set assigned"
            for t in targets]


@dataclass
class StepResult:
    """How one step went: status, the calls made (``METHOD path`` and HTTP status), and details."""

    key: str
    title: str
    status: StepStatus
    calls: list[dict[str, Any]] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None


@dataclass
class _Context:
    client: SalesforceClient
    plan: Plan
    incident: Incident
    folder: Path
    user_ids: list[str] = field(default_factory=list)
    unknown_users: list[str] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def q(self, soql: str) -> list[dict[str, Any]]:
        return self.client.query(soql)

    def tokens(self) -> list[dict[str, Any]]:
        where = []
        if self.user_ids:
            where.append(f"UserId IN {soql_list(self.user_ids)}")
        names = [a for a in self.plan.apps if not APP_ID.match(a)]
        ids = [a for a in self.plan.apps if APP_ID.match(a)]
        if names:
            where.append(f"AppName IN {soql_list(names)}")
        if ids:
            where.append(f"AppMenuItemId IN {soql_list(ids)}")
        if not where:
            return []
        return self.q("SELECT DeleteToken, AppName, AppMenuItemId, UserId, LastUsedDate, UseCount FROM OauthToken WHERE "
                      + " OR ".join(where))

    def sessions(self) -> list[dict[str, Any]]:
        where = [f"UsersId IN {soql_list(self.user_ids)}"] if self.user_ids else []
        where += [f"SourceIp IN {soql_list(self.plan.ips)}"] if self.plan.ips else []
        if not where:
            return []
        return self.q("SELECT Id, UsersId, SourceIp, LoginType, SessionType FROM AuthSession WHERE " + " OR ".join(where))

    def logins(self) -> list[dict[str, Any]]:
        if not self.user_ids:
            return []
        return self.q(f"SELECT Id, UserId, IsFrozen FROM UserLogin WHERE UserId IN {soql_list(self.user_ids)}")

    def apps(self) -> list[dict[str, Any]]:
        names = [a for a in self.plan.apps if not APP_ID.match(a)]
        ids = [a for a in self.plan.apps if APP_ID.match(a)]
        # An Id filter with a value that is not an id is a query error in Salesforce: keep them apart.
        where = ([f"Name IN {soql_list(names)}"] if names else []) + ([f"Id IN {soql_list(ids)}"] if ids else [])
        if not where:
            return []
        return self.q("SELECT Id, Name, OptionsAllowAdminApprovedUsersOnly FROM ConnectedApplication WHERE " + " OR ".join(where))


def verified_before(incident: Incident, fingerprint: str) -> set[str]:
    """Steps journaled ``verified`` (or ``already done``) in an earlier run for the same targets."""
    done = set()
    for j in incident.journal:
        if j.action.startswith("contain.") and j.result in ("verified", "already done") and j.detail.get("fingerprint") == fingerprint:
            done.add(j.action.removeprefix("contain."))
    return done


def execute(plan: Plan, client: SalesforceClient, store: IncidentStore, who: str,
            findings: list[dict[str, Any]] | None = None) -> list[StepResult]:
    """Run ``plan`` against the org behind ``client``, step by step, journaling each step
    (``contain.<key>``) with its calls, HTTP statuses and verification, and return the results.
    Steps verified in an earlier run for the same targets are skipped; a failed step stops the run.
    ``findings`` are secret-scanning findings (masked) added to the rotation list."""
    incident = store.require(plan.incident_id)
    ctx = _Context(client, plan, incident, store.folder(incident.id), findings=list(findings or []), now=store.now())
    done_before = verified_before(incident, plan.fingerprint)
    results: list[StepResult] = []
    resolved = False
    stopped = False
    for step in plan.steps:
        if stopped:
            results.append(StepResult(step.key, step.title, "not run"))
            continue
        # block_app is only a check and the rotation list is cheap: both are redone every run.
        if step.key in done_before and step.key not in ("block_app", "rotate_credentials"):
            results.append(StepResult(step.key, step.title, "skipped", detail={"reason": "verified in an earlier run"}))
            continue
        try:
            if not resolved and step.kind != "list":
                _resolve_users(ctx)
                resolved = True
            result = STEP_FUNCTIONS[step.key](ctx, step)
        except SalesforceApiError as exc:
            result = StepResult(step.key, step.title, "failed", error=str(exc))
        detail = {"fingerprint": plan.fingerprint, "calls": result.calls, **result.detail}
        if result.error:
            detail["error"] = result.error
        store.journal(incident.id, f"contain.{step.key}", who, result.status, detail)
        results.append(result)
        stopped = result.status == "failed"
    store.timeline(incident.id, store.now(), "containment: " + ", ".join(f"{r.key} {r.status}" for r in results), "journal")
    return results


def _resolve_users(ctx: _Context) -> None:
    plan = ctx.plan
    if not plan.usernames and not plan.user_ids:
        return
    where = [f"Username IN {soql_list(plan.usernames)}"] if plan.usernames else []
    where += [f"Id IN {soql_list(plan.user_ids)}"] if plan.user_ids else []
    rows = ctx.q("SELECT Id, Username, IsActive FROM User WHERE " + " OR ".join(where))
    found_names = {r["Username"].lower() for r in rows}
    found_ids = {r["Id"][:15] for r in rows}
    ctx.user_ids = [r["Id"] for r in rows]
    ctx.unknown_users = [u for u in plan.usernames if u.lower() not in found_names] + \
        [u for u in plan.user_ids if u[:15] not in found_ids]


def _call(calls: list[dict[str, Any]], fn: Any, *args: Any, label: str | None = None) -> tuple[bool, str | None]:
    """Make one mutating call, record it, and return (answered ok, error text)."""
    try:
        resp = fn(*args)
    except SalesforceApiError as exc:
        calls.append({"call": label or exc.call, "status": exc.status, "error": exc.message})
        return False, str(exc)
    calls.append({"call": label or resp.call, "status": resp.status})
    return True, None


def _evidence(ctx: _Context, step: Step) -> StepResult:
    # One folder per capture: a later run for new targets must not overwrite what was journaled.
    folder = ctx.folder / "evidence" / f"{ctx.now.strftime('%Y%m%dT%H%M%SZ')}-{ctx.plan.fingerprint[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    users = ctx.q("SELECT Id, Username, IsActive FROM User WHERE Id IN " + soql_list(ctx.user_ids)) if ctx.user_ids else []
    tokens = [{**t, "DeleteToken": "sha256:" + hashlib.sha256(str(t.get("DeleteToken")).encode()).hexdigest()}
              for t in ctx.tokens()]
    docs = {"users.json": users, "oauth_tokens.json": tokens, "auth_sessions.json": ctx.sessions(),
            "user_logins.json": ctx.logins(), "connected_apps.json": ctx.apps()}
    files = {}
    for name, rows in docs.items():
        data = json.dumps({"instance_url": ctx.plan.instance_url, "records": rows}, indent=2, sort_keys=True).encode()
        path = folder / name
        tmp = path.with_name(name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        files[str(path)] = hashlib.sha256(data).hexdigest()
    incident_json = ctx.folder / "incident.json"
    if incident_json.is_file():
        files[str(incident_json)] = hashlib.sha256(incident_json.read_bytes()).hexdigest()
    ok = all(hashlib.sha256(Path(p).read_bytes()).hexdigest() == h for p, h in files.items())
    counts = {name: len(rows) for name, rows in docs.items()}
    return StepResult(step.key, step.title, "verified" if ok else "failed",
                      detail={"files": files, "counts": counts, "unknown_users": ctx.unknown_users},
                      error=None if ok else "an evidence file changed after it was written")


def _block_app(ctx: _Context, step: Step) -> StepResult:
    if not ctx.plan.apps:
        return StepResult(step.key, step.title, "not needed", detail={"reason": "the incident names no app"})
    apps = ctx.apps()
    found = {a["Name"] for a in apps} | {a["Id"] for a in apps} | {a["Id"][:15] for a in apps}
    missing = [a for a in ctx.plan.apps if a not in found and a[:15] not in found]
    blocked = [a for a in apps if a.get("OptionsAllowAdminApprovedUsersOnly")]
    status: StepStatus = "verified" if apps and len(blocked) == len(apps) else "pending"
    return StepResult(step.key, step.title, status, detail={
        "apps": [{"Id": a["Id"], "Name": a["Name"], "admin_approved_only": bool(a.get("OptionsAllowAdminApprovedUsersOnly"))}
                 for a in apps],
        "not_connected_apps": missing, "instructions": manual_block_instructions(apps, ctx.plan.apps)})


def _revoke_tokens(ctx: _Context, step: Step) -> StepResult:
    calls: list[dict[str, Any]] = []
    tokens = ctx.tokens()
    errors = []
    for t in tokens:
        _, e = _call(calls, ctx.client.revoke, t["DeleteToken"], label=f"POST /services/oauth2/revoke ({t['AppName']}, {t['UserId']})")
        errors += [e] if e else []
    held = 0
    for token in ctx.incident.observables.tokens:
        ok, e = _call(calls, ctx.client.revoke, token, label=f"POST /services/oauth2/revoke (held token {mask(token)})")
        errors += [e] if e else []
        held += ok
    left = ctx.tokens()
    status: StepStatus = "failed" if left else ("already done" if not tokens and not held else "verified")
    return StepResult(step.key, step.title, status, calls, detail={
        "revoked": len(tokens) - len(left), "held_tokens_sent": held, "left": len(left),
        "apps": sorted({t["AppName"] for t in tokens})},
        error=(f"{len(left)} OauthToken row(s) still there after revoking" + (f"; first error: {errors[0]}" if errors else ""))
        if left else None)


def _end_sessions(ctx: _Context, step: Step) -> StepResult:
    calls: list[dict[str, Any]] = []
    sessions = ctx.sessions()
    errors = []
    for s in sessions:
        _, e = _call(calls, ctx.client.delete, "AuthSession", s["Id"])
        errors += [e] if e else []
    left = ctx.sessions()
    status: StepStatus = "failed" if left else ("verified" if sessions else "already done")
    return StepResult(step.key, step.title, status, calls, detail={"ended": len(sessions) - len(left), "left": len(left)},
                      error=(f"{len(left)} session(s) still open" + (f"; first error: {errors[0]}" if errors else ""))
                      if left else None)


def _freeze_users(ctx: _Context, step: Step) -> StepResult:
    calls: list[dict[str, Any]] = []
    if not ctx.user_ids:
        return StepResult(step.key, step.title, "failed" if ctx.plan.usernames or ctx.plan.user_ids else "not needed",
                          detail={"unknown_users": ctx.unknown_users},
                          error="none of the incident's users exists in the org" if ctx.unknown_users else None)
    logins = ctx.logins()
    todo = [r for r in logins if not r.get("IsFrozen")]
    errors = []
    for r in todo:
        _, e = _call(calls, ctx.client.update, "UserLogin", r["Id"], {"IsFrozen": True})
        errors += [e] if e else []
    after = ctx.logins()
    frozen = {r["UserId"] for r in after if r.get("IsFrozen")}
    not_frozen = [u for u in ctx.user_ids if u not in frozen]
    status: StepStatus = "failed" if not_frozen else ("verified" if todo else "already done")
    return StepResult(step.key, step.title, status, calls, detail={
        "frozen": sorted(frozen), "not_frozen": not_frozen, "unknown_users": ctx.unknown_users},
        error=(f"not frozen: {', '.join(not_frozen)}" + (f"; first error: {errors[0]}" if errors else "")) if not_frozen else None)


def rotation_list(incident: Incident, findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The credentials to rotate: each user's password, each app's consumer secret and the
    integration credentials it used, tokens the incident holds, and each secret-scanning finding
    (masked preview, never the secret)."""
    obs = incident.observables
    items = [{"what": "password", "owner": u, "why": "account used in the incident; reset after unfreezing"} for u in obs.users]
    items += [{"what": "consumer secret", "owner": a, "why": "connected app used in the incident"} for a in obs.apps]
    items += [{"what": "integration credentials", "owner": a,
               "why": "credentials of systems that authorise through this app (named credentials, service users)"}
              for a in obs.apps]
    items += [{"what": "OAuth token", "owner": mask(t), "why": "held by the incident; revoked in step 3"} for t in obs.tokens]
    items += [{"what": f"secret in record ({f['kind']})", "owner": f"{f['object']} {f['record_id']} {f['field']}",
               "why": f"found in exposed record text: {f['preview']}"} for f in findings]
    return items


def _rotate(ctx: _Context, step: Step) -> StepResult:
    items = rotation_list(ctx.incident, ctx.findings)
    path = ctx.folder / "rotation.json"
    tmp = path.with_name("rotation.json.tmp")
    tmp.write_text(json.dumps(items, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return StepResult(step.key, step.title, "listed", detail={"file": str(path), "items": len(items),
                                                              "secrets_found": len(ctx.findings)})


STEP_FUNCTIONS = {"evidence": _evidence, "block_app": _block_app, "revoke_tokens": _revoke_tokens,
                  "end_sessions": _end_sessions, "freeze_users": _freeze_users, "rotate_credentials": _rotate}


def plan_table(plan: Plan) -> Any:
    """The plan as a Rich table: step, Salesforce call (method, path, body summary), why, how verified."""
    from rich.table import Table

    table = Table(title=f"containment plan for {plan.incident_id} ({plan.instance_url}, API v{plan.api_version})",
                  show_lines=True)
    for col in ("#", "step", "Salesforce call", "why", "verified by"):
        table.add_column(col, overflow="fold")
    for s in plan.steps:
        calls = "\n".join(f"{c.method} {c.path}" + (f"\n  {c.body}" if c.body else "") + (f"\n  for each {c.each}" if c.each else "")
                          for c in s.calls)
        if s.kind == "manual":
            calls = "none (manual): " + "; ".join(manual_block_instructions([], plan.apps) or ["no app in the incident"])
        elif s.kind == "list":
            calls = "none: a list of credentials to rotate (rotation.json)"
        table.add_row(str(s.number), s.title, calls, s.why, s.verify)
    return table


def results_table(results: list[StepResult]) -> Any:
    """How each step went, as a Rich table."""
    from rich.table import Table

    table = Table(title="containment run")
    for col in ("step", "status", "calls", "detail"):
        table.add_column(col, overflow="fold")
    for r in results:
        statuses: dict[str, int] = {}
        for c in r.calls:
            key = str(c.get("status"))
            statuses[key] = statuses.get(key, 0) + 1
        calls = ", ".join(f"{n}× HTTP {s}" for s, n in sorted(statuses.items())) or "-"
        detail = r.error or "; ".join(f"{k}: {v}" for k, v in r.detail.items()
                                      if k in ("revoked", "ended", "frozen", "left", "items", "secrets_found", "reason",
                                               "not_connected_apps", "counts", "unknown_users") and v not in ([], None))
        if r.key == "block_app" and r.status == "pending":
            detail = "manual: " + " | ".join(r.detail.get("instructions", []))
        table.add_row(r.key, r.status, calls, detail or "-")
    return table
