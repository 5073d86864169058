"""Integration users on their schedules: the large, regular, legitimate reads a naive volume
threshold would flag.

- The data-warehouse ETL logs in over SOAP every night and extracts Contact and Account in full
  (and the day's cases) with Bulk API 2.0 from a cloud IP.
- The marketing connector (hosted on Salesforce, so ``CLIENT_IP`` is ``Salesforce.com IP``) reads
  the day's changed contacts over REST every morning and exports every contact once a month.
- The support-chat app holds an OAuth refresh token: it re-authenticates every two hours and looks
  up contacts and creates/updates cases around the clock, following service hours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from crmguard.simulate import clock, formats, ids
from crmguard.simulate.background import API, Context, Day, Events, history_ids
from crmguard.simulate.calls import Client, api_event, bulk_query, login, paged_rows, query_pages, rest, soap
from crmguard.simulate.clock import HOUR_MS, MINUTE_MS
from crmguard.simulate.columns import join, take
from crmguard.simulate.org import API_VERSION, SERVICE, Integration

CONTACT_EXTRACT = ("SELECT Id, FirstName, LastName, Email, Phone, MailingStreet, MailingCity, MailingPostalCode, "
                   "MailingCountry, Brand__c, Total_Spend__c, LastModifiedDate FROM Contact")
ACCOUNT_EXTRACT = "SELECT Id, Name, PersonEmail, PersonMobilePhone, BillingCity, BillingCountry, Tier__c FROM Account"
CASE_EXTRACT = "SELECT Id, CaseNumber, ContactId, Status, Subject, Origin FROM Case WHERE LastModifiedDate = YESTERDAY"
MARKETING_DELTA = ("SELECT Id, Email, FirstName, LastName, Preferred_Language__c, Brand__c, HasOptedOutOfEmail "
                   "FROM Contact WHERE LastModifiedDate > {since}")
MARKETING_FULL = ("SELECT Id, Email, FirstName, LastName, Preferred_Language__c, Brand__c FROM Contact "
                  "WHERE HasOptedOutOfEmail = false")


@dataclass(frozen=True)
class Schedule:
    """Seeded timing of the integrations: ETL start (Paris local minutes), marketing export weekday
    (first such weekday of each month) and its UTC hour."""

    etl_local_minute: int
    export_weekday: int
    export_hour: int


def draw_schedule(rng: np.random.Generator) -> Schedule:
    """Pick the integrations' schedule for a seed."""
    return Schedule(int(rng.integers(60, 180)), int(rng.integers(0, 4)), int(rng.integers(19, 23)))


def client_for(day: Day, ctx: Context, integ: Integration, ip: str, keys: tuple[str, str]) -> Client:
    """The :class:`Client` of an integration user connecting from ``ip`` with (session, login) keys."""
    org = ctx.pop.org
    u = integ.user
    return Client(
        user15=org.users.sf15[u], user18=org.users.sf18[u], username=org.users.username[u], ip=ip,
        city=integ.network.city, agent=integ.user_agent, app_name=integ.app.name, app_id15=integ.app.id15,
        app_id18=integ.app.id18, client_name=integ.app.client, session_key=keys[0], login_key=keys[1],
        history=history_ids(day, ctx, 1)[0].as_py(), client_ip=integ.client_ip, login_url=org.my_domain,
    )


def _keys(rng: np.random.Generator) -> tuple[str, str]:
    k = ids.session_keys(rng, 2).to_pylist()
    return k[0], k[1]


