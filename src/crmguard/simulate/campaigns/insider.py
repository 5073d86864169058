"""Insider: a client advisor builds a private report of the group's highest-spending clients (not
only their own book) and exports a slice of it almost every working day, from their usual device
and place, to take the clientele to a competitor.
"""

from __future__ import annotations

import numpy as np

from crmguard.simulate import formats, ids
from crmguard.simulate.background import HABITS, Context, Events, lognormal_ints
from crmguard.simulate.calls import Client, login
from crmguard.simulate.campaigns.base import Campaign, Place, actor_entry, okta_event, pick, sso_target, user_client
from crmguard.simulate.clock import DAY_MS, HOUR_MS, MINUTE_MS, utc_offset_minutes
from crmguard.simulate.columns import doubles, uuids
from crmguard.simulate.org import ADVISOR, AGENTS

DESCRIPTION = ("A client advisor exports a private report of high-spend clients a little every working day from "
               "their usual device.")
REPORT_NAMES = ("VIC follow-up", "Top clients - private", "My VIP list", "Clients over 10k", "Gifting list",
                "Private clienteling export", "High potential clients", "Key clients - personal")


def plan(rng: np.random.Generator, ctx: Context, period: tuple[int, int]) -> Campaign:
    """Plan the insider campaign inside ``period``; returns it with its events."""
    org = ctx.pop.org
    users = org.users
    cust = ctx.customers
    c = Campaign("insider", DESCRIPTION, period)
    advisors = [int(a) for a in org.role_members(ADVISOR) if cust.book_len[a] > 0] or [int(a) for a in org.role_members(ADVISOR)]
    who = int(pick(rng, advisors))
    site = org.sites[users.site[who]]
    agent = AGENTS[users.desktop_agent[who]]
    office = Place(site.ip, site.network)
    home = Place(users.home_ip[who], users.home_network[who])
    report_name = pick(rng, REPORT_NAMES)
    report15, report18 = org.new_id("Report")
    per_export = (int(rng.integers(20, 60)), int(rng.integers(80, 260)))
    exports_per_day = (1, int(rng.integers(1, 3)))
    from_home = float(rng.uniform(0.0, 0.4))
    fmt = pick(rng, ("CSV", "Excel"))
    top_share = float(rng.uniform(0.01, 0.05))
    days = max(1, (period[1] - period[0]) // DAY_MS)
    first_day = int(rng.integers(0, max(1, days // 3 + 1)))
    skip = float(rng.uniform(0.0, 0.3))

    c.actors = [actor_entry(ctx, who, "insider")]
    c.ips = sorted({office.ip, home.ip})
    c.user_agents = [agent.raw]
    c.apps = []
    c.params = {"report_name": report_name, "rows_per_export": list(per_export), "exports_per_day": list(exports_per_day),
                "from_home_share": round(from_home, 3), "format": fmt, "top_share": round(top_share, 4),
                "skip_day_share": round(skip, 3)}

    top = cust.by_spend[: max(50, int(len(cust) * top_share))]
    cursor = 0
    out = Events()
    columns = "[FIRST_NAME, LAST_NAME, EMAIL, PHONE1, MAILING_ADDRESS, Contact.Total_Spend__c, Contact.Brand__c]"
    export_days = []
    for d in range(first_day, days):
        weekday = (np.datetime64(period[0] + d * DAY_MS, "ms").astype("datetime64[D]").astype(np.int64) - 4) % 7
        if rng.random() <= HABITS[ADVISOR].active[int(weekday)] and rng.random() >= skip:
            export_days.append(d)
    for d in export_days or [first_day]:
        day_start = period[0] + d * DAY_MS
        offset = utc_offset_minutes(site.city.tz_rule, site.city.tz_minutes,
                                    np.datetime64(day_start, "ms").astype("datetime64[D]").astype(object))
        for _ in range(int(rng.integers(exports_per_day[0], exports_per_day[1] + 1))):
            at_home = rng.random() < from_home
            local_hour = int(rng.integers(20, 23)) if at_home else int(rng.integers(10, 19))
            t = day_start + (local_hour * HOUR_MS + int(rng.integers(0, HOUR_MS)) - offset * MINUTE_MS) % DAY_MS
            place = home if at_home else office
            cl = user_client(ctx, who, place, agent.raw, rng)
            sid = ids.okta_session_ids(rng, 1)[0].as_py()
            out.add("okta", okta_event(rng, [t - 2000], "user.authentication.sso", actor=ctx.pop.okta_actor[who].as_py(),
                                       agent=agent, place=place, session=sid, credential=formats.CRED_NONE,
                                       target=sso_target(ctx, who), uri="/app/salesforce/sso/saml",
                                       extra=',"initiationType":"IDP_INITIATED"'))
            login(out, rng, np.array([t]), cl, login_type="5", sub_type="", uri="/saml/SSO",
                  rtem_type="SAML Idp Initiated SSO", rtem_sub_type="", browser=agent.sf_browser, platform=agent.sf_platform)
            n_rows = int(rng.integers(per_export[0], per_export[1] + 1))
            chosen = top[(cursor + np.arange(n_rows)) % len(top)]
            cursor += n_rows
            t_run = t + int(rng.integers(30_000, 5 * MINUTE_MS))
            t_exp = t_run + int(rng.integers(5000, 60_000))
            _report(out, rng, ctx, cl, t_run, t_exp, report15, report18, report_name, chosen, columns, fmt)
            c.touch("Contact", chosen, t_exp)
    c.add_all(out)
    return c


def _report(out: Events, rng: np.random.Generator, ctx: Context, cl: Client, t_run: int, t_exp: int, report15: str,
            report18: str, name: str, chosen: np.ndarray, columns: str, fmt: str) -> None:
    """The insider's report run and export: ELF Report (run and export), ReportExport, and RTEM
    ReportEvent rows listing the exported contacts."""
    cust = ctx.customers
    n = len(chosen)
    common = {"USER_ID": cl.user15, "USER_ID_DERIVED": cl.user18, "SESSION_KEY": cl.session_key,
              "LOGIN_KEY": cl.login_key, "CLIENT_IP": cl.ip, "USER_TYPE": "Standard", "REQUEST_STATUS": "S"}
    for ts, origin, rendering in ((t_run, "ReportRunFromLightning", "W"), (t_exp, "ReportExported", "E")):
        out.add("elf/Report", {
            "ts": np.array([ts]), **common, "RUN_TIME": lognormal_ints(rng, 900, 0.5, 1),
            "CPU_TIME": lognormal_ints(rng, 200, 0.5, 1), "DB_TOTAL_TIME": lognormal_ints(rng, 300_000_000, 0.5, 1),
            "ENTITY_NAME": "Contact", "DISPLAY_TYPE": "H", "RENDERING_TYPE": rendering, "REPORT_ID": report15,
            "ROW_COUNT": np.array([n]), "NUMBER_EXCEPTION_FILTERS": "0", "NUMBER_COLUMNS": "7",
            "AVERAGE_ROW_SIZE": np.array([int(rng.integers(250, 400))]), "SORT": "Contact.Total_Spend__c DESC",
            "DB_BLOCKS": lognormal_ints(rng, 3000, 0.5, 1), "DB_CPU_TIME": lognormal_ints(rng, 60, 0.5, 1),
            "NUMBER_BUCKETS": "0", "ORIGIN": origin, "IS_SCHEDULED": "0",
            "URI": f"/lightning/r/Report/{report18}/view", "URI_ID_DERIVED": report18, "REPORT_ID_DERIVED": report18,
        })
    out.add("elf/ReportExport", {
        "ts": np.array([t_exp + int(rng.integers(2000, 9000))]), "USER_ID": cl.user15, "USER_ID_DERIVED": cl.user18,
        "CLIENT_IP": cl.ip, "URI": f"/{report15}?export=1&enc=UTF-8&xf={'csv' if fmt == 'CSV' else 'xls'}",
        "CLIENT_INFO": cl.agent, "REPORT_DESCRIPTION": name, "URI_ID_DERIVED": report18,
    })
    record_ids = cust.contact_ids(chosen)
    for ts, op, export_format in ((t_run, "ReportRunFromLightning", ""), (t_exp, "ReportExported", fmt)):
        out.add("rtem/ReportEvent", {
            "ts": np.array([ts]), "UserId": cl.user18, "Username": cl.username, "SessionKey": cl.session_key,
            "LoginKey": cl.login_key, "LoginHistoryId": cl.history, "SourceIp": cl.ip, "ColumnHeaders": columns,
            "Description": "", "EventSource": "Lightning", "ExecutionIdentifier": uuids(rng, 1),
            "ExportFileFormat": export_format, "Format": "Tabular", "Name": name, "NumberOfColumns": "7",
            "Operation": op, "OwnerId": cl.user18, "QueriedEntities": "Contact",
            "Records": formats.report_records(record_ids, np.array([n])), "ReportId": report18,
            "RowsProcessed": doubles(np.array([n])), "Scope": "user", "Sequence": "1", "DisplayedFieldEntities": "[Contact]",
        })

