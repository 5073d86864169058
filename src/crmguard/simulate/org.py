"""The simulated retailer: a luxury group with several brands, boutiques and offices in several
time zones, its staff (by role), integration users, connected apps, OAuth tokens, permission sets
and report catalogue.

Everything is drawn from one seeded generator, so the same seed gives the same org. Per-user values
that events need are kept as numpy arrays / Arrow string arrays so daily traffic can ``take`` them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from crmguard.simulate import geo, ids, names
from crmguard.simulate.columns import check_json_safe

ADVISOR, ANALYST, SERVICE, ADMIN, INTEGRATION = range(5)
ROLE_NAMES = ("client_advisor", "analyst", "service_agent", "admin", "integration")
ROLE_TITLES = ("Client Advisor", "Clienteling Analyst", "Client Service Agent", "CRM Administrator", "Integration")

GROUP_NAMES = ("Aurelle Group", "Maison Verlaine", "Groupe Castellane", "Orsini Holding", "Valmont & Fils")
BRAND_NAMES = ("Aurelle", "Vercelli", "Lune Noire", "Casa Albero", "Hoshino", "Maison Darcy", "Sable et Or",
               "Belmonte", "Atelier Rivoli", "Costa Mirelle")

API_VERSION = "60.0"


@dataclass(frozen=True)
class Agent:
    """A client program: raw user agent plus how Okta and Salesforce summarise it."""

    raw: str
    okta_browser: str
    okta_os: str
    sf_browser: str
    sf_platform: str
    device: str


DESKTOP_AGENTS: tuple[Agent, ...] = (
    Agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36",
          "CHROME", "Windows 10", "Chrome 133", "Windows 10", "Computer"),
    Agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/134.0.0.0 Safari/537.36",
          "CHROME", "Windows 10", "Chrome 134", "Windows 10", "Computer"),
    Agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36 "
          "Edg/133.0.3065.92", "CHROMIUM_EDGE", "Windows 10", "Edge 133", "Windows 10", "Computer"),
    Agent("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 "
          "Safari/537.36", "CHROME", "Mac OS X", "Chrome 133", "Mac OSX", "Computer"),
    Agent("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.3 "
          "Safari/605.1.15", "SAFARI", "Mac OS X", "Safari 18", "Mac OSX", "Computer"),
    Agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:135.0) Gecko/20100101 Firefox/135.0",
          "FIREFOX", "Windows 10", "Firefox 135", "Windows 10", "Computer"),
)

MOBILE_AGENTS: tuple[Agent, ...] = (
    Agent("SalesforceMobileSDK/12.2.0 iOS/18.3.1 (iPad) Salesforce1/252.010 Native", "UNKNOWN", "iOS", "Unknown",
          "iPadOS 18", "Tablet"),
    Agent("SalesforceMobileSDK/12.2.0 iOS/18.3.1 (iPhone) Salesforce1/252.010 Native", "UNKNOWN", "iOS", "Unknown",
          "iOS 18", "Mobile"),
    Agent("SalesforceMobileSDK/12.1.1 iOS/17.7.2 (iPad) Salesforce1/250.030 Native", "UNKNOWN", "iOS", "Unknown",
          "iPadOS 17", "Tablet"),
)
AGENTS: tuple[Agent, ...] = DESKTOP_AGENTS + MOBILE_AGENTS
MOBILE_BASE = len(DESKTOP_AGENTS)


@dataclass(frozen=True)
class Brand:
    """A brand of the group and the countries it sells in."""

    name: str
    countries: tuple[str, ...]


@dataclass(frozen=True)
class Site:
    """A boutique or an office, with the single public IP its staff egress from."""

    kind: str
    name: str
    brand: int
    city: geo.City
    network: geo.Network
    ip: str


@dataclass(frozen=True)
class App:
    """A connected app installed in the org."""

    name: str
    id15: str
    id18: str
    client: str
    owner: str
    created: str
    description: str


@dataclass(frozen=True)
class Integration:
    """An integration user: which app it runs, from where, and how it identifies itself."""

    key: str
    user: int
    app: App
    user_agent: str
    network: geo.Network
    ips: tuple[str, ...]
    client_ip: str


@dataclass
class Users:
    """Staff and integration users, one row per user (columnar)."""

    role: np.ndarray
    site: np.ndarray
    brand: np.ndarray
    helpdesk: np.ndarray
    desktop_agent: np.ndarray
    mobile_agent: np.ndarray
    home_network: list[geo.Network]
    home_ip: list[str]
    first: list[str]
    last: list[str]
    username: list[str]
    sf15: list[str]
    sf18: list[str]
    okta_id: list[str]
    created: list[str]

    def __len__(self) -> int:
        return len(self.role)

    def name(self, i: int) -> str:
        """Display name of user ``i``."""
        return f"{self.first[i]} {self.last[i]}"


@dataclass
class Reports:
    """The org's report catalogue (columnar)."""

    id15: list[str]
    id18: list[str]
    name: list[str]
    entity: list[str]
    owner: np.ndarray
    rows_median: np.ndarray
    columns: list[str]
    format: list[str]


