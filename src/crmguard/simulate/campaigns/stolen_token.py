"""Stolen OAuth token: the refresh token of an integration (the support-chat app, sometimes the
marketing connector) is used from new IPs by a script: COUNT() reconnaissance, full-table SOQL
through Bulk API 2.0 or paged REST queries, then deletion of the query jobs to hide them (the
pattern of the 2025 Salesloft Drift token theft).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from crmguard.simulate import geo, ids
from crmguard.simulate.background import API, Context, Events
from crmguard.simulate.calls import (
    Client,
    api_event,
    bulk_create,
    bulk_delete,
    bulk_pages,
    login,
    paged_rows,
    query_pages,
    rest,
)
from crmguard.simulate.campaigns.base import SCRIPT_AGENTS, Campaign, Place, network_entry, pick
from crmguard.simulate.clock import DAY_MS, HOUR_MS, iso_sf_one
from crmguard.simulate.columns import const

DESCRIPTION = ("An integration's OAuth refresh token replayed from new IPs by scripts: COUNT() reconnaissance, "
               "full-table SOQL, then deletion of the bulk query jobs.")
FIELDS = {
    "Contact": "Id, FirstName, LastName, Email, Phone, MailingStreet, MailingCity, MailingCountry",
    "Account": "Id, Name, PersonEmail, PersonMobilePhone, BillingCity, BillingCountry",
    "Case": "Id, CaseNumber, ContactId, Subject, Description, SuppliedEmail",
    "Lead": "Id, FirstName, LastName, Email, Phone, Company",
    "User": "Id, Username, Email, Name, Title, IsActive, LastLoginDate",
}


class StolenToken(Campaign):
    """See the module docstring."""

    token_app: str
    token_last: int
    token_uses: int

    def adjust_tokens(self, tokens: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The stolen token was last used by the attacker."""
        out = []
        for t in tokens:
            if t["AppName"] == self.token_app and self.token_last:
                t = {**t, "LastUsedDate": max(t["LastUsedDate"], iso_sf_one(self.token_last)),
                     "UseCount": t["UseCount"] + self.token_uses}
            out.append(t)
        return out


