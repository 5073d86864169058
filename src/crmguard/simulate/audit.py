"""Salesforce SetupAuditTrail records, as a SOQL query on SetupAuditTrail returns them.

Audit records are few (admin changes), so each is built as a Python dict and serialised; a batch
of kind ``audit`` carries the finished JSON text in its ``line`` column.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from crmguard.simulate import clock, ids
from crmguard.simulate.formats import Batch
from crmguard.simulate.org import API_VERSION

if TYPE_CHECKING:
    from crmguard.simulate.background import Context, Day


def record(ts: int, record_id: str, action: str, section: str, display: str, actor_id18: str, actor_username: str,
           delegate: str | None = None) -> str:
    """One SetupAuditTrail record as compact JSON (keys in the order Salesforce returns them)."""
    body = {
        "attributes": {"type": "SetupAuditTrail", "url": f"/services/data/v{API_VERSION}/sobjects/SetupAuditTrail/{record_id}"},
        "Id": record_id,
        "Action": action,
        "Section": section,
        "CreatedDate": clock.iso_sf_one(ts - ts % 1000),
        "CreatedById": actor_id18,
        "CreatedBy": {"attributes": {"type": "User", "url": f"/services/data/v{API_VERSION}/sobjects/User/{actor_id18}"},
                      "Username": actor_username},
        "Display": display,
        "DelegateUser": delegate,
        "CreatedByContext": None,
        "CreatedByIssuer": None,
        "ResponsibleNamespacePrefix": None,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def audit_ids(pod: str, day_index: int, n: int, salt: int = 0) -> list[str]:
    """Fresh SetupAuditTrail ids for ``n`` records of one day (unique across days and callers)."""
    counters = 5_000_000 + day_index * 10_000 + salt * 1000 + np.arange(n)
    return [row.tobytes().decode() for row in ids.id_matrix("0Ym", pod, counters)]


_ACTIONS = (
    ("PermSetAssign", "Manage Users", "Permission set {ps}: assigned to user {user} ({target})"),
    ("resetpassword", "Manage Users", "Reset password for {target}"),
    ("changedUserEmailVerifiedStatusVerified", "Manage Users",
     "For user {target}, the User Verified Email status changed to verified"),
    ("PermSetUnassign", "Manage Users", "Permission set {ps}: unassigned from user {user} ({target})"),
    ("changedprofileforuserstdtostd", "Manage Users",
     "Changed profile for user {user} ({target}) from Boutique Client Advisor to Boutique Manager"),
    ("createdReportType", "Custom Report Types", "Created custom report type Clients with Orders"),
    ("changedsessiontimeout", "Session Settings", "Changed session timeout from 2 hours to 8 hours"),
)
_PERMSETS = ("Clienteling Mobile", "Report Builder", "Export Reports", "Service Console User")
BENIGN_APPS = ("SignWell for Salesforce", "Slack for Salesforce", "Outlook Integration", "Tableau Connector")


def background_audit(day: Day, ctx: Context, actors: np.ndarray, targets: np.ndarray) -> Batch:
    """Routine admin changes on ``day``: one record per (actor, target) pair, at office hours.
    Now and then an admin installs a well-known connected app (a benign lookalike of a malicious
    app authorisation)."""
    rng = day.rng
    pop = ctx.pop
    users = pop.org.users
    n = len(actors)
    ts = day.start + rng.integers(7 * clock.HOUR_MS, 19 * clock.HOUR_MS, n)
    record_ids = audit_ids(pop.org.pod, day.index, n + 1)
    lines = []
    for k in range(n):
        a, t = int(actors[k]), int(targets[k])
        action, section, display = _ACTIONS[int(rng.integers(len(_ACTIONS)))]
        text = display.format(ps=_PERMSETS[int(rng.integers(len(_PERMSETS)))], user=users.name(t), target=users.username[t])
        lines.append(record(int(ts[k]), record_ids[k], action, section, text, users.sf18[a], users.username[a]))
    out_ts = list(ts)
    if rng.random() < 0.03:
        a = int(actors[0])
        app = BENIGN_APPS[int(rng.integers(len(BENIGN_APPS)))]
        when = int(day.start + rng.integers(9 * clock.HOUR_MS, 17 * clock.HOUR_MS))
        lines.append(record(when, record_ids[n], "insertConnectedApplication", "Connected Apps",
                            f"Installed Connected App {app} to Salesforce", users.sf18[a], users.username[a]))
        out_ts.append(when)
    return {"ts": np.array(out_ts, np.int64), "line": lines}