@dataclass
class Org:
    """The whole simulated organisation. ``counter`` hands out fresh Salesforce id counters so
    records created later (jobs, apps of campaigns) never collide with existing ones."""

    group: str
    slug: str
    email_domain: str
    org_id15: str
    org_id18: str
    pod: str
    my_domain: str
    okta_domain: str
    okta_sf_app_id: str
    okta_policy_id: str
    okta_rule_id: str
    saml_config_id: str
    created: dt.date
    brands: tuple[Brand, ...]
    sites: tuple[Site, ...]
    users: Users
    integrations: dict[str, Integration]
    apps: dict[str, App]
    reports: Reports
    counter: dict[str, int] = field(default_factory=dict)

    @property
    def humans(self) -> np.ndarray:
        """Indices of human users."""
        return np.flatnonzero(self.users.role != INTEGRATION)

    def role_members(self, role: int) -> np.ndarray:
        """Indices of the users with ``role``."""
        return np.flatnonzero(self.users.role == role)

    def new_ids(self, kind: str, n: int) -> np.ndarray:
        """``n`` fresh 18-character id rows (uint8 matrix) for object ``kind`` (see ``ids.KEY_PREFIX``)."""
        start = self.counter.get(kind, 1_000_000)
        self.counter[kind] = start + n
        return ids.id_matrix(ids.KEY_PREFIX[kind], self.pod, np.arange(start, start + n))

    def new_id(self, kind: str) -> tuple[str, str]:
        """One fresh (15-char, 18-char) id for object ``kind``."""
        raw = self.new_ids(kind, 1)[0].tobytes().decode()
        return raw[:15], raw


def _role_counts(n: int) -> list[int]:
    admins = max(2, round(n * 0.04))
    analysts = max(1, round(n * 0.12))
    service = max(1, round(n * 0.22))
    advisors = n - admins - analysts - service
    if advisors < 1:
        raise ValueError(f"users must be at least 5 to staff every role (got {n})")
    return [advisors, analysts, service, admins]


def _pick(rng: np.random.Generator, seq: tuple, k: int | None = None):  # type: ignore[no-untyped-def]
    if k is None:
        return seq[int(rng.integers(len(seq)))]
    return [seq[i] for i in sorted(rng.choice(len(seq), size=k, replace=False))]


def _app(org_pod: str, counter: int, name: str, client: str, owner: str, created: dt.date, description: str) -> App:
    id15, id18 = ids.new_id("0H4", org_pod, counter)
    return App(name, id15, id18, client, owner, created.isoformat() + "T09:12:44.000+0000", description)


