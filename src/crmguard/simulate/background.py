"""Normal behaviour of human staff, one day at a time, fully vectorised.

Each role has habits (:class:`Habits`): on which weekdays they work, when their sessions start in
local time, how long they last and how many page views, list views, reports, exports and API calls
an hour of work brings. A day is generated as arrays of *sessions* (user, start, end, device,
place, keys); events are then spread uniformly inside their session. Desktop sessions start with an
Okta sign-in and SSO to Salesforce; mobile sessions refresh an OAuth token without Okta.

Benign lookalikes live here too: analysts export large reports and pull thousands of contacts
with Data Loader, advisors occasionally export their client book, admins query users with the CLI,
the help desk resets MFA factors and users enrol new ones.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crmguard.simulate import formats, ids
from crmguard.simulate.clock import DAY_MS, HOUR_MS, MINUTE_MS
from crmguard.simulate.columns import as_strings, const, doubles, join, lit, take, uuids
from crmguard.simulate.customers import Customers
from crmguard.simulate.formats import Batch
from crmguard.simulate.org import ADMIN, ADVISOR, ANALYST, API_VERSION, SERVICE
from crmguard.simulate.population import Population

API = f"/services/data/v{API_VERSION}"


@dataclass(frozen=True)
class Habits:
    """How one role works. Rates are per hour of session unless named per day."""

    active: tuple[float, ...]
    sessions: float
    hours: tuple[float, ...]
    minutes: float
    mobile: float
    home: float
    uri: float
    listview: float
    report: float
    exports_per_day: float
    rest: float
    tool_runs_per_day: float


def _hours(*spans: tuple[int, int, float]) -> tuple[float, ...]:
    w = np.full(24, 0.002)
    for lo, hi, weight in spans:
        w[lo:hi] += weight
    return tuple(w / w.sum())


HABITS: dict[int, Habits] = {
    ADVISOR: Habits((0.85, 0.85, 0.85, 0.85, 0.88, 0.9, 0.15), 2.2, _hours((10, 19, 1.0), (11, 13, 0.6), (15, 18, 0.7)),
                    75, 0.5, 0.04, 40, 1.5, 0.6, 0.01, 60, 0.0),
    ANALYST: Habits((0.92, 0.93, 0.93, 0.92, 0.88, 0.04, 0.02), 2.0, _hours((8, 19, 1.0), (9, 12, 0.5), (14, 17, 0.5)),
                    150, 0.0, 0.2, 30, 1.0, 1.5, 0.35, 0, 0.12),
    SERVICE: Habits((0.85, 0.85, 0.85, 0.85, 0.85, 0.5, 0.2), 1.6, _hours((8, 21, 1.0), (9, 12, 0.4), (14, 18, 0.4)),
                    200, 0.05, 0.1, 52, 2, 0.3, 0.02, 30, 0.0),
    ADMIN: Habits((0.95, 0.95, 0.95, 0.95, 0.9, 0.1, 0.05), 2.5, _hours((8, 19, 1.0), (9, 11, 0.4)),
                  90, 0.0, 0.25, 34, 0.8, 0.8, 0.1, 0, 0.3),
}
_ROLE_ORDER = (ADVISOR, ANALYST, SERVICE, ADMIN)


@dataclass
class Day:
    """One simulated UTC day: its index, date, start (epoch ms) and random generator."""

    index: int
    date: dt.date
    start: int
    rng: np.random.Generator

    @property
    def end(self) -> int:
        """Epoch ms at which the day ends (exclusive)."""
        return self.start + DAY_MS


@dataclass
class Events:
    """Batches collected for one day (or part of it), keyed by output kind (``elf/Login``,
    ``rtem/ApiEvent``, ``okta``, ``audit``)."""

    kinds: dict[str, list[Batch]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, batch: Batch) -> None:
        """Add a batch of ``kind`` (empty batches are ignored)."""
        if formats.size(batch):
            self.kinds[kind].append(batch)

    def extend(self, other: Events) -> None:
        """Take every batch of ``other``."""
        for kind, batches in other.kinds.items():
            self.kinds[kind] += batches


@dataclass
class Sessions:
    """One row per session of the day."""

    user: np.ndarray
    start: np.ndarray
    end: np.ndarray
    mobile: np.ndarray
    place: np.ndarray
    session_key: pa.Array
    login_key: pa.Array
    history: pa.Array
    okta_sid: pa.Array
    okta_tx: pa.Array
    okta_new: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    @property
    def place_index(self) -> np.ndarray:
        """Index into the population's per-place arrays."""
        return self.user * 2 + self.place


@dataclass
class Context:
    """What generators share: the population, the customers and a few reusable lists."""

    pop: Population
    customers: Customers
    perm: np.ndarray
    history_counter: list[int] = field(default_factory=lambda: [0])