def etl_night(day: Day, ctx: Context, schedule: Schedule, out: Events) -> None:
    """The nightly warehouse extract."""
    rng = day.rng
    org = ctx.pop.org
    integ = org.integrations["etl"]
    paris = next(s for s in org.sites if s.city.name == "Paris").city
    offset = clock.utc_offset_minutes(paris.tz_rule, paris.tz_minutes, day.date)
    local = schedule.etl_local_minute * MINUTE_MS + int(rng.integers(-20, 20)) * MINUTE_MS + int(rng.integers(0, 60_000))
    t0 = day.start + (local - offset * MINUTE_MS) % clock.DAY_MS
    t0 = min(t0, day.end - 6 * HOUR_MS)
    c = client_for(day, ctx, integ, integ.ips[int(rng.integers(len(integ.ips)))], _keys(rng))
    out.add("okta", _okta_token_grant(day, ctx, integ, c, t0 - 4000))
    login(out, rng, np.array([t0]), c, login_type="R", sub_type="", uri="Api", rtem_type="Partner Product",
          rtem_sub_type="", api_type="P", api_version=API_VERSION, use_token="T")
    soap(out, rng, t0 + np.array([800, 1500, 2300]), c, method="describeSObject",
         entity=pa.array(["Contact", "Account", "Case"]), rows=np.zeros(3, np.int64))
    cust = ctx.customers
    t = t0 + 4000
    counter = 2_000_000 + day.index * 1000
    for k, (entity, query, total, operation) in enumerate((
        ("Contact", CONTACT_EXTRACT, len(cust), "query"),
        ("Account", ACCOUNT_EXTRACT, len(cust), "query"),
        ("Case", CASE_EXTRACT, int(cust.n_cases * rng.uniform(0.03, 0.08)), "queryAll"),
    )):
        job = ids.new_id("750", org.pod, counter + k)[0]
        t = bulk_query(out, rng, t, c, job_id15=job, entity=entity, query=query, total=total, page=50_000,
                       gap_ms=(2000, 9000), operation=operation) + int(rng.integers(5000, 30_000))
    # Write-back over SOAP: loyalty tiers computed in the warehouse, follow-up tasks, spot checks.
    for method, entity, share in (("update", "Contact", rng.uniform(0.001, 0.004)), ("insert", "Task", 0.0005),
                                  ("retrieve", "Contact", 0.0002)):
        rows = paged_rows(max(1, int(len(cust) * share)), 200)
        gaps = rng.integers(300, 1500, len(rows))
        soap(out, rng, t + np.cumsum(gaps), c, method=method, entity=entity, rows=rows)
        t += int(gaps.sum()) + int(rng.integers(2000, 10_000))


def _okta_token_grant(day: Day, ctx: Context, integ: Integration, c: Client, ts: int) -> dict:
    org = ctx.pop.org
    rng = day.rng
    app_okta_id = "0oa" + integ.app.id18[3:]
    tx = ids.okta_request_ids(rng, 1)
    return {
        "ts": np.array([ts]), "eventType": "app.oauth2.as.token.grant.access_token",
        "actor": formats.okta_actor(app_okta_id, integ.app.name, integ.app.name, "PublicClientApp"),
        "client": formats.okta_client(integ.user_agent, "UNKNOWN", "Linux", "Unknown", c.ip, integ.network.city),
        "securityContext": formats.okta_security(integ.network, False),
        "ipChain": formats.okta_ip_chain(c.ip, integ.network.city),
        "authenticationContext": formats.okta_auth_context(ids.okta_session_ids(rng, 1), formats.CRED_NONE, 1),
        "target": "[" + formats.okta_target("aus" + org.okta_sf_app_id[3:], "Warehouse API", "default",
                                            "AuthorizationServer") + "]",
        "debugData": formats.debug_data(tx, f"/oauth2/aus{org.okta_sf_app_id[3:]}/v1/token",
                                        ',"grantType":"client_credentials","requestedScopes":"warehouse.write"', 1),
        "result": "SUCCESS", "reason": "", "transaction": tx,
    }


def marketing_day(day: Day, ctx: Context, schedule: Schedule, out: Events) -> None:
    """The morning delta sync and, on the first export weekday of the month, the full export."""
    rng = day.rng
    org = ctx.pop.org
    cust = ctx.customers
    integ = org.integrations["marketing"]
    t0 = day.start + 5 * HOUR_MS + int(rng.integers(0, 30 * MINUTE_MS))
    c = client_for(day, ctx, integ, integ.ips[int(rng.integers(len(integ.ips)))], _keys(rng))
    login(out, rng, np.array([t0]), c, login_type="i", sub_type="oauthrefreshtoken", uri="/services/oauth2/token",
          rtem_type="Remote Access 2.0", rtem_sub_type="OAuth Refresh Token")
    n = max(50, int(len(cust) * rng.uniform(0.01, 0.04)))
    n = min(n, len(cust))
    start = int(rng.integers(0, len(cust)))
    idx = ctx.perm[(start + np.arange(n)) % len(cust)]
    since = clock.iso_z_one(day.start - 24 * HOUR_MS)
    query_pages(out, rng, t0 + 2000, c, entity="Contact", query=MARKETING_DELTA.format(since=since),
                indices=np.sort(idx), ids_of=cust.contact_ids, page=2000, gap_ms=(400, 2500))
    if day.date.weekday() == schedule.export_weekday and day.date.day <= 7:
        t1 = day.start + schedule.export_hour * HOUR_MS + int(rng.integers(0, 40 * MINUTE_MS))
        c2 = client_for(day, ctx, integ, integ.ips[int(rng.integers(len(integ.ips)))], _keys(rng))
        login(out, rng, np.array([t1]), c2, login_type="i", sub_type="oauthrefreshtoken",
              uri="/services/oauth2/token", rtem_type="Remote Access 2.0", rtem_sub_type="OAuth Refresh Token")
        job = ids.new_id("750", org.pod, 9_000_000 + day.index)[0]
        bulk_query(out, rng, t1 + 3000, c2, job_id15=job, entity="Contact", query=MARKETING_FULL,
                   total=int(len(cust) * 0.86), page=100_000, gap_ms=(3000, 12_000))


