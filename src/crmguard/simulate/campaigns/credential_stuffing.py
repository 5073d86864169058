"""Credential stuffing: leaked passwords tried against many staff accounts (and guessed usernames)
from a rotating pool of residential-proxy and hosting IPs, mostly against Okta, some directly
against the Salesforce login page. A few passwords work; one victim accepts a push after repeated
prompts, and the attacker browses Salesforce a little with that session.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from crmguard.simulate import formats, geo, ids, names
from crmguard.simulate.background import Context, Events, lognormal_ints
from crmguard.simulate.calls import Client, login
from crmguard.simulate.campaigns.base import (
    BROWSERS,
    SCRIPT_AGENTS,
    Campaign,
    Place,
    actor_entry,
    network_entry,
    okta_event,
    pick,
    sso_target,
    user_client,
)
from crmguard.simulate.clock import DAY_MS, HOUR_MS
from crmguard.simulate.columns import doubles, uuids
from crmguard.simulate.org import INTEGRATION, Agent

DESCRIPTION = ("Many failed sign-ins across staff accounts from rotating proxy IPs; a few succeed, one user "
               "approves a push, and the attacker browses customer records.")


def plan(rng: np.random.Generator, ctx: Context, period: tuple[int, int]) -> Campaign:
    """Plan the credential-stuffing campaign inside ``period``; returns it with its events."""
    org = ctx.pop.org
    users = org.users
    c = Campaign("credential-stuffing", DESCRIPTION, period)
    humans = np.flatnonzero(users.role != INTEGRATION)
    attempts = int(np.clip(len(humans) * rng.uniform(2, 6), 200, 5000))
    duration = int(rng.integers(1, 7)) * HOUR_MS
    days = max(1, (period[1] - period[0]) // DAY_MS)
    t0 = period[0] + int(rng.integers(0, days)) * DAY_MS + int(rng.integers(0, 24)) * HOUR_MS
    t0 = min(t0, period[1] - duration - HOUR_MS) if period[1] - period[0] > duration + HOUR_MS else period[0]
    n_ips = int(rng.integers(40, 300))
    resid = [n for code in geo.RESIDENTIAL_PROXY_COUNTRIES for n in geo.ISPS[code]]
    hosting = [n for n in geo.HOSTING if n.kind in ("hosting", "vpn")]
    share_hosting = float(rng.uniform(0.0, 0.4))
    nets = [pick(rng, hosting) if rng.random() < share_hosting else pick(rng, resid) for _ in range(n_ips)]
    ips = [geo.random_ips(rng, net, 1)[0] for net in nets]
    agent_pool: list[Agent] = [pick(rng, BROWSERS) for _ in range(int(rng.integers(2, 8)))]
    scripted = rng.random() < 0.4
    if scripted:
        raw = str(pick(rng, SCRIPT_AGENTS))
        agent_pool.append(Agent(raw, "UNKNOWN", "Unknown", "Unknown", "Unknown", "Unknown"))
    valid_share = float(rng.uniform(0.5, 0.85))
    direct_share = float(rng.uniform(0.05, 0.3))
    n_success = int(rng.integers(1, 4))

    # Who is tried: real staff (from a leaked list) and invented names on the company domain.
    valid = rng.random(attempts) < valid_share
    target = np.where(valid, rng.choice(humans, size=attempts), -1)
    fake_names = [f"{names.ascii_name(pick(rng, names.FIRST['en']))}.{names.ascii_name(pick(rng, names.LAST['en']))}"
                  f"@{org.email_domain}" for _ in range(int((~valid).sum()))]
    ts = np.sort(t0 + rng.integers(0, duration, attempts))
    ip_ix = rng.integers(0, n_ips, attempts)
    ag_ix = rng.integers(0, len(agent_pool), attempts)
    direct = valid & (rng.random(attempts) < direct_share)
    winners = [int(w) for w in rng.choice(np.unique(target[valid & ~direct]), size=n_success, replace=False)] \
        if (valid & ~direct).sum() >= n_success else []

    c.actors = [actor_entry(ctx, w, "compromised_user") for w in winners]
    c.ips = sorted(set(ips))
    c.user_agents = sorted({a.raw for a in agent_pool})
    c.networks = [network_entry(n) for n in dict.fromkeys(nets)]
    c.params = {"attempts": attempts, "ips": n_ips, "duration_hours": duration // HOUR_MS,
                "valid_username_share": round(valid_share, 3), "direct_salesforce_share": round(direct_share, 3),
                "scripted_agent": bool(scripted), "hosting_share": round(share_hosting, 3), "successes": len(winners)}

    out = Events()
    fake = iter(fake_names)
    okta_rows: list[tuple[int, int, int, int, str]] = []
    for k in range(attempts):
        if direct[k]:
            continue
        okta_rows.append((int(ts[k]), int(target[k]), int(ip_ix[k]), int(ag_ix[k]), "" if valid[k] else next(fake)))
    _okta_failures(out, rng, ctx, okta_rows, nets, ips, agent_pool, winners)
    for a in np.flatnonzero(direct):
        u = int(target[a])
        place = Place(ips[ip_ix[a]], nets[ip_ix[a]])
        cl = user_client(ctx, u, place, agent_pool[ag_ix[a]].raw, rng)
        login(out, rng, np.array([ts[a]]), cl, login_type="A", sub_type="", uri="/index.jsp", rtem_type="Application",
              rtem_sub_type="", status="LOGIN_ERROR_INVALID_PASSWORD", rtem_status="Invalid Password",
              browser=agent_pool[ag_ix[a]].sf_browser, platform=agent_pool[ag_ix[a]].sf_platform)

    # The successes: password accepted; push prompts until one user approves.
    approve = winners[0] if winners else None
    for w in winners:
        when = int(t0 + rng.integers(duration // 2, duration))
        k = int(rng.integers(n_ips))
        place = Place(ips[k], nets[k])
        agent = agent_pool[int(rng.integers(len(agent_pool)))]
        actor = ctx.pop.okta_actor[w].as_py()
        sid = ids.okta_session_ids(rng, 1)[0].as_py()
        target_user = "[" + ctx.pop.okta_user_target[w].as_py() + "]"
        risky = formats.risk_extra("HIGH", "Anomalous Location, Anomalous Device",
                                   formats.behaviors(True, True, True, velocity=True), threat=True)
        out.add("okta", okta_event(rng, [when], "user.session.start", actor=actor, agent=agent, place=place, session=sid,
                                   credential=formats.CRED_PASSWORD, extra=risky))
        pushes = int(rng.integers(2, 7))
        push_ts = when + np.cumsum(rng.integers(20_000, 90_000, pushes))
        approved = w == approve
        results = ["FAILURE"] * (pushes - 1) + ["SUCCESS" if approved else "FAILURE"]
        reasons = ["INVALID_CREDENTIALS"] * (pushes - 1) + ["" if approved else "INVALID_CREDENTIALS"]
        out.add("okta", okta_event(rng, push_ts, "user.authentication.auth_via_mfa", actor=actor, agent=agent, place=place,
                                   session=sid, credential=formats.CRED_PUSH, target=target_user,
                                   uri="/api/v1/authn/factors/verify", extra=',"factor":"OKTA_VERIFY_PUSH"',
                                   result=results, reason=reasons))
        if approved:
            _browse(out, rng, ctx, c, w, place, agent, sid, int(push_ts[-1]) + 3000)
    c.add_all(out)
    return c


def _okta_failures(out: Events, rng: np.random.Generator, ctx: Context, rows: list[tuple[int, int, int, int, str]],
                   nets: list[geo.Network], ips: list[str], agents: list[Agent], winners: list[int]) -> None:
    """Failed Okta sign-ins, one per attempt, plus lockouts and ThreatInsight detections."""
    if not rows:
        return
    pop = ctx.pop
    actors, clients, security, chains, reasons = [], [], [], [], []
    per_user: dict[int, int] = {}
    locks: list[tuple[int, int, int, int]] = []
    for ts, u, ip_k, ag_k, fake in rows:
        agent = agents[ag_k]
        net = nets[ip_k]
        if u >= 0:
            actors.append(pop.okta_actor[u].as_py())
            reasons.append("INVALID_CREDENTIALS")
            per_user[u] = per_user.get(u, 0) + 1
            if per_user[u] == 10 and u not in winners:
                locks.append((ts + 1000, u, ip_k, ag_k))
        else:
            actors.append(formats.okta_actor("unknown", fake, "unknown", "User"))
            reasons.append("UNKNOWN_USER")
        clients.append(formats.okta_client(agent.raw, agent.okta_browser, agent.okta_os, agent.device, ips[ip_k], net.city))
        security.append(formats.okta_security(net, net.kind in ("vpn", "tor", "hosting")))
        chains.append(formats.okta_ip_chain(ips[ip_k], net.city))
    n = len(rows)
    tx = ids.okta_request_ids(rng, n)
    threat = rng.random(n) < 0.3
    extra = pa.array(np.where(threat, ',"threatSuspected":"true"', ',"threatSuspected":"false"'))
    out.add("okta", {
        "ts": np.array([r[0] for r in rows], np.int64), "eventType": "user.session.start", "actor": actors,
        "client": clients, "securityContext": security, "ipChain": chains,
        "authenticationContext": formats.okta_auth_context(ids.okta_session_ids(rng, n), formats.CRED_PASSWORD, n),
        "target": "null", "debugData": formats.debug_data(tx, "/api/v1/authn", extra, n), "result": "FAILURE",
        "reason": reasons, "transaction": tx,
    })
    for ts, u, ip_k, ag_k in locks:
        place = Place(ips[ip_k], nets[ip_k])
        out.add("okta", okta_event(rng, [ts], "user.account.lock", actor=pop.okta_actor[u].as_py(), agent=agents[ag_k],
                                   place=place, session=ids.okta_session_ids(rng, 1)[0].as_py(),
                                   credential=formats.CRED_NONE, result="FAILURE", reason="LOCKED_OUT"))
    # Okta ThreatInsight flags the noisiest sources.
    flagged = sorted({r[2] for r in rows})[: max(1, len(set(r[2] for r in rows)) // 10)]
    for ip_k in flagged:
        first = next(r for r in rows if r[2] == ip_k)
        out.add("okta", okta_event(rng, [first[0] + 500], "security.threat.detected",
                                   actor=formats.okta_actor("unknown", "unknown", "Unknown", "User"),
                                   agent=agents[first[3]], place=Place(ips[ip_k], nets[ip_k]),
                                   session=ids.okta_session_ids(rng, 1)[0].as_py(), credential=formats.CRED_NONE,
                                   extra=',"threatDetections":"{Password Spray=HIGH}","threatSuspected":"true"',
                                   result="DENY", reason="Password Spray"))


def _browse(out: Events, rng: np.random.Generator, ctx: Context, c: Campaign, user: int, place: Place, agent: Agent,
            sid: str, t: int) -> None:
    """The attacker's short Salesforce session as the compromised user."""
    cust = ctx.customers
    pop = ctx.pop
    org = pop.org
    out.add("okta", okta_event(rng, [t], "user.authentication.sso", actor=pop.okta_actor[user].as_py(), agent=agent,
                               place=place, session=sid, credential=formats.CRED_NONE,
                               target=sso_target(ctx, user), uri="/app/salesforce/sso/saml",
                               extra=',"initiationType":"IDP_INITIATED"'))
    cl: Client = user_client(ctx, user, place, agent.raw, rng)
    login(out, rng, np.array([t + 1500]), cl, login_type="5", sub_type="", uri="/saml/SSO",
          rtem_type="SAML Idp Initiated SSO", rtem_sub_type="", browser=agent.sf_browser, platform=agent.sf_platform)
    n_views = int(rng.integers(5, 30))
    vts = t + 5000 + np.cumsum(rng.integers(5000, 60_000, n_views))
    viewed = rng.integers(0, len(cust), n_views)
    rid = cust.contact_ids(viewed)
    out.add("elf/URI", {
        "ts": vts, "USER_ID": cl.user15, "USER_ID_DERIVED": cl.user18, "SESSION_KEY": cl.session_key,
        "LOGIN_KEY": cl.login_key, "CLIENT_IP": cl.ip, "USER_TYPE": "Standard", "REQUEST_STATUS": "S",
        "RUN_TIME": lognormal_ints(rng, 120, 0.8, n_views), "CPU_TIME": lognormal_ints(rng, 30, 0.8, n_views),
        "DB_TOTAL_TIME": lognormal_ints(rng, 40_000_000, 1.0, n_views),
        "URI": pa.array([f"/lightning/r/Contact/{r}/view" for r in rid.to_pylist()]), "URI_ID_DERIVED": rid,
        "REFERRER_URI": "/lightning/o/Contact/list?filterName=Recent",
    })
    c.touch("Contact", viewed, vts)
    n_lists = int(rng.integers(1, 4))
    lts = t + 10_000 + np.sort(rng.integers(0, int(vts[-1] - t), n_lists))
    rows = rng.integers(25, 51, n_lists)
    listed = rng.integers(0, len(cust), int(rows.sum()))
    out.add("rtem/ListViewEvent", {
        "ts": lts, "UserId": cl.user18, "Username": cl.username, "SessionKey": cl.session_key, "LoginKey": cl.login_key,
        "LoginHistoryId": cl.history, "SourceIp": cl.ip, "ColumnHeaders": "Name, Phone, Email, Owner.Alias, Total_Spend__c",
        "DeveloperName": "AllContacts", "Name": "All Contacts", "ListViewId": ids.new_id("00B", org.pod, 7710)[1],
        "QueriedEntities": "Contact", "EventSource": "Lightning", "ExecutionIdentifier": uuids(rng, n_lists),
        "NumberOfColumns": "5", "OrderBy": "[Name ASC NULLS FIRST, Id ASC NULLS FIRST]", "OwnerId": cl.user18,
        "Records": formats.report_records(cust.contact_ids(listed), rows), "RowsProcessed": doubles(rows),
        "Scope": "Everything",
    })
    c.touch("Contact", listed, np.repeat(lts, rows))