def spread(day: Day, s: Sessions, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Place Poisson(rate × hours) events uniformly inside each session; returns (session index,
    epoch ms) per event, in time order."""
    hours = (s.end - s.start) / HOUR_MS
    counts = day.rng.poisson(np.asarray(rates) * hours)
    idx = np.repeat(np.arange(len(s)), counts)
    ts = s.start[idx] + (day.rng.random(len(idx)) * (s.end - s.start)[idx]).astype(np.int64)
    # Events come out in time order so their columns are built sorted (no reordering later).
    order = np.argsort(ts, kind="stable")
    return idx[order], ts[order]


def lognormal_ints(rng: np.random.Generator, median: float, sigma: float, n: int, lo: int = 1, hi: int = 10**9) -> np.ndarray:
    """``n`` integers from a log-normal with the given median, clipped to [lo, hi]."""
    return np.clip(np.exp(rng.normal(np.log(median), sigma, n)), lo, hi).astype(np.int64)


def scatter(parts: list[tuple[np.ndarray, pa.Array]], n: int) -> pa.Array:
    """Assemble a column of ``n`` rows from parts, each (row indices, values for those rows); rows
    no part covers are empty strings."""
    parts = [p for p in parts if len(p[0])]
    if n == 0:
        return const("", 0)
    covered = np.zeros(n, bool)
    for rows, _ in parts:
        covered[rows] = True
    if not covered.all():
        missing = np.flatnonzero(~covered)
        parts.append((missing, const("", len(missing))))
    rows = np.concatenate([p[0] for p in parts])
    values = pa.concat_arrays([p[1].cast(pa.string()) for p in parts])
    inverse = np.empty(n, np.int64)
    inverse[rows] = np.arange(n)
    return values.take(pa.array(inverse))


def windows(starts: np.ndarray, counts: np.ndarray, modulo: int) -> np.ndarray:
    """Concatenate ``range(starts[i], starts[i] + counts[i]) % modulo`` for every i."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    group_start = np.repeat(np.cumsum(counts) - counts, counts)
    offsets = np.arange(total) - group_start
    return (np.repeat(starts, counts) + offsets) % max(modulo, 1)


# --- sessions ------------------------------------------------------------------------------------

def make_sessions(day: Day, ctx: Context, users: np.ndarray, offsets: np.ndarray) -> Sessions:
    """Draw the day's sessions of ``users`` (human user indices) given their UTC ``offsets``."""
    rng = day.rng
    pop = ctx.pop
    role = pop.role[users]
    weekday = day.date.weekday()
    active = np.zeros(len(users), bool)
    mean = np.zeros(len(users))
    for r in _ROLE_ORDER:
        m = role == r
        active[m] = rng.random(int(m.sum())) < HABITS[r].active[weekday]
        mean[m] = HABITS[r].sessions
    count = np.where(active, 1 + rng.poisson(np.maximum(mean - 1, 0)), 0)
    user = np.repeat(users, count)
    srole = pop.role[user]
    n = len(user)
    local_hour = np.zeros(n, np.int64)
    minutes = np.zeros(n)
    mobile = np.zeros(n, bool)
    home = np.zeros(n, bool)
    for r in _ROLE_ORDER:
        m = srole == r
        k = int(m.sum())
        h = HABITS[r]
        local_hour[m] = rng.choice(24, size=k, p=h.hours)
        minutes[m] = np.exp(rng.normal(np.log(h.minutes), 0.6, k))
        mobile[m] = rng.random(k) < h.mobile
        home[m] = rng.random(k) < h.home
    mobile &= pop.org.users.mobile_agent[user] >= 0
    off = np.repeat(offsets, count)
    local_ms = local_hour * HOUR_MS + rng.integers(0, HOUR_MS, n)
    start = day.start + (local_ms - off * MINUTE_MS) % DAY_MS
    end = np.minimum(start + (minutes * MINUTE_MS).astype(np.int64) + 30_000, day.end - 1)
    place = np.where(mobile, (rng.random(n) < 0.2).astype(np.int64), home.astype(np.int64))
    first = np.ones(n, bool)
    if n:
        order = np.lexsort((start, user))
        same_user = np.zeros(n, bool)
        same_user[order[1:]] = user[order[1:]] == user[order[:-1]]
        first = ~same_user
    okta_new = ~mobile & (first | (rng.random(n) < 0.35))
    return Sessions(
        user=user, start=start, end=end, mobile=mobile, place=place,
        session_key=ids.session_keys(rng, n), login_key=ids.session_keys(rng, n), history=history_ids(day, ctx, n),
        okta_sid=ids.okta_session_ids(rng, n), okta_tx=ids.okta_request_ids(rng, n), okta_new=okta_new,
    )


def history_ids(day: Day, ctx: Context, n: int) -> pa.Array:
    """Fresh LoginHistory ids (18 characters)."""
    start = ctx.history_counter[0]
    ctx.history_counter[0] += n
    counters = (day.index + 1) * 10_000_000 + start + np.arange(n)
    return ids.strings(ids.id_matrix("0Ya", ctx.pop.org.pod, counters))


def _common(day: Day, ctx: Context, s: Sessions, idx: np.ndarray, ts: np.ndarray) -> Batch:
    """ELF columns every in-session event shares."""
    pop = ctx.pop
    rng = day.rng
    n = len(idx)
    user = pa.array(s.user[idx])
    return {
        "ts": ts, "USER_ID": pop.id15.take(user), "USER_ID_DERIVED": pop.id18.take(user),
        "SESSION_KEY": s.session_key.take(pa.array(idx)), "LOGIN_KEY": s.login_key.take(pa.array(idx)),
        "CLIENT_IP": pop.place_ip.take(pa.array(s.place_index[idx])), "USER_TYPE": "Standard", "REQUEST_STATUS": "S",
        "RUN_TIME": lognormal_ints(rng, 120, 0.8, n), "CPU_TIME": lognormal_ints(rng, 30, 0.8, n),
        "DB_TOTAL_TIME": lognormal_ints(rng, 40_000_000, 1.0, n),
    }


def _rtem_common(ctx: Context, s: Sessions, idx: np.ndarray, ts: np.ndarray) -> Batch:
    pop = ctx.pop
    user = pa.array(s.user[idx])
    ai = pa.array(idx)
    return {
        "ts": ts, "UserId": pop.id18.take(user), "Username": pop.username.take(user),
        "SessionKey": s.session_key.take(ai), "LoginKey": s.login_key.take(ai), "LoginHistoryId": s.history.take(ai),
        "SourceIp": pop.place_ip.take(pa.array(s.place_index[idx])),
    }


# --- logins --------------------------------------------------------------------------------------

def logins(day: Day, ctx: Context, s: Sessions, out: Events) -> None:
    """Okta sign-in + SSO for desktop sessions, Salesforce Login / LoginEvent for all sessions,
    and a Logout (and Okta session end) for the sessions users close themselves."""
    rng = day.rng
    pop = ctx.pop
    org = pop.org
    n = len(s)
    ts = s.start
    mobile = s.mobile
    sp_init = rng.random(n) < 0.5
    pi = pa.array(s.place_index)
    user = pa.array(s.user)
    ua = pc.if_else(pa.array(mobile), pop.mobile_ua.take(user), pop.desktop_ua.take(user))
    login_type = pc.if_else(pa.array(mobile), lit("i"), pc.if_else(pa.array(sp_init), lit("8"), lit("5")))
    out.add("elf/Login", {
        "ts": ts, "USER_ID": pop.id15.take(user), "USER_ID_DERIVED": pop.id18.take(user), "LOGIN_KEY": s.login_key,
        "USER_TYPE": "Standard", "RUN_TIME": lognormal_ints(rng, 150, 0.5, n), "CPU_TIME": lognormal_ints(rng, 30, 0.5, n),
        "DB_TOTAL_TIME": lognormal_ints(rng, 90_000_000, 0.6, n),
        "URI": pc.if_else(pa.array(mobile), lit("/services/oauth2/token"), lit("/saml/SSO")),
        "LOGIN_TYPE": login_type, "BROWSER_TYPE": ua, "API_VERSION": "9998.0", "USER_NAME": pop.username.take(user),
        "TLS_PROTOCOL": "TLSv1.3", "CIPHER_SUITE": "TLS_AES_256_GCM_SHA384", "USE_API_TOKEN": "",
        "HTTP_REFERER": pc.if_else(pa.array(mobile), lit(""), lit(f"https://{org.okta_domain}/")),
        "LOGIN_URL": org.my_domain, "COUNTRY_CODE": pop.place_country.take(pi),
        "LOGIN_SUB_TYPE": pc.if_else(pa.array(mobile), lit("oauthrefreshtoken"), lit("")),
        "AUTHENTICATION_SERVICE_ID": pc.if_else(pa.array(mobile), lit(""), lit(org.saml_config_id)),
        "CLIENT_IP": pop.place_ip.take(pi), "LOGIN_STATUS": "LOGIN_NO_ERROR", "SOURCE_IP": pop.place_ip.take(pi),
    })
    out.add("rtem/LoginEvent", {
        "ts": ts, "UserId": pop.id18.take(user), "Username": pop.username.take(user), "LoginKey": s.login_key,
        "LoginHistoryId": s.history, "SourceIp": pop.place_ip.take(pi), "Status": "Success",
        "Application": pc.if_else(pa.array(mobile), lit("Salesforce for iOS"), lit("Browser")),
        "Browser": pc.if_else(pa.array(mobile), lit("Unknown"), pop.desktop_browser.take(user)),
        "Platform": pc.if_else(pa.array(mobile), pop.mobile_platform.take(user), pop.desktop_platform.take(user)),
        "LoginType": pc.if_else(pa.array(mobile), lit("Remote Access 2.0"),
                                pc.if_else(pa.array(sp_init), lit("SAML Sfdc Initiated SSO"),
                                           lit("SAML Idp Initiated SSO"))),
        "LoginSubType": pc.if_else(pa.array(mobile), lit("OAuth Refresh Token"), lit("")),
        "AuthServiceId": pc.if_else(pa.array(mobile), lit(""), lit(ids.to18(org.saml_config_id))),
        "LoginUrl": org.my_domain, "City": pop.place_city.take(pi), "Country": pop.place_country_name.take(pi),
        "CountryIso": pop.place_country.take(pi), "PostalCode": pop.place_postal.take(pi),
        "Subdivision": pop.place_state.take(pi), "LoginLatitude": pop.place_lat.take(pi),
        "LoginLongitude": pop.place_lon.take(pi), "LoginGeoId": ids.strings(ids.id_matrix("04F", org.pod, s.place_index + 5000)),
    })

    # Okta: full sign-in for new Okta sessions, SSO only when the Okta session is still valid.
    desktop = np.flatnonzero(~mobile)
    new = np.flatnonzero(s.okta_new)
    fail = new[rng.random(len(new)) < 0.03]
    sso_ts = ts[desktop] - rng.integers(800, 2500, len(desktop))
    t0 = ts[new] - rng.integers(6000, 40_000, len(new))
    okta_events = [
        ("policy.evaluate_sign_on", new, t0, "ALLOW", "Sign-on policy evaluation resulted in ALLOW", formats.CRED_NONE),
        ("user.session.start", new, t0 + 300, "SUCCESS", "", formats.CRED_PASSWORD),
        ("user.authentication.auth_via_mfa", new, t0 + rng.integers(3000, 15_000, len(new)), "SUCCESS", "",
         formats.CRED_PUSH),
        ("user.authentication.sso", desktop, sso_ts, "SUCCESS", "", formats.CRED_NONE),
        ("user.session.start", fail, ts[fail] - rng.integers(60_000, 180_000, len(fail)), "FAILURE",
         "INVALID_CREDENTIALS", formats.CRED_PASSWORD),
    ]
    for et, rows, when, result, reason, cred in okta_events:
        out.add("okta", okta_batch(day, ctx, s, rows, when, et, result, reason, cred))

    # Users log out of some sessions; the rest expire.
    closing = np.flatnonzero(rng.random(n) < np.where(mobile, 0.05, 0.35))
    lt = s.end[closing]
    cu = pa.array(s.user[closing])
    ci = pa.array(closing)
    out.add("elf/Logout", {
        "ts": lt, "USER_ID": pop.id15.take(cu), "USER_ID_DERIVED": pop.id18.take(cu), "USER_TYPE": "S",
        "SESSION_TYPE": pc.if_else(pa.array(mobile[closing]), lit("O"), lit("U")), "SESSION_LEVEL": "1",
        "BROWSER_TYPE": ua.take(ci), "PLATFORM_TYPE": "1015", "RESOLUTION_TYPE": "9999", "APP_TYPE": "1000",
        "CLIENT_VERSION": "9998", "API_TYPE": "", "API_VERSION": "9998.0", "USER_INITIATED_LOGOUT": "1",
        "SESSION_KEY": s.session_key.take(ci), "LOGIN_KEY": s.login_key.take(ci),
        "CLIENT_IP": pop.place_ip.take(pa.array(s.place_index[closing])),
    })
    wrong = np.flatnonzero(~mobile & (rng.random(n) < 0.006))
    if len(wrong):
        wu = pa.array(s.user[wrong])
        wi = pa.array(s.place_index[wrong])
        wts = ts[wrong] - rng.integers(20_000, 120_000, len(wrong))
        wkeys = ids.session_keys(rng, len(wrong))
        out.add("elf/Login", {
            "ts": wts, "USER_ID": pop.id15.take(wu),
            "USER_TYPE": "Standard", "RUN_TIME": lognormal_ints(rng, 150, 0.5, len(wrong)),
            "CPU_TIME": lognormal_ints(rng, 30, 0.5, len(wrong)), "DB_TOTAL_TIME": lognormal_ints(rng, 90_000_000, 0.6, len(wrong)),
            "URI": "/index.jsp", "LOGIN_TYPE": "A", "BROWSER_TYPE": pop.desktop_ua.take(wu), "API_VERSION": "9998.0",
            "USER_NAME": pop.username.take(wu), "TLS_PROTOCOL": "TLSv1.3", "CIPHER_SUITE": "TLS_AES_256_GCM_SHA384",
            "LOGIN_URL": "login.salesforce.com", "COUNTRY_CODE": pop.place_country.take(wi),
            "CLIENT_IP": pop.place_ip.take(wi), "LOGIN_STATUS": "LOGIN_ERROR_INVALID_PASSWORD",
            "SOURCE_IP": pop.place_ip.take(wi), "LOGIN_KEY": wkeys,
        })
        out.add("rtem/LoginEvent", {
            "ts": wts, "UserId": pop.id18.take(wu), "Username": pop.username.take(wu),
            "SourceIp": pop.place_ip.take(wi), "Status": "Invalid Password", "Application": "Browser",
            "Browser": pop.desktop_browser.take(wu), "Platform": pop.desktop_platform.take(wu),
            "LoginType": "Application", "LoginUrl": "login.salesforce.com", "LoginKey": wkeys,
            "LoginHistoryId": history_ids(day, ctx, len(wrong)), "CountryIso": pop.place_country.take(wi),
            "Country": pop.place_country_name.take(wi), "City": pop.place_city.take(wi),
        })
    ended = closing[s.okta_new[closing]]
    out.add("okta", okta_batch(day, ctx, s, ended, s.end[ended] + 500, "user.session.end", "SUCCESS", "",
                               formats.CRED_NONE))


_OKTA_URI = {
    "policy.evaluate_sign_on": "/api/v1/authn",
    "user.session.start": "/api/v1/authn",
    "user.authentication.auth_via_mfa": "/api/v1/authn/factors/opf1push0kta0verify/verify",
    "user.authentication.sso": "/app/salesforce/sso/saml",
    "user.session.end": "/login/signout",
}


def okta_batch(day: Day, ctx: Context, s: Sessions, rows: np.ndarray, ts: np.ndarray, event_type: str, result: str,
               reason: str, credential: str) -> Batch:
    """Okta events of ``event_type`` for sessions ``rows`` at times ``ts``, from the session's place."""
    pop = ctx.pop
    org = pop.org
    n = len(rows)
    if n == 0:
        return {"ts": np.zeros(0, np.int64)}
    user = pa.array(s.user[rows])
    pi = pa.array(s.place_index[rows])
    tx = s.okta_tx.take(pa.array(rows))
    if event_type == "user.authentication.sso":
        app = formats.okta_target(org.okta_sf_app_id, "Salesforce", "Salesforce", "AppInstance")
        target = join(f"[{app},", pop.okta_user_target.take(user), "]")  # okta_sso_target, per row
        extra = ',"initiationType":"IDP_INITIATED"'
    elif event_type == "policy.evaluate_sign_on":
        target = const(formats.okta_policy_target(org.okta_policy_id, org.okta_rule_id), n)
        extra = f',"behaviors":"{formats.NEGATIVE_BEHAVIORS}","threatSuspected":"false"'
    elif event_type == "user.authentication.auth_via_mfa":
        target = join("[", pop.okta_user_target.take(user), "]")
        extra = ',"factor":"OKTA_VERIFY_PUSH"'
    elif event_type == "user.session.start":
        target = const("null", n)
        extra = formats.risk_extra("LOW", "", formats.NEGATIVE_BEHAVIORS)
    else:
        target = const("null", n)
        extra = ""
    return {
        "ts": ts, "eventType": event_type, "actor": pop.okta_actor.take(user), "client": pop.place_client.take(pi),
        "securityContext": pop.place_security.take(pi), "ipChain": pop.place_chain.take(pi),
        "authenticationContext": formats.okta_auth_context(s.okta_sid.take(pa.array(rows)), credential, n),
        "target": target, "debugData": formats.debug_data(tx, _OKTA_URI.get(event_type, "/api/v1/authn"), extra, n),
        "result": result, "reason": reason, "transaction": tx,
    }


# --- UI activity -----------------------------------------------------------------------------------

_PAGE_KINDS = ("Contact", "Account", "Case", "list", "home", "reports", "setup")
_PAGE_MIX = {
    ADVISOR: (0.5, 0.2, 0.02, 0.15, 0.1, 0.03, 0.0),
    ANALYST: (0.3, 0.15, 0.05, 0.15, 0.1, 0.25, 0.0),
    SERVICE: (0.35, 0.1, 0.4, 0.08, 0.05, 0.02, 0.0),
    ADMIN: (0.15, 0.05, 0.05, 0.1, 0.1, 0.1, 0.45),
}
_SETUP_PAGES = ("/lightning/setup/SetupOneHome/home", "/lightning/setup/ManageUsers/home",
                "/lightning/setup/PermSets/home", "/lightning/setup/ConnectedApplication/home",
                "/lightning/setup/EventLogFileBrowser/home", "/lightning/setup/SecurityEvents/home")


def _customer_pick(day: Day, ctx: Context, users: np.ndarray) -> np.ndarray:
    """A customer each user would look at: from their book for advisors, anyone otherwise."""
    cust = ctx.customers
    pick = day.rng.integers(0, len(cust), len(users))
    adv = ctx.pop.role[users] == ADVISOR
    if adv.any():
        pick[adv] = cust.sample_book(day.rng, users[adv])
    return pick


def ui_activity(day: Day, ctx: Context, s: Sessions, out: Events) -> None:
    """Page views (ELF URI) and list views (RTEM ListViewEvent) in desktop sessions."""
    rng = day.rng
    pop = ctx.pop
    cust = ctx.customers
    desktop = ~s.mobile
    role = pop.role[s.user]
    rate = np.array([HABITS.get(int(r), HABITS[ADVISOR]).uri for r in range(5)])[role] * desktop
    idx, ts = spread(day, s, rate)
    n = len(idx)
    users = s.user[idx]
    urole = pop.role[users]
    kind = np.zeros(n, np.int64)
    for r, mix in _PAGE_MIX.items():
        m = urole == r
        kind[m] = rng.choice(len(_PAGE_KINDS), size=int(m.sum()), p=mix)
    parts_uri: list[tuple[np.ndarray, pa.Array]] = []
    parts_id: list[tuple[np.ndarray, pa.Array]] = []
    for k, name in enumerate(_PAGE_KINDS):
        rows = np.flatnonzero(kind == k)
        if not len(rows):
            continue
        if name in ("Contact", "Account", "Case"):
            if name == "Case":
                rid = cust.case_ids(rng.integers(0, cust.n_cases, len(rows)))
            else:
                picked = _customer_pick(day, ctx, users[rows])
                rid = cust.contact_ids(picked) if name == "Contact" else cust.account_ids(picked)
            parts_uri.append((rows, join(f"/lightning/r/{name}/", rid, "/view")))
            parts_id.append((rows, rid))
        elif name == "list":
            parts_uri.append((rows, take(["/lightning/o/Contact/list?filterName=Recent",
                                           "/lightning/o/Contact/list?filterName=My_Clients",
                                           "/lightning/o/Case/list?filterName=MyOpenCases"],
                                          rng.integers(0, 3, len(rows)))))
        elif name == "home":
            parts_uri.append((rows, const("/lightning/page/home", len(rows))))
        elif name == "reports":
            parts_uri.append((rows, const("/lightning/o/Report/home", len(rows))))
        else:
            parts_uri.append((rows, take(_SETUP_PAGES, rng.integers(0, len(_SETUP_PAGES), len(rows)))))
    batch = _common(day, ctx, s, idx, ts)
    batch.update({
        "URI": scatter(parts_uri, n), "URI_ID_DERIVED": scatter(parts_id, n),
        "REFERRER_URI": take(["/lightning/page/home", "/lightning/o/Contact/list?filterName=Recent", ""],
                             rng.integers(0, 3, n)),
    })
    out.add("elf/URI", batch)

    rate = np.array([HABITS.get(int(r), HABITS[ADVISOR]).listview for r in range(5)])[role] * desktop
    idx, ts = spread(day, s, rate)
    n = len(idx)
    users = s.user[idx]
    case_list = (pop.role[users] == SERVICE) & (rng.random(n) < 0.6)
    rows_n = rng.integers(25, 51, n)
    owners = np.repeat(users, rows_n)
    flat = _customer_pick(day, ctx, owners)
    case_flat = np.repeat(case_list, rows_n)
    record_ids = scatter([(np.flatnonzero(~case_flat), cust.contact_ids(flat[~case_flat])),
                          (np.flatnonzero(case_flat), cust.case_ids(flat[case_flat] % cust.n_cases))], len(flat))
    batch = _rtem_common(ctx, s, idx, ts)
    batch.update({
        "ColumnHeaders": pc.if_else(pa.array(case_list), lit("CaseNumber, Contact.Name, Subject, Status, Priority"),
                                    lit("Name, Phone, Email, Owner.Alias, Total_Spend__c")),
        "DeveloperName": pc.if_else(pa.array(case_list), lit("MyOpenCases"), lit("My_Clients")),
        "Name": pc.if_else(pa.array(case_list), lit("My Open Cases"), lit("My Clients")),
        "ListViewId": pc.if_else(pa.array(case_list), lit(ids.new_id("00B", pop.org.pod, 7731)[1]),
                                 lit(ids.new_id("00B", pop.org.pod, 7702)[1])),
        "QueriedEntities": pc.if_else(pa.array(case_list), lit("Case"), lit("Contact")),
        "EventSource": "Lightning", "ExecutionIdentifier": uuids(rng, n), "NumberOfColumns": "5",
        "OrderBy": "[LastModifiedDate DESC NULLS FIRST, Id DESC NULLS FIRST]", "OwnerId": pop.id18.take(pa.array(users)),
        "Records": formats.report_records(record_ids, rows_n), "RowsProcessed": doubles(rows_n), "Scope": "Mine",
    })
    out.add("rtem/ListViewEvent", batch)


# --- reports and exports ---------------------------------------------------------------------------

def reports(day: Day, ctx: Context, s: Sessions, out: Events) -> None:
    """Report runs (ELF Report + RTEM ReportEvent) and report exports (ELF Report, ReportExport and
    chunked ReportEvent with ``ReportExported``) in desktop sessions."""
    pop = ctx.pop
    role = pop.role[s.user]
    desktop = ~s.mobile
    rate = np.array([HABITS.get(int(r), HABITS[ADVISOR]).report for r in range(5)])[role] * desktop
    idx, ts = spread(day, s, rate)
    _report_events(day, ctx, s, idx, ts, export=False, out=out)
    # Exports: a daily rate spread over the day's working hours.
    per_hour = np.array([HABITS.get(int(r), HABITS[ADVISOR]).exports_per_day for r in range(5)])[role] / 6.0
    idx, ts = spread(day, s, per_hour * desktop)
    _report_events(day, ctx, s, idx, ts, export=True, out=out)


def _report_events(day: Day, ctx: Context, s: Sessions, idx: np.ndarray, ts: np.ndarray, export: bool, out: Events) -> None:
    rng = day.rng
    pop = ctx.pop
    cust = ctx.customers
    rep = pop.org.reports
    n = len(idx)
    if n == 0:
        return
    users = s.user[idx]
    r = rng.integers(0, len(rep.name), n)
    median = rep.rows_median[r]
    advisor = pop.role[users] == ADVISOR
    total = (median * np.exp(rng.normal(0, 0.9, n))).astype(np.int64)
    if export:
        total = total * np.where(advisor, 1, 4)
    total = np.clip(total, 1, 60_000)
    total[advisor] = np.minimum(total[advisor], np.maximum(cust.book_len[users[advisor]], 5))
    shown = np.minimum(total, 2000) if not export else total
    # Which records the report returns: advisors their book, others a window of the customer base.
    chunk = 2000
    n_chunks = np.maximum(1, -(-shown // chunk))
    ev = np.repeat(np.arange(n), n_chunks)
    seq = np.arange(len(ev)) - np.repeat(np.cumsum(n_chunks) - n_chunks, n_chunks)
    per_chunk = np.minimum(chunk, shown[ev] - seq * chunk)
    starts = rng.integers(0, len(cust), n)
    flat_ev = np.repeat(ev, per_chunk)
    within = np.arange(len(flat_ev)) - np.repeat(np.cumsum(per_chunk) - per_chunk, per_chunk)
    absolute = within + np.repeat(seq * chunk, per_chunk)
    owners = users[flat_ev]
    adv_flat = advisor[flat_ev]
    cust_idx = ctx.perm[(starts[flat_ev] + absolute) % len(cust)]
    if adv_flat.any():
        own = owners[adv_flat]
        pos = absolute[adv_flat] % np.maximum(cust.book_len[own], 1)
        cust_idx[adv_flat] = cust.book_order[np.minimum(cust.book_start[own] + pos, len(cust.book_order) - 1)]
    entity = pa.array(rep.entity).take(pa.array(r))
    case_rows = np.array([e == "Case" for e in rep.entity])[r[flat_ev]]
    record_ids = scatter([(np.flatnonzero(~case_rows), cust.contact_ids(cust_idx[~case_rows])),
                          (np.flatnonzero(case_rows), cust.case_ids(cust_idx[case_rows] % cust.n_cases))], len(cust_idx))
    rid15 = pa.array(rep.id15).take(pa.array(r))
    rid18 = pa.array(rep.id18).take(pa.array(r))
    name = pa.array(rep.name).take(pa.array(r))
    ncols = pa.array(rep.columns).take(pa.array(r))
    n_columns = np.array([c.count(",") + 1 for c in rep.columns])[r]

    batch = _common(day, ctx, s, idx, ts)
    batch.update({
        "ENTITY_NAME": entity, "DISPLAY_TYPE": "H", "RENDERING_TYPE": "W" if not export else "E", "REPORT_ID": rid15,
        "ROW_COUNT": total, "NUMBER_EXCEPTION_FILTERS": "0", "NUMBER_COLUMNS": n_columns,
        "AVERAGE_ROW_SIZE": rng.integers(120, 400, n), "SORT": "", "DB_BLOCKS": lognormal_ints(rng, 2000, 1.0, n),
        "DB_CPU_TIME": lognormal_ints(rng, 40, 0.8, n), "NUMBER_BUCKETS": "0",
        "ORIGIN": "ReportExported" if export else "ReportRunFromLightning", "IS_SCHEDULED": "0",
        "URI": join("/lightning/r/Report/", rid18, "/view"), "URI_ID_DERIVED": rid18, "REPORT_ID_DERIVED": rid18,
    })
    out.add("elf/Report", batch)
    if export:
        fmt = take(["CSV", "Excel"], (rng.random(n) < 0.4).astype(np.int64))
        common = _common(day, ctx, s, idx, ts + rng.integers(2000, 20_000, n))
        out.add("elf/ReportExport", {
            "ts": common["ts"], "USER_ID": common["USER_ID"], "USER_ID_DERIVED": common["USER_ID_DERIVED"],
            "CLIENT_IP": common["CLIENT_IP"], "URI": join("/", rid15, "?export=1&enc=UTF-8&xf=",
                                                           pc.if_else(pc.equal(fmt, lit("CSV")), lit("csv"), lit("xls"))),
            "CLIENT_INFO": ctx.pop.desktop_ua.take(pa.array(users)), "REPORT_DESCRIPTION": name, "URI_ID_DERIVED": rid18,
        })
    ai = pa.array(ev)
    rt = _rtem_common(ctx, s, idx[ev], ts[ev] + seq)
    exec_id = uuids(rng, n).take(ai)
    rt.update({
        "ColumnHeaders": join("[", ncols.take(ai), "]"), "Description": "", "EventSource": "Lightning",
        "ExecutionIdentifier": exec_id, "ExportFileFormat": fmt.take(ai) if export else "",
        "Format": pa.array(rep.format).take(pa.array(r[ev])), "Name": name.take(ai),
        "NumberOfColumns": n_columns[ev], "Operation": "ReportExported" if export else "ReportRunFromLightning",
        "OwnerId": pop.id18.take(pa.array(rep.owner[r[ev]])), "QueriedEntities": entity.take(ai),
        "Records": formats.report_records(record_ids, per_chunk), "ReportId": rid18.take(ai),
        "RowsProcessed": doubles(total[ev]), "Scope": "organization", "Sequence": seq + 1,
        "DisplayedFieldEntities": join("[", entity.take(ai), "]"),
    })
    out.add("rtem/ReportEvent", rt)


# --- API: mobile app, Data Loader, CLI ------------------------------------------------------------

_MOBILE_CALLS = (
    ("GET", "/ui-api/records/", "Contact", 0.35, 200),
    ("GET", "/query", "Contact", 0.15, 200),
    ("GET", "/query", "Task", 0.1, 200),
    ("GET", "/sobjects/Contact/", "Contact", 0.15, 200),
    ("PATCH", "/sobjects/Contact/", "Contact", 0.05, 204),
    ("POST", "/sobjects/Task", "Task", 0.05, 201),
    ("GET", "/ui-api/list-records/Contact/RecentlyViewed", "Contact", 0.15, 200),
)


def mobile_api(day: Day, ctx: Context, s: Sessions, out: Events) -> None:
    """REST calls of the Salesforce mobile app (ELF RestApi + ApiTotalUsage; the mobile app is
    not captured by RTEM ApiEvent)."""
    rng = day.rng
    pop = ctx.pop
    cust = ctx.customers
    role = pop.role[s.user]
    rate = np.array([HABITS.get(int(r), HABITS[ADVISOR]).rest for r in range(5)])[role] * s.mobile
    idx, ts = spread(day, s, rate)
    n = len(idx)
    users = s.user[idx]
    call = rng.choice(len(_MOBILE_CALLS), size=n, p=[c[3] for c in _MOBILE_CALLS])
    rid = cust.contact_ids(_customer_pick(day, ctx, users))
    method = take([c[0] for c in _MOBILE_CALLS], call)
    path = take([c[1] for c in _MOBILE_CALLS], call)
    with_id = pc.match_substring_regex(path, "/$")
    uri = pc.if_else(with_id, join(API, path, rid), join(API, path))
    rows = np.where(np.isin(call, [1, 2]), rng.integers(0, 50, n), np.where(call == 6, 25, 1))
    rows = np.where(np.isin(call, [4, 5]), 1, rows)
    status = np.array([c[4] for c in _MOBILE_CALLS])[call]
    app = pop.org.apps["mobile"]
    batch = _common(day, ctx, s, idx, ts)
    batch.update({
        "URI": uri, "ENTITY_NAME": take([c[2] for c in _MOBILE_CALLS], call), "METHOD": method,
        "MEDIA_TYPE": "application/json", "STATUS_CODE": status, "USER_AGENT": pop.mobile_ua.take(pa.array(users)),
        "ROWS_PROCESSED": rows, "NUMBER_FIELDS": rng.integers(5, 40, n), "DB_BLOCKS": lognormal_ints(rng, 200, 1.0, n),
        "DB_CPU_TIME": lognormal_ints(rng, 10, 0.8, n), "REQUEST_SIZE": np.where(np.isin(call, [4, 5]), rng.integers(200, 2000, n), 0),
        "RESPONSE_SIZE": rows * rng.integers(400, 1200, n) + 200, "CONNECTED_APP_ID": app.id15,
    })
    out.add("elf/RestApi", batch)
    out.add("elf/ApiTotalUsage", total_usage(batch, "REST", path, "", app.id15))


def total_usage(batch: Batch, family: str, resource: pa.Array | str, client: pa.Array | str, app_id: pa.Array | str) -> Batch:
    """ELF ApiTotalUsage rows mirroring API calls already in ``batch`` (ELF API/RestApi columns)."""
    n = formats.size(batch)
    method = batch.get("METHOD", batch.get("HTTP_METHOD", "POST"))
    return {
        "ts": batch["ts"], "USER_ID": batch["USER_ID"], "USER_ID_DERIVED": batch.get("USER_ID_DERIVED", ""),
        "REQUEST_ID": batch.get("REQUEST_ID", ""), "API_FAMILY": family, "API_VERSION": API_VERSION,
        "API_RESOURCE": as_strings(resource, n), "CLIENT_NAME": client, "CLIENT_IP": batch["CLIENT_IP"],
        "CONNECTED_APP_ID": app_id, "ENTITY_NAME": batch.get("ENTITY_NAME", ""), "HTTP_METHOD": method,
        "STATUS_CODE": batch.get("STATUS_CODE", "200"), "COUNTS_AGAINST_API_LIMIT": "1",
        "URI": batch.get("URI", f"/services/Soap/u/{API_VERSION}"),
    }


def tools(day: Day, ctx: Context, s: Sessions, out: Events) -> None:
    """Analysts pulling contacts with Data Loader (SOAP query/queryMore of thousands of rows) and
    admins querying with the Salesforce CLI: benign bulk-looking reads from known clients."""
    rng = day.rng
    pop = ctx.pop
    role = pop.role[s.user]
    per_session = np.array([HABITS.get(int(r), HABITS[ADVISOR]).tool_runs_per_day / HABITS.get(int(r), HABITS[ADVISOR]).sessions
                            for r in range(5)])[role] * ~s.mobile
    runs = rng.poisson(per_session)
    sess = np.repeat(np.arange(len(s)), runs)
    if not len(sess):
        return
    start = s.start[sess] + (rng.random(len(sess)) * (s.end - s.start)[sess] * 0.8).astype(np.int64)
    analyst = pop.role[s.user[sess]] == ANALYST
    for is_analyst in (True, False):
        m = analyst == is_analyst
        if m.any():
            api_run(day, ctx, s.user[sess[m]], s.place_index[sess[m]], start[m], dataloader=is_analyst, out=out)


_DL_ENTITIES = ("Contact", "Account", "Lead")
_DL_FIELDS = {
    "Contact": "Id, FirstName, LastName, Email, Phone, MailingCity, MailingCountry, Brand__c, Total_Spend__c",
    "Account": "Id, Name, PersonEmail, PersonMobilePhone, BillingCity, Tier__c",
    "Lead": "Id, FirstName, LastName, Email, Company, LeadSource, Status",
}


def api_run(day: Day, ctx: Context, users: np.ndarray, places: np.ndarray, start: np.ndarray, dataloader: bool,
            out: Events) -> None:
    """One tool run per element: a login, then query + queryMore calls (Data Loader, SOAP) or a few
    REST queries (CLI), with ELF API/RestApi, ApiTotalUsage and RTEM ApiEvent rows."""
    rng = day.rng
    pop = ctx.pop
    cust = ctx.customers
    k = len(users)
    app = pop.org.apps["dataloader" if dataloader else "cli"]
    if dataloader:
        entity_ix = rng.choice(3, size=k, p=[0.7, 0.2, 0.1])
        total = lognormal_ints(rng, 6000, 0.9, k, 200, 80_000)
        batch_size = 2000
        agent = app.client
    else:
        entity_ix = np.zeros(k, np.int64)
        total = lognormal_ints(rng, 40, 1.2, k, 1, 2000)
        batch_size = 2000
        agent = "sfdx toolbelt:7.209.6 sf/2.78.3 darwin-arm64 node-v20.18.1"
    total = np.minimum(total, np.array([cust.population(e) for e in _DL_ENTITIES])[entity_ix])
    calls = np.maximum(1, -(-total // batch_size))
    run = np.repeat(np.arange(k), calls)
    seq = np.arange(len(run)) - np.repeat(np.cumsum(calls) - calls, calls)
    rows = np.minimum(batch_size, total[run] - seq * batch_size)
    ts = start[run] + seq * rng.integers(900, 4000, len(run)) + 5000
    keys = ids.session_keys(rng, k)
    lkeys = ids.session_keys(rng, k)
    ip = pop.place_ip.take(pa.array(places))
    user = pa.array(users)
    out.add("elf/Login", {
        "ts": start, "USER_ID": pop.id15.take(user), "LOGIN_KEY": lkeys, "USER_TYPE": "Standard",
        "RUN_TIME": lognormal_ints(rng, 150, 0.5, k), "CPU_TIME": lognormal_ints(rng, 30, 0.5, k),
        "DB_TOTAL_TIME": lognormal_ints(rng, 90_000_000, 0.6, k), "URI": "/services/oauth2/token", "LOGIN_TYPE": "i",
        "BROWSER_TYPE": agent, "API_VERSION": "9998.0", "USER_NAME": pop.username.take(user), "TLS_PROTOCOL": "TLSv1.3",
        "CIPHER_SUITE": "TLS_AES_256_GCM_SHA384", "LOGIN_URL": pop.org.my_domain,
        "COUNTRY_CODE": pop.place_country.take(pa.array(places)), "LOGIN_SUB_TYPE": "oauthrefreshtoken",
        "CLIENT_IP": ip, "LOGIN_STATUS": "LOGIN_NO_ERROR", "SOURCE_IP": ip,
    })
    out.add("rtem/LoginEvent", {
        "ts": start, "UserId": pop.id18.take(user), "Username": pop.username.take(user), "LoginKey": lkeys,
        "LoginHistoryId": history_ids(day, ctx, k), "SourceIp": ip, "Status": "Success", "Application": app.name,
        "Browser": "Unknown", "Platform": "Unknown", "LoginType": "Remote Access 2.0",
        "LoginSubType": "OAuth Refresh Token", "LoginUrl": pop.org.my_domain,
        "CountryIso": pop.place_country.take(pa.array(places)), "Country": pop.place_country_name.take(pa.array(places)),
        "City": pop.place_city.take(pa.array(places)), "PostalCode": pop.place_postal.take(pa.array(places)),
        "Subdivision": pop.place_state.take(pa.array(places)), "LoginLatitude": pop.place_lat.take(pa.array(places)),
        "LoginLongitude": pop.place_lon.take(pa.array(places)),
    })
    entity = take(_DL_ENTITIES, entity_ix)
    flat_run = np.repeat(run, rows)
    within = np.arange(len(flat_run)) - np.repeat(np.cumsum(rows) - rows, rows)
    absolute = within + np.repeat(seq * batch_size, rows)
    starts = rng.integers(0, len(cust), k)
    rec_idx = ctx.perm[(starts[flat_run] + absolute) % len(cust)]
    ent_flat = entity_ix[flat_run]
    rec_ids = scatter([
        (np.flatnonzero(ent_flat == e), cust.record_ids(_DL_ENTITIES[e], rec_idx[ent_flat == e] % cust.population(_DL_ENTITIES[e])))
        for e in range(3)
    ], len(flat_run))
    ri = pa.array(run)
    ev_user = pa.array(users[run])
    ev_ip = ip.take(ri)
    ev_entity = entity.take(ri)
    op = pc.if_else(pa.array(seq == 0), lit("query"), lit("queryMore"))
    common = {
        "ts": ts, "USER_ID": pop.id15.take(ev_user), "USER_ID_DERIVED": pop.id18.take(ev_user),
        "SESSION_KEY": keys.take(ri), "LOGIN_KEY": lkeys.take(ri), "CLIENT_IP": ev_ip, "USER_TYPE": "Standard",
        "RUN_TIME": lognormal_ints(rng, 400, 0.8, len(run)), "CPU_TIME": lognormal_ints(rng, 150, 0.8, len(run)),
        "DB_TOTAL_TIME": lognormal_ints(rng, 200_000_000, 0.8, len(run)), "ENTITY_NAME": ev_entity,
        "ROWS_PROCESSED": rows, "RESPONSE_SIZE": rows * rng.integers(250, 450, len(run)) + 500,
        "REQUEST_ID": ids.request_ids(rng, len(run)),
    }
    query_text = join("SELECT ", take([_DL_FIELDS[e] for e in _DL_ENTITIES], entity_ix), " FROM ", entity,
                      pc.if_else(pa.array(rng.random(k) < 0.5), lit(" WHERE LastModifiedDate = LAST_N_DAYS:30"),
                                 lit("")))
    if dataloader:
        api = dict(common)
        api.update({"URI": "Api", "API_TYPE": "P", "API_VERSION": API_VERSION, "CLIENT_NAME": app.client,
                    "METHOD_NAME": op, "REQUEST_SIZE": rng.integers(300, 900, len(run)), "EXCEPTION_MESSAGE": "",
                    "DB_BLOCKS": lognormal_ints(rng, 5000, 1.0, len(run)), "DB_CPU_TIME": lognormal_ints(rng, 100, 0.8, len(run))})
        out.add("elf/API", api)
        out.add("elf/ApiTotalUsage", total_usage(api, "SOAP", op, app.client, app.id15))
    else:
        rest = dict(common)
        locator = ids.strings(ids.id_matrix("01g", pop.org.pod, rng.integers(10**6, 10**8, len(run))), 15)
        rest.update({"URI": pc.if_else(pa.array(seq == 0), lit(f"{API}/query"), join(f"{API}/query/", locator, "-2000")),
                     "METHOD": "GET", "MEDIA_TYPE": "application/json", "STATUS_CODE": "200", "USER_AGENT": agent,
                     "NUMBER_FIELDS": "8", "CONNECTED_APP_ID": app.id15})
        out.add("elf/RestApi", rest)
        out.add("elf/ApiTotalUsage", total_usage(rest, "REST", "/query", "", app.id15))
    out.add("rtem/ApiEvent", {
        "ts": ts + 3, "UserId": pop.id18.take(ev_user), "Username": pop.username.take(ev_user),
        "SessionKey": keys.take(ri), "LoginKey": lkeys.take(ri), "SourceIp": ev_ip,
        "ApiType": "SOAP Partner" if dataloader else "REST", "ApiVersion": API_VERSION, "Application": app.name,
        "Client": app.client, "ConnectedAppId": app.id18, "ElapsedTime": lognormal_ints(rng, 300, 0.8, len(run)),
        "Operation": pc.if_else(pa.array(seq == 0), lit("Query"), lit("QueryMore")),
        "QueriedEntities": ev_entity, "Query": query_text.take(ri),
        "Records": formats.api_records(take(_DL_ENTITIES, ent_flat), rec_ids, rows, seq + 1 == calls[run]),
        "RowsProcessed": doubles(rows), "UserAgent": "" if dataloader else agent,
    })


# --- admin noise: help desk, LoginAs, setup changes --------------------------------------------------

def admin_noise(day: Day, ctx: Context, users: np.ndarray, offsets: np.ndarray, out: Events) -> None:
    """Help-desk MFA resets followed by the user enrolling a new factor, self-service password
    resets, admins logging in as users, and Setup changes (audit trail)."""
    rng = day.rng
    pop = ctx.pop
    org = pop.org
    humans = users
    helpdesk = np.flatnonzero(org.users.helpdesk)
    admins = org.role_members(ADMIN)
    weekday = day.date.weekday() < 5
    n_resets = rng.poisson(0.003 * len(humans) * (1.0 if weekday else 0.3))
    if n_resets and len(helpdesk):
        targets = rng.choice(humans, size=n_resets)
        actors = rng.choice(helpdesk, size=n_resets)
        local = rng.integers(9 * HOUR_MS, 17 * HOUR_MS, n_resets)
        off = offsets[np.searchsorted(users, targets)]
        ts = day.start + (local - off * MINUTE_MS) % DAY_MS
        ts = np.minimum(ts, day.end - 4 * HOUR_MS)
        kind = np.where(rng.random(n_resets) < 0.6, "user.mfa.factor.reset_all", "user.account.reset_password")
        for et in ("user.mfa.factor.reset_all", "user.account.reset_password"):
            m = kind == et
            if m.any():
                out.add("okta", admin_okta(day, ctx, actors[m], targets[m], ts[m], et))
        # The user then signs in and enrols a new factor from their usual place.
        follow = ts + rng.integers(5 * MINUTE_MS, 3 * HOUR_MS, n_resets)
        out.add("okta", admin_okta(day, ctx, targets, targets, follow, "user.mfa.factor.activate"))
    n_self = rng.poisson(0.002 * len(humans))
    if n_self:
        who = rng.choice(humans, size=n_self)
        ts = day.start + rng.integers(6 * HOUR_MS, 20 * HOUR_MS, n_self)
        out.add("okta", admin_okta(day, ctx, who, who, ts, "user.account.reset_password"))
    # New phones: users retire the old Okta Verify factor and enrol the new one themselves.
    n_phone = rng.poisson(0.002 * len(humans))
    if n_phone:
        who = rng.choice(humans, size=n_phone)
        ts = day.start + rng.integers(6 * HOUR_MS, 20 * HOUR_MS, n_phone)
        out.add("okta", admin_okta(day, ctx, who, who, ts, "user.mfa.factor.deactivate"))
        out.add("okta", admin_okta(day, ctx, who, who, ts + rng.integers(30_000, 600_000, n_phone),
                                   "user.mfa.factor.activate"))

    if weekday and len(admins):
        n_as = rng.poisson(0.15 * len(admins))
        if n_as:
            login_as(day, ctx, rng.choice(admins, size=n_as), rng.choice(humans, size=n_as),
                     day.start + rng.integers(7 * HOUR_MS, 18 * HOUR_MS, n_as), out)
        n_audit = rng.poisson(0.6 * len(admins))
        if n_audit:
            from crmguard.simulate.audit import background_audit

            out.add("audit", background_audit(day, ctx, rng.choice(admins, size=n_audit), rng.choice(humans, size=n_audit)))


def admin_okta(day: Day, ctx: Context, actors: np.ndarray, targets: np.ndarray, ts: np.ndarray, event_type: str) -> Batch:
    """Okta account-management events by ``actors`` on ``targets`` from the actors' offices."""
    rng = day.rng
    pop = ctx.pop
    n = len(actors)
    au = pa.array(actors)
    pi = pa.array(np.asarray(actors) * 2)
    tx = ids.okta_request_ids(rng, n)
    reason = {"user.mfa.factor.activate": "User set up OKTA_VERIFY_PUSH factor",
              "user.mfa.factor.deactivate": "User reset OKTA_VERIFY_PUSH factor",
              "user.mfa.factor.reset_all": "", "user.account.reset_password": ""}[event_type]
    uri = {"user.mfa.factor.activate": "/api/v1/users/me/factors/lifecycle/activate",
           "user.mfa.factor.deactivate": "/api/v1/users/me/factors/lifecycle/deactivate",
           "user.mfa.factor.reset_all": "/api/v1/users/lifecycle/reset_factors",
           "user.account.reset_password": "/api/v1/users/lifecycle/reset_password"}[event_type]
    return {
        "ts": ts, "eventType": event_type, "actor": pop.okta_actor.take(au), "client": pop.place_client.take(pi),
        "securityContext": pop.place_security.take(pi), "ipChain": pop.place_chain.take(pi),
        "authenticationContext": formats.okta_auth_context(ids.okta_session_ids(rng, n), formats.CRED_NONE, n),
        "target": join("[", pop.okta_user_target.take(pa.array(targets)), "]"),
        "debugData": formats.debug_data(tx, uri, "", n), "result": "SUCCESS", "reason": reason, "transaction": tx,
    }


def login_as(day: Day, ctx: Context, admins: np.ndarray, targets: np.ndarray, ts: np.ndarray, out: Events) -> None:
    """An admin logs in as another user (ELF LoginAs + RTEM LoginAsEvent)."""
    rng = day.rng
    pop = ctx.pop
    org = pop.org
    n = len(admins)
    au, tu = pa.array(admins), pa.array(targets)
    ip = pop.place_ip.take(pa.array(admins * 2))
    keys = ids.session_keys(rng, n)
    lkeys = ids.session_keys(rng, n)
    out.add("elf/LoginAs", {
        "ts": ts, "USER_ID": pop.id15.take(tu), "USER_ID_DERIVED": pop.id18.take(tu), "SESSION_KEY": keys,
        "LOGIN_KEY": lkeys, "USER_TYPE": "Standard", "REQUEST_STATUS": "S", "URI": "/servlet/servlet.su",
        "RUN_TIME": lognormal_ints(rng, 200, 0.5, n), "CPU_TIME": lognormal_ints(rng, 50, 0.5, n),
        "DELEGATED_USER_ID": pop.id15.take(au), "DELEGATED_USER_NAME": pop.username.take(au),
        "DELEGATED_ORGANIZATION_ID": org.org_id15, "CLIENT_IP": ip, "DELEGATED_USER_ID_DERIVED": pop.id18.take(au),
    })
    out.add("rtem/LoginAsEvent", {
        "ts": ts, "UserId": pop.id18.take(tu), "Username": pop.username.take(tu), "DelegatedUsername": pop.username.take(au),
        "DelegatedOrganizationId": org.org_id18, "SessionKey": keys, "LoginKey": lkeys, "SourceIp": ip,
        "Browser": pop.desktop_browser.take(au), "Platform": pop.desktop_platform.take(au), "Application": "Browser",
        "TargetUrl": "/lightning/page/home", "LoginHistoryId": history_ids(day, ctx, n),
    })


def human_day(day: Day, ctx: Context, users: np.ndarray, offsets: np.ndarray) -> Events:
    """All human background events of ``users`` (sorted human user indices) on ``day``."""
    out = Events()
    s = make_sessions(day, ctx, users, offsets)
    logins(day, ctx, s, out)
    ui_activity(day, ctx, s, out)
    reports(day, ctx, s, out)
    mobile_api(day, ctx, s, out)
    tools(day, ctx, s, out)
    return out