_CHAT_CALLS = (
    ("GET", "/query", "Contact", 0.4, "200"),
    ("GET", "/sobjects/Case/", "Case", 0.2, "200"),
    ("POST", "/sobjects/Case", "Case", 0.15, "201"),
    ("PATCH", "/sobjects/Case/", "Case", 0.15, "204"),
    ("GET", "/query", "Case", 0.1, "200"),
)
_CHAT_HOURS = np.array([1, 1, 1, 2, 3, 4, 6, 8, 9, 9, 9, 9, 9, 9, 10, 10, 10, 9, 8, 7, 6, 4, 2, 1], float)


def chat_day(day: Day, ctx: Context, out: Events) -> None:
    """The support-chat connector: token refresh every two hours, lookups and case updates."""
    rng = day.rng
    org = ctx.pop.org
    cust = ctx.customers
    integ = org.integrations["chat"]
    n_service = int((org.users.role == SERVICE).sum())
    n = int(rng.poisson(25 * n_service + 30))
    hours = rng.choice(24, size=n, p=_CHAT_HOURS / _CHAT_HOURS.sum())
    ts = np.sort(day.start + hours * HOUR_MS + rng.integers(0, HOUR_MS, n))
    window = (ts - day.start) // (2 * HOUR_MS)
    for w in range(12):
        c = client_for(day, ctx, integ, integ.ips[w % len(integ.ips)], _keys(rng))
        t_login = day.start + w * 2 * HOUR_MS + int(rng.integers(0, 90_000))
        login(out, rng, np.array([t_login]), c, login_type="i", sub_type="oauthrefreshtoken",
              uri="/services/oauth2/token", rtem_type="Remote Access 2.0", rtem_sub_type="OAuth Refresh Token")
        tw = ts[window == w]
        tw = np.maximum(tw, t_login + 1000)
        k = len(tw)
        if not k:
            continue
        call = rng.choice(len(_CHAT_CALLS), size=k, p=[x[3] for x in _CHAT_CALLS])
        contact = cust.contact_ids(rng.integers(0, len(cust), k))
        case = cust.case_ids(rng.integers(0, cust.n_cases, k))
        method = take([x[0] for x in _CHAT_CALLS], call)
        path = take([x[1] for x in _CHAT_CALLS], call)
        entity = take([x[2] for x in _CHAT_CALLS], call)
        uri = join(API, path)
        uri = pa.array(np.where(np.isin(call, [1, 3]), join(uri, case).to_numpy(zero_copy_only=False),
                                uri.to_numpy(zero_copy_only=False)))
        rows = np.where(call == 0, 1, np.where(call == 4, rng.integers(0, 6, k), 1))
        rest(out, rng, tw, c, method=method, uri=uri, entity=entity, rows=rows,
             status=take([x[4] for x in _CHAT_CALLS], call), resource=path)
        q = np.flatnonzero(call == 0)
        if len(q):
            ids_q = contact.take(pa.array(q))
            api_event(out, rng, tw[q], c, api_type="REST", operation="Query", entity="Contact",
                      query=join("SELECT Id, Name, Email, Phone, Preferred_Language__c FROM Contact WHERE Id = '",
                                 ids_q, "'"),
                      records=formats.api_records("Contact", ids_q, np.ones(len(q), np.int64), np.ones(len(q), bool)),
                      rows=np.ones(len(q), np.int64))


def integrations_day(day: Day, ctx: Context, schedule: Schedule) -> Events:
    """Every integration's events on ``day``."""
    out = Events()
    etl_night(day, ctx, schedule, out)
    marketing_day(day, ctx, schedule, out)
    chat_day(day, ctx, out)
    return out