def build_org(rng: np.random.Generator, n_users: int, start: dt.date) -> Org:
    """Draw an organisation with ``n_users`` human staff plus three integration users.

    Takes the generator (consumed deterministically) and the first simulated day; returns the
    :class:`Org`. Raises ``ValueError`` when ``n_users`` is too small to staff every role.
    """
    counts = _role_counts(n_users)
    group = _pick(rng, GROUP_NAMES)
    slug = group.lower().replace(" & ", "-").replace(" ", "-")
    email_domain = slug.replace("-group", "").replace("-", "") + "-group.com"
    pod = "".join(_pick(rng, ("5j", "Dn", "Qy", "8W", "Hk", "J4")))
    org_id15, org_id18 = ids.new_id("00D", pod, int(rng.integers(10_000, 900_000)))
    created = start - dt.timedelta(days=int(rng.integers(900, 3000)))

    brand_names = _pick(rng, BRAND_NAMES, int(rng.integers(3, 6)))
    codes = [c.code for c in geo.COUNTRIES]
    weights = np.array([c.weight for c in geo.COUNTRIES])
    brands = []
    for name in brand_names:
        extra = rng.choice(len(codes), size=int(rng.integers(3, len(codes) - 2)), replace=False, p=weights / weights.sum())
        present = sorted({"FR", "IT", "US", *(codes[i] for i in extra)}, key=codes.index)
        brands.append(Brand(name, tuple(present)))

    sites: list[Site] = []
    offices = (geo.PARIS, geo.MILAN, geo.NEW_YORK, geo.TOKYO, geo.HONG_KONG, geo.LONDON)
    for city in offices:
        net = geo.ISPS[city.country][0]
        sites.append(Site("office", f"{group} {city.name} office", -1, city, net, geo.random_ips(rng, net, 1)[0]))
    for b, brand in enumerate(brands):
        for code in brand.countries:
            country = geo.COUNTRY_BY_CODE[code]
            for city in country.cities[: int(rng.integers(1, len(country.cities) + 1))]:
                net = _pick(rng, geo.ISPS[code])
                sites.append(Site("boutique", f"{brand.name} {city.name}", b, city, net, geo.random_ips(rng, net, 1)[0]))
    office_idx = np.arange(len(offices))
    boutique_idx = np.arange(len(offices), len(sites))

    roles = np.repeat(np.arange(4), counts)
    roles = rng.permutation(roles)
    site = np.empty(len(roles), np.int64)
    adv = roles == ADVISOR
    site[adv] = rng.choice(boutique_idx, size=int(adv.sum()))
    site[roles == ANALYST] = rng.choice(office_idx, size=int((roles == ANALYST).sum()), p=[0.45, 0.15, 0.15, 0.1, 0.1, 0.05])
    site[roles == SERVICE] = rng.choice(office_idx[[0, 2, 3, 4]], size=int((roles == SERVICE).sum()), p=[0.4, 0.3, 0.15, 0.15])
    site[roles == ADMIN] = rng.choice(office_idx[[0, 2]], size=int((roles == ADMIN).sum()), p=[0.7, 0.3])
    helpdesk = np.zeros(len(roles), bool)
    admin_idx = np.flatnonzero(roles == ADMIN)
    helpdesk[admin_idx[: max(1, len(admin_idx) // 2)]] = True
    user_brand = np.array([sites[s].brand for s in site], np.int64)

    n_int = 3
    roles = np.concatenate([roles, np.full(n_int, INTEGRATION)])
    site = np.concatenate([site, np.zeros(n_int, np.int64)])
    user_brand = np.concatenate([user_brand, np.full(n_int, -1)])
    helpdesk = np.concatenate([helpdesk, np.zeros(n_int, bool)])
    n = len(roles)

    first: list[str] = []
    last: list[str] = []
    usernames: list[str] = []
    taken: set[str] = set()
    home_network: list[geo.Network] = []
    home_ip: list[str] = []
    integ_names = (("Data", "Warehouse Sync"), ("Marketing", "Platform Sync"), ("Client Chat", "Connector"))
    integ_users = ("integration.dwh", "integration.marketing", "integration.chat")
    for i in range(n):
        if roles[i] == INTEGRATION:
            k = i - (n - n_int)
            first.append(integ_names[k][0])
            last.append(integ_names[k][1])
            usernames.append(f"{integ_users[k]}@{email_domain}")
            home_network.append(geo.CLOUDS[0])
            home_ip.append("")
            continue
        lang = geo.COUNTRY_BY_CODE[sites[site[i]].city.country].language
        f = _pick(rng, names.FIRST[lang])
        surname = _pick(rng, names.LAST[lang])
        base = f"{names.ascii_name(f)}.{names.ascii_name(surname)}"
        user = base
        k = 2
        while user in taken:
            user = f"{base}{k}"
            k += 1
        taken.add(user)
        first.append(f)
        last.append(surname)
        usernames.append(f"{user}@{email_domain}")
        net = _pick(rng, geo.ISPS[sites[site[i]].city.country])
        home_network.append(net)
        home_ip.append(geo.random_ips(rng, net, 1)[0])
    check_json_safe(first + last + usernames, "user name")

    user_ids = ids.id_matrix("005", pod, np.arange(n) * int(rng.integers(3, 40)) + int(rng.integers(10_000, 90_000)))
    sf18 = [row.tobytes().decode() for row in user_ids]
    okta_ids = ids.okta_ids(rng, n).to_pylist()
    desktop = rng.integers(0, len(DESKTOP_AGENTS), n)
    mobile = np.where(roles == ADVISOR, MOBILE_BASE + rng.integers(0, len(MOBILE_AGENTS), n), -1)
    mobile = np.where((roles == SERVICE) & (rng.random(n) < 0.1), MOBILE_BASE + 1, mobile)
    user_created = [
        (created + dt.timedelta(days=int(d))).isoformat() + "T08:00:00.000+0000"
        for d in rng.integers(0, max((start - created).days - 30, 1), n)
    ]
    users = Users(
        role=roles, site=site, brand=user_brand, helpdesk=helpdesk, desktop_agent=desktop, mobile_agent=mobile,
        home_network=home_network, home_ip=home_ip, first=first, last=last, username=usernames,
        sf15=[s[:15] for s in sf18], sf18=sf18, okta_id=okta_ids, created=user_created,
    )

    apps: dict[str, App] = {}
    counter = 3000 + int(rng.integers(0, 900))
    app_specs = (
        ("mobile", "Salesforce for iOS", "Salesforce1", "Salesforce", "Salesforce mobile app"),
        ("cli", "Salesforce CLI", "sfdx toolbelt", "Salesforce", "Salesforce command line interface"),
        ("dataloader", "Dataloader Partner", "DataLoaderPartnerUI/62.0.0", "Salesforce", "Salesforce Data Loader"),
        ("etl", "DataHarbor Warehouse Sync", "DataHarbor-ETL/5.3.1", "DataHarbor Inc.", "Nightly extract to the data warehouse"),
        ("marketing", _pick(rng, ("Lumiere Marketing Cloud Connector", "Cadence Audience Sync", "Orbit Campaign Connector")),
         "MarketingConnector/3.8", "Marketing vendor", "Audience sync and monthly full export"),
        ("chat", _pick(rng, ("Parlons Chat for Salesforce", "Concierge Live Chat", "TalkDesk Clienteling Chat")),
         "ChatConnector/2.4.7", "Chat vendor", "Support chat widget: case creation and contact lookup"),
    )
    for key, name, client, owner, desc in app_specs:
        apps[key] = _app(pod, counter, name, client, owner, created + dt.timedelta(days=int(rng.integers(30, 600))), desc)
        counter += int(rng.integers(1, 50))
    check_json_safe([a.name for a in apps.values()] + [a.client for a in apps.values()], "app")

    integrations: dict[str, Integration] = {}
    integ_specs = (
        ("etl", geo.CLOUDS[0], "DataHarbor-ETL/5.3.1 (Java 17.0.10; Linux amd64)", 2, None),
        ("marketing", geo.SALESFORCE, "MarketingConnector/3.8 (+https://connector.example)", 3, "Salesforce.com IP"),
        ("chat", geo.CLOUDS[1], "ChatConnector/2.4.7 okhttp/4.12.0", 3, None),
    )
    for k, (key, net, ua, n_ips, client_ip) in enumerate(integ_specs):
        user_ix = n - n_int + k
        ips = tuple(geo.random_ips(rng, net, n_ips))
        integrations[key] = Integration(key, user_ix, apps[key], ua, net, ips, client_ip or "")

    reports = _build_reports(rng, pod, brands, users, roles)
    okta = ids.okta_ids(rng, 4, "0oa").to_pylist()
    org = Org(
        group=group, slug=slug, email_domain=email_domain, org_id15=org_id15, org_id18=org_id18, pod=pod,
        my_domain=f"{slug}.my.salesforce.com", okta_domain=f"{slug}.okta.com", okta_sf_app_id=okta[0],
        okta_policy_id="00p" + okta[1][3:], okta_rule_id="0pr" + okta[2][3:],
        saml_config_id=ids.new_id("0LE", pod, int(rng.integers(1000, 9000)))[0],
        created=created, brands=tuple(brands), sites=tuple(sites), users=users, integrations=integrations,
        apps=apps, reports=reports,
    )
    org.counter["ConnectedApplication"] = counter + 100
    return org


def _build_reports(rng: np.random.Generator, pod: str, brands: list[Brand], users: Users, roles: np.ndarray) -> Reports:
    analysts = np.flatnonzero(roles == ANALYST)
    admins = np.flatnonzero(roles == ADMIN)
    owners_pool = np.concatenate([analysts, admins])
    templates = (
        ("Top clients {b}", "Contact", 80, "FIRST_NAME, LAST_NAME, EMAIL, PHONE1, Contact.Total_Spend__c, Contact.Tier__c"),
        ("My client book {b}", "Contact", 40, "FIRST_NAME, LAST_NAME, PHONE1, Contact.Last_Purchase__c"),
        ("Clients without purchase 12 months {b}", "Contact", 150, "FIRST_NAME, LAST_NAME, EMAIL, Contact.Last_Purchase__c"),
        ("VIC events invitations {b}", "Contact", 60, "FIRST_NAME, LAST_NAME, EMAIL, MAILING_CITY"),
        ("Open cases by boutique {b}", "Case", 40, "CASE_NUMBER, SUBJECT, STATUS, OWNER"),
        ("Weekly sales by advisor {b}", "Contact", 60, "FIRST_NAME, LAST_NAME, Contact.Last_Purchase_Amount__c, OWNER"),
        ("Consent and opt-in audit {b}", "Contact", 250, "EMAIL, Contact.HasOptedOutOfEmail, Contact.Consent_Date__c"),
        ("Client birthdays this month {b}", "Contact", 25, "FIRST_NAME, LAST_NAME, BIRTHDATE, PHONE1"),
    )
    rows: list[tuple[str, str, int, str, int]] = []
    for b in brands:
        for name, entity, median, cols in templates:
            rows.append((name.format(b=b.name), entity, median, cols, int(rng.choice(owners_pool))))
    for a in analysts:
        for _ in range(int(rng.integers(1, 4))):
            name, entity, median, cols = templates[int(rng.integers(len(templates)))][:4]
            label = f"{users.first[a]}'s {name.format(b='').strip().lower()}"
            rows.append((label, entity, median * 3 // 2, cols, int(a)))
    mat = ids.id_matrix("00O", pod, np.arange(len(rows)) * 7 + int(rng.integers(10_000, 90_000)))
    id18 = [r.tobytes().decode() for r in mat]
    check_json_safe([r[0] for r in rows], "report name")
    return Reports(
        id15=[s[:15] for s in id18], id18=id18, name=[r[0] for r in rows], entity=[r[1] for r in rows],
        owner=np.array([r[4] for r in rows]), rows_median=np.array([r[2] for r in rows]),
        columns=[r[3] for r in rows], format=[_pick(rng, ("Tabular", "Summary")) for _ in rows],
    )