def plan(rng: np.random.Generator, ctx: Context, period: tuple[int, int]) -> Campaign:
    """Plan the stolen-token campaign inside ``period``; returns it with its events."""
    org = ctx.pop.org
    users = org.users
    cust = ctx.customers
    key = "chat" if rng.random() < 0.7 else "marketing"
    integ = org.integrations[key]
    c = StolenToken("stolen-token", DESCRIPTION, period)
    c.token_app, c.token_last, c.token_uses = integ.app.name, 0, 0

    pool = [n for n in geo.HOSTING if n.kind in ("hosting", "tor", "cloud", "vpn")]
    nets = [pick(rng, pool) for _ in range(int(rng.integers(1, 3)))]
    places = [Place(ip, net) for net in nets for ip in geo.random_ips(rng, net, int(rng.integers(1, 4)))]
    agents = [str(a) for a in rng.choice(SCRIPT_AGENTS, size=int(rng.integers(1, 4)), replace=False)]
    recon = [str(o) for o in rng.permutation(["Contact", "Account", "Lead", "Case", "User", "Opportunity"])[: int(rng.integers(3, 7))]]
    candidates: list[str] = [o for o in ("Contact", "Account", "Case", "Lead", "User") if o in recon or o == "Contact"]
    targets = [str(o) for o in rng.permutation(candidates)]
    via = pick(rng, ("bulk2", "rest"))
    page = int(pick(rng, (25_000, 50_000, 100_000))) if via == "bulk2" else 2000
    delete_jobs = via == "bulk2" or rng.random() < 0.3
    days = max(1, (period[1] - period[0]) // DAY_MS)
    day0 = int(rng.integers(0, days))
    t = period[0] + day0 * DAY_MS + int(rng.integers(0, 24)) * HOUR_MS + int(rng.integers(0, HOUR_MS))
    gap = (int(rng.integers(200, 2000)), int(rng.integers(3000, 20_000)))

    u = integ.user
    c.actors = [{"kind": "integration_user", "username": users.username[u], "user_id": users.sf18[u],
                 "okta_id": None, "name": users.name(u), "app": integ.app.name}]
    c.ips = [p.ip for p in places]
    c.user_agents = agents
    c.networks = [network_entry(n) for n in dict.fromkeys(nets)]
    c.apps = [{"name": integ.app.name, "id": integ.app.id18, "client": integ.app.client}]
    c.params = {"integration": key, "api": via, "page_rows": page, "recon_objects": recon, "targets": targets,
                "deletes_jobs": bool(delete_jobs), "gap_ms": list(gap)}

    out = Events()
    keys = ids.session_keys(rng, 2).to_pylist()
    place = places[0]
    client = Client(user15=users.sf15[u], user18=users.sf18[u], username=users.username[u], ip=place.ip,
                    city=place.network.city, agent=agents[0], app_name=integ.app.name, app_id15=integ.app.id15,
                    app_id18=integ.app.id18, client_name=integ.app.client, session_key=keys[0], login_key=keys[1],
                    history=ids.strings(ids.id_matrix("0Ya", org.pod, rng.integers(10**12, 2 * 10**12, 1)))[0].as_py(),
                    login_url=org.my_domain)
    login(out, rng, np.array([t]), client, login_type="i", sub_type="oauthrefreshtoken", uri="/services/oauth2/token",
          rtem_type="Remote Access 2.0", rtem_sub_type="OAuth Refresh Token")
    calls = 1
    # Reconnaissance: what is there and how much of it.
    t += int(rng.integers(*gap))
    rest(out, rng, np.array([t, t + int(rng.integers(*gap))]), client, method="GET",
         uri=pa.array([f"{API}/sobjects", f"{API}/limits"]), entity=pa.array(["", ""]), rows=np.zeros(2, np.int64),
         resource=pa.array(["/sobjects", "/limits"]))
    t += 2 * gap[1]
    sizes = {"Contact": len(cust), "Account": len(cust), "Lead": cust.n_leads, "Case": cust.n_cases,
             "User": len(users), "Opportunity": len(cust) // 4}
    for obj in recon:
        client = _rotate(client, rng, places, agents)
        soql = f"SELECT COUNT() FROM {obj}"
        rest(out, rng, np.array([t]), client, method="GET", uri=f"{API}/query", entity=obj, rows=np.array([sizes[obj]]))
        api_event(out, rng, np.array([t]), client, api_type="REST", operation="Query", entity=obj, query=soql,
                  records=const(f'{{\\"totalSize\\":{sizes[obj]},\\"done\\":true,\\"records\\":[]}}', 1),
                  rows=np.array([sizes[obj]]))
        t += int(rng.integers(*gap))
        calls += 1
    # Full-table reads.
    jobs: list[tuple[str, str]] = []
    for obj in targets:
        client = _rotate(client, rng, places, agents)
        query = f"SELECT {FIELDS[obj]} FROM {obj}"
        total = sizes[obj]
        if via == "bulk2":
            job = org.new_id("BulkJob")[0]
            jobs.append((job, obj))
            t = bulk_create(out, rng, t, client, job_id15=job, entity=obj, polls=int(rng.integers(1, 6)))
            rows = paged_rows(total, page)
            ts = t + np.cumsum(rng.integers(gap[0], gap[1], len(rows)))
            bulk_pages(out, rng, ts, client, job_id15=job, entity=obj, query=query, rows=rows, page=page)
            starts = np.concatenate([[0], np.cumsum(rows)[:-1]])
            for s0, r, when in zip(starts, rows, ts, strict=True):
                c.touch(obj, np.arange(s0, s0 + r), int(when))
            t = int(ts[-1])
            calls += len(rows) + 3
        else:
            idx = np.arange(total)
            ids_of = (lambda rows: ctx.pop.id18.take(pa.array(rows))) if obj == "User" else partial(cust.record_ids, obj)
            t = query_pages(out, rng, t, client, entity=obj, query=query, indices=idx, ids_of=ids_of, page=page,
                            gap_ms=gap)
            c.touch(obj, idx, t)
            calls += -(-total // page)
        t += int(rng.integers(*gap))
    # Cover tracks: delete the query jobs.
    for job, obj in jobs:
        bulk_delete(out, rng, t, client, job_id15=job, entity=obj)
        t += int(rng.integers(*gap))
        calls += 1
    c.token_last, c.token_uses = min(t, period[1] - 1), calls
    c.add_all(out)
    return c


def _rotate(client: Client, rng: np.random.Generator, places: list[Place], agents: list[str]) -> Client:
    """Scripts hop between the attacker's IPs and HTTP clients from one request batch to the next."""
    p = pick(rng, places)
    return Client(**{**client.__dict__, "ip": p.ip, "city": p.network.city, "agent": pick(rng, agents)})
