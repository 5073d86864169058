"""Vishing: the attacker phones the help desk posing as an employee and gets their MFA reset, signs
in through Okta from an anonymising VPN with a new factor, authorises a connected app with a
harmless-looking name, then bulk-reads Contact, Account, Lead and Case in chunks over hours or days
(the pattern of the 2025 Salesforce data-theft wave that hit Kering and others).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from crmguard.simulate import audit, formats, geo, ids
from crmguard.simulate.background import Context, Events, lognormal_ints
from crmguard.simulate.calls import Client, bulk_create, bulk_pages, login, query_pages
from crmguard.simulate.campaigns.base import (
    BROWSERS,
    Campaign,
    Place,
    actor_entry,
    network_entry,
    okta_event,
    pick,
    refresh,
    sso_target,
    user_client,
)
from crmguard.simulate.clock import DAY_MS, HOUR_MS, MINUTE_MS, iso_sf_one
from crmguard.simulate.columns import const
from crmguard.simulate.org import ADMIN, AGENTS, ANALYST

DESCRIPTION = ("Help-desk MFA reset obtained by phone, Okta sign-in from an anonymising VPN with a new factor, "
               "a look-alike connected app authorised, then chunked bulk reads of Contact, Account, Lead and Case.")
APP_NAMES = ("My Ticket Portal", "Salesforce Data Sync", "Data Loader", "IT Helpdesk Sync", "Secure Export Tool",
             "Okta Sync Service", "Customer Insights Loader", "Connect Assistant", "Salesforce Support Tool",
             "Dataloader Partner", "Service Desk Connector")
APP_SUFFIXES = ("", "", "", " v2", " 2025", " (EU)", " Pro")
APP_CLIENTS = ("DataLoaderBulkUI/62.0.1", "DataLoaderPartnerUI/61.1.0", "simple-salesforce/1.12.6",
               "Salesforce Data Loader 60.0.2", "jsforce/3.6.2", "sf-exporter/0.4.1 python-requests/2.32.3")
OAUTH_FLOWS = (("oauthdevice", "OAuth Device Flow"), ("oauthwebserver", "OAuth Web Server"))
FIELDS = {
    "Contact": "Id, FirstName, LastName, Email, Phone, MobilePhone, MailingStreet, MailingCity, MailingPostalCode, "
               "MailingCountry, Birthdate",
    "Account": "Id, Name, PersonEmail, PersonMobilePhone, BillingStreet, BillingCity, BillingCountry, Total_Spend__c",
    "Lead": "Id, FirstName, LastName, Email, Phone, Company, City, Country",
    "Case": "Id, CaseNumber, ContactId, Subject, Description, SuppliedEmail, SuppliedPhone",
}


class Vishing(Campaign):
    """See the module docstring."""

    app: dict[str, Any]
    token: dict[str, Any]

    def snapshot_apps(self) -> list[dict[str, Any]]:
        """The attacker's connected app, installed through the victim."""
        return [self.app] if self.app else []

    def adjust_tokens(self, tokens: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The victim now holds a token for the attacker's app."""
        return tokens + ([self.token] if self.token else [])


def plan(rng: np.random.Generator, ctx: Context, period: tuple[int, int]) -> Campaign:
    """Plan the vishing campaign inside ``period`` (epoch ms); returns it with its events."""
    org = ctx.pop.org
    users = org.users
    cust = ctx.customers
    c = Vishing("vishing", DESCRIPTION, period)
    c.app, c.token = {}, {}

    victims = np.flatnonzero(np.isin(users.role, [ANALYST, ADMIN]))
    victim = int(pick(rng, list(victims)))
    desk = [int(u) for u in np.flatnonzero(users.helpdesk) if u != victim] or [int(u) for u in org.role_members(ADMIN) if u != victim]
    helpdesk = pick(rng, desk) if desk else victim
    vpn = [n for n in geo.HOSTING if n.kind in ("vpn", "hosting", "tor")]
    nets = [pick(rng, vpn) for _ in range(int(rng.integers(1, 3)))]
    places = [Place(ip, net) for net in nets for ip in geo.random_ips(rng, net, int(rng.integers(1, 3)))]
    agent = pick(rng, [a for a in BROWSERS if a.raw != AGENTS[users.desktop_agent[victim]].raw])
    app_name = pick(rng, APP_NAMES) + pick(rng, APP_SUFFIXES)
    client_name = pick(rng, APP_CLIENTS)
    flow = pick(rng, OAUTH_FLOWS)
    method = pick(rng, ("bulk2", "soap", "rest"))
    chunk = int(pick(rng, (10_000, 20_000, 25_000, 50_000))) if method == "bulk2" else int(pick(rng, (2000, 4000, 10_000, 20_000)))
    # Small orgs still see several chunks per object, so the theft spans hours, not minutes.
    chunk = min(chunk, max(200, int(round(len(cust) / int(rng.integers(6, 20)), -2))))
    pause = (int(rng.integers(1, 8)) * MINUTE_MS, int(rng.integers(10, 60)) * MINUTE_MS)
    objects = [str(o) for o in rng.permutation(["Contact", "Account", "Lead", "Case"])]
    fraction = {o: float(rng.uniform(0.75, 1.0)) if o in ("Contact", "Account") else float(rng.uniform(0.3, 1.0))
                for o in objects}
    days = max(1, (period[1] - period[0]) // DAY_MS)
    day0 = int(rng.integers(0, max(1, days // 2 + 1)))
    work_start = int(rng.integers(6, 17))
    work_hours = int(rng.integers(3, 11))
    app_id15, app_id18 = org.new_id("ConnectedApplication")

    c.actors = [actor_entry(ctx, victim, "compromised_user"), actor_entry(ctx, helpdesk, "helpdesk")]
    c.ips = [p.ip for p in places]
    c.user_agents = [agent.raw, client_name]
    c.networks = [network_entry(n) for n in dict.fromkeys(nets)]
    c.apps = [{"name": app_name, "id": app_id18, "client": client_name}]
    c.params = {"victim_role": "analyst" if users.role[victim] == ANALYST else "admin", "api": method,
                "chunk_rows": chunk, "pause_minutes": [pause[0] // MINUTE_MS, pause[1] // MINUTE_MS],
                "objects": objects, "fractions": {o: round(f, 3) for o, f in fraction.items()},
                "oauth_flow": flow[0], "work_hours_utc": [work_start, (work_start + work_hours) % 24]}

    out = Events()
    t = period[0] + day0 * DAY_MS + work_start * HOUR_MS + int(rng.integers(0, 30 * MINUTE_MS))
    # 1. The help desk resets the victim's factors (and password) at the caller's request.
    hd_place = Place(org.sites[users.site[helpdesk]].ip, org.sites[users.site[helpdesk]].network)
    hd_agent = AGENTS[users.desktop_agent[helpdesk]]
    hd_actor = ctx.pop.okta_actor[helpdesk].as_py()
    victim_target = "[" + ctx.pop.okta_user_target[victim].as_py() + "]"
    okta_sid = ids_one(rng)
    reset = pick(rng, ("user.mfa.factor.reset_all", "user.mfa.factor.deactivate"))
    c.params["helpdesk_action"] = reset
    out.add("okta", okta_event(rng, [t], reset, actor=hd_actor, agent=hd_agent, place=hd_place, session=okta_sid,
                               credential=formats.CRED_NONE, target=victim_target,
                               uri=f"/api/v1/users/{users.okta_id[victim]}/lifecycle/reset_factors",
                               reason="" if reset.endswith("reset_all") else "User reset OKTA_VERIFY_PUSH factor"))
    if rng.random() < 0.6:
        out.add("okta", okta_event(rng, [t + 40_000], "user.account.reset_password", actor=hd_actor, agent=hd_agent,
                                   place=hd_place, session=okta_sid, credential=formats.CRED_NONE, target=victim_target,
                                   uri=f"/api/v1/users/{users.okta_id[victim]}/lifecycle/reset_password"))
    # 2. The attacker signs in from the VPN and enrols their own factor.
    t += int(rng.integers(5, 25)) * MINUTE_MS
    here = places[0]
    v_actor = ctx.pop.okta_actor[victim].as_py()
    sid = ids_one(rng)
    risky = formats.risk_extra("HIGH", "Anomalous Location, Anomalous Device, New IP",
                               formats.behaviors(True, True, True), threat=False)
    seq = [
        ("policy.evaluate_sign_on", formats.CRED_NONE, formats.okta_policy_target(org.okta_policy_id, org.okta_rule_id), "/api/v1/authn", risky, "ALLOW",
         "Sign-on policy evaluation resulted in ALLOW"),
        ("user.session.start", formats.CRED_PASSWORD, "null", "/api/v1/authn", risky, "SUCCESS", ""),
        ("user.mfa.factor.activate", formats.CRED_NONE, victim_target, "/idp/authenticators/setup", "", "SUCCESS",
         "User set up OKTA_VERIFY_PUSH factor"),
        ("user.authentication.auth_via_mfa", formats.CRED_PUSH, victim_target, "/api/v1/authn/factors/verify",
         ',"factor":"OKTA_VERIFY_PUSH"', "SUCCESS", ""),
        ("user.authentication.sso", formats.CRED_NONE, sso_target(ctx, victim), "/app/salesforce/sso/saml",
         ',"initiationType":"IDP_INITIATED"', "SUCCESS", ""),
    ]
    for k, (et, cred, target, uri, extra, result, reason) in enumerate(seq):
        out.add("okta", okta_event(rng, [t + k * int(rng.integers(4000, 40_000))], et, actor=v_actor, agent=agent,
                                   place=here, session=sid, credential=cred, target=target, uri=uri, extra=extra,
                                   result=result, reason=reason))
    t += 5 * 40_000 + 2000
    ui = user_client(ctx, victim, here, agent.raw, rng)
    login(out, rng, np.array([t]), ui, login_type="5", sub_type="", uri="/saml/SSO", rtem_type="SAML Idp Initiated SSO",
          rtem_sub_type="", browser=agent.sf_browser, platform=agent.sf_platform)
    views = ["/lightning/page/home", "/lightning/setup/SetupOneHome/home", "/lightning/setup/ConnectedApplication/home",
             "/lightning/setup/NavigationMenus/home", "/lightning/o/Contact/list?filterName=Recent",
             "/lightning/setup/ConnectedApplication/home"]
    view_ts = t + np.cumsum(rng.integers(8000, 90_000, len(views)))
    out.add("elf/URI", _uri_rows(ui, view_ts, views, rng))
    # 3. The victim (the attacker, as them) approves the look-alike connected app.
    t = int(view_ts[-1]) + int(rng.integers(2, 20)) * MINUTE_MS
    record_id = audit.audit_ids(org.pod, 9000 + day0, 1, salt=7)[0]
    out.add("audit", {"ts": np.array([t]), "Id": [record_id], "line": [audit.record(
        t, record_id, "insertConnectedApplication", "Connected Apps", f"Installed Connected App {app_name} to Salesforce",
        users.sf18[victim], users.username[victim])]})
    out.add("okta", okta_event(rng, [t - 15_000], "user.authentication.sso", actor=v_actor, agent=agent, place=here,
                               session=sid, credential=formats.CRED_NONE, target=sso_target(ctx, victim),
                               uri="/app/salesforce/sso/saml", extra=',"initiationType":"SP_INITIATED"'))
    api = user_client(ctx, victim, here, client_name, rng, app_name=app_name, app_id15=app_id15, app_id18=app_id18,
                      client_name=client_name)
    login(out, rng, np.array([t + 3000]), api, login_type="i", sub_type=flow[0], uri="/services/oauth2/token",
          rtem_type="Remote Access 2.0", rtem_sub_type=flow[1])
    c.app = {"Id": app_id18, "Name": app_name, "CreatedDate": iso_sf_one(t), "CreatedBy": users.username[victim],
             "Description": "", "OptionsAllowAdminApprovedUsersOnly": False, "OptionsRefreshTokenValidityMetric": False,
             "StartUrl": None}

    # 4. Bulk reads in chunks, inside the attacker's working hours, over as many days as it takes.
    t += int(rng.integers(3, 30)) * MINUTE_MS
    calls = 0
    day_of = (t - period[0]) // DAY_MS

    def next_slot(when: int) -> int:
        nonlocal api, day_of
        day = (when - period[0]) // DAY_MS
        window_start = period[0] + day * DAY_MS + work_start * HOUR_MS
        if when >= window_start + work_hours * HOUR_MS:
            when = window_start + DAY_MS + int(rng.integers(0, 40 * MINUTE_MS))
        if (when - period[0]) // DAY_MS != day_of:
            day_of = (when - period[0]) // DAY_MS
            api = refresh(api, rng, pick(rng, places))
            login(out, rng, np.array([when]), api, login_type="i", sub_type="oauthrefreshtoken",
                  uri="/services/oauth2/token", rtem_type="Remote Access 2.0", rtem_sub_type="OAuth Refresh Token")
            when += 2000
        return when

    for k, obj in enumerate(objects):
        size = cust.population(obj)
        take_n = max(1, int(size * fraction[obj]))
        query = f"SELECT {FIELDS[obj]} FROM {obj}"
        if method == "bulk2":
            job = org.new_id("BulkJob")[0]
            t = bulk_create(out, rng, next_slot(t), api, job_id15=job, entity=obj, polls=int(rng.integers(1, 4)))
            calls += 3
            for lo in range(0, take_n, chunk):
                t = next_slot(t + int(rng.integers(*pause)))
                rows = min(chunk, take_n - lo)
                bulk_pages(out, rng, np.array([t]), api, job_id15=job, entity=obj, query=query, rows=np.array([rows]),
                           page=chunk)
                c.touch(obj, np.arange(lo, lo + rows), t)
                calls += 1
        else:
            last_id = ""
            for lo in range(0, take_n, chunk):
                t = next_slot(t + (int(rng.integers(*pause)) if lo or k else 0))
                rows = min(chunk, take_n - lo)
                idx = np.arange(lo, lo + rows)
                where = f" WHERE Id > '{last_id}'" if last_id else ""
                soql = f"{query}{where} ORDER BY Id LIMIT {chunk}"
                t = query_pages(out, rng, t, api, entity=obj, query=soql, indices=idx,
                                ids_of=partial(cust.record_ids, obj), page=2000, gap_ms=(300, 2500),
                                api="REST" if method == "rest" else "SOAP",
                                soql_type="REST" if method == "rest" else "SOAP Partner")
                last_id = cust.record_ids(obj, idx[-1:])[0].as_py()
                c.touch(obj, idx, t)
                calls += -(-rows // 2000)
        if t >= period[1]:
            break
    c.token = {"Id": org.new_id("OauthToken")[1], "AppName": app_name, "AppMenuItemId": app_id18,
               "UserId": users.sf18[victim], "Username": users.username[victim], "CreatedDate": c.app["CreatedDate"],
               "LastUsedDate": iso_sf_one(min(t, period[1] - 1)), "UseCount": calls}
    c.add_all(out)
    return c


def ids_one(rng: np.random.Generator) -> str:
    """One Okta session id."""
    return ids.okta_session_ids(rng, 1)[0].as_py()


def _uri_rows(c: Client, ts: np.ndarray, uris: list[str], rng: np.random.Generator) -> dict[str, Any]:
    n = len(ts)
    return {
        "ts": ts, "USER_ID": c.user15, "USER_ID_DERIVED": c.user18, "SESSION_KEY": c.session_key,
        "LOGIN_KEY": c.login_key, "CLIENT_IP": c.ip, "USER_TYPE": "Standard", "REQUEST_STATUS": "S",
        "RUN_TIME": lognormal_ints(rng, 120, 0.8, n), "CPU_TIME": lognormal_ints(rng, 30, 0.8, n),
        "DB_TOTAL_TIME": lognormal_ints(rng, 40_000_000, 1.0, n), "URI": pa.array(uris), "URI_ID_DERIVED": const("", n),
        "REFERRER_URI": "/lightning/page/home",
    }

