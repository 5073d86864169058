"""The customer base: person accounts (an Account and its Contact) with brand, country, language,
PII and a luxury spend distribution, plus the ``crm/customers.csv`` export.

Only what daily traffic needs stays in memory (id counters, brand, country, spend, owning advisor);
names and addresses are drawn chunk by chunk while the CSV is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from crmguard.simulate import geo, ids, names
from crmguard.simulate.columns import DIGITS2, from_matrix, ints, join, take
from crmguard.simulate.org import ADVISOR, Org

SPEND_CAP = 90_000.0
CSV_COLUMNS = ("Id", "FirstName", "LastName", "Email", "Phone", "MailingStreet", "MailingCity", "MailingPostalCode",
               "MailingCountry", "Brand", "Language", "TotalSpend")
_CHUNK = 200_000


@dataclass
class Customers:
    """Customers as columns; ``contact_counter``/``account_counter`` generate their Salesforce ids.

    ``book_order[book_start[u] : book_start[u] + book_len[u]]`` are the customers advisor ``u``
    owns; ``by_spend`` lists every customer from the highest spender down.
    """

    pod: str
    contact_counter: np.ndarray
    account_counter: np.ndarray
    brand: np.ndarray
    country: np.ndarray
    city: np.ndarray
    spend_cents: np.ndarray
    owner: np.ndarray
    book_order: np.ndarray
    book_start: np.ndarray
    book_len: np.ndarray
    by_spend: np.ndarray
    n_leads: int
    n_cases: int
    lead_base: int
    case_base: int

    def __len__(self) -> int:
        return len(self.brand)

    def _ids(self, entity: str) -> pa.StringArray:
        """Every 18-character id of ``entity``, computed once (cheap to ``take`` from later)."""
        cache = self.__dict__.setdefault("_id_cache", {})
        if entity not in cache:
            counters = {
                "Contact": lambda: self.contact_counter, "Account": lambda: self.account_counter,
                "Lead": lambda: self.lead_base + np.arange(self.n_leads) * 3,
                "Case": lambda: self.case_base + np.arange(self.n_cases) * 2,
            }[entity]()
            cache[entity] = ids.strings(ids.id_matrix(ids.KEY_PREFIX[entity], self.pod, counters))
        return cache[entity]

    def contact_ids(self, idx: np.ndarray) -> pa.StringArray:
        """Contact ids (18 characters) of customers ``idx``."""
        return self._ids("Contact").take(pa.array(np.asarray(idx, np.int64)))

    def account_ids(self, idx: np.ndarray) -> pa.StringArray:
        """Person-account ids of customers ``idx``."""
        return self._ids("Account").take(pa.array(np.asarray(idx, np.int64)))

    def case_ids(self, idx: np.ndarray) -> pa.StringArray:
        """Ids of service cases ``idx``."""
        return self._ids("Case").take(pa.array(np.asarray(idx, np.int64)))

    def record_ids(self, entity: str, idx: np.ndarray) -> pa.StringArray:
        """Ids of records ``idx`` of ``entity`` (Contact, Account, Lead or Case)."""
        return self._ids(entity).take(pa.array(np.asarray(idx, np.int64)))

    def population(self, entity: str) -> int:
        """How many records of ``entity`` exist."""
        return {"Contact": len(self), "Account": len(self), "Lead": self.n_leads, "Case": self.n_cases}[entity]

    def sample_book(self, rng: np.random.Generator, owners: np.ndarray) -> np.ndarray:
        """One customer from each given advisor's book (any customer when the book is empty)."""
        lens = self.book_len[owners]
        pos = (rng.random(len(owners)) * np.maximum(lens, 1)).astype(np.int64)
        picked = self.book_order[np.minimum(self.book_start[owners] + pos, len(self.book_order) - 1)]
        return np.where(lens > 0, picked, rng.integers(0, len(self), len(owners)))


def spend_distribution(rng: np.random.Generator, n: int) -> np.ndarray:
    """Lifetime spend in cents: log-normal (median about $1,000) bent under a soft cap so the
    best clients sit between about $10k and $86k, as in a luxury clientele."""
    raw = np.exp(rng.normal(6.9, 1.15, n))
    return np.round(SPEND_CAP * (1 - np.exp(-raw / SPEND_CAP)) * 100).astype(np.int64)


def build_customers(rng: np.random.Generator, org: Org, n: int) -> Customers:
    """Draw ``n`` customers spread over the org's brands and their countries, each owned by an
    advisor of the same brand (and country when one works there). Returns :class:`Customers`."""
    n_brands = len(org.brands)
    brand = rng.choice(n_brands, size=n, p=_normalise(rng.random(n_brands) + 0.5)).astype(np.int16)
    codes = [c.code for c in geo.COUNTRIES]
    country = np.empty(n, np.int16)
    for b, br in enumerate(org.brands):
        mask = brand == b
        present = np.array([codes.index(c) for c in br.countries])
        weights = np.array([geo.COUNTRIES[i].weight for i in present])
        country[mask] = rng.choice(present, size=int(mask.sum()), p=_normalise(weights))
    n_cities = np.array([len(c.cities) for c in geo.COUNTRIES])
    city = np.minimum((rng.random(n) ** 2 * n_cities[country]).astype(np.int16), n_cities[country] - 1)

    users = org.users
    advisors = np.flatnonzero(users.role == ADVISOR)
    adv_country = np.array([codes.index(org.sites[s].city.country) for s in users.site[advisors]])
    adv_brand = users.brand[advisors]
    owner = np.empty(n, np.int64)
    keys = brand.astype(np.int64) * 100 + country
    for key in np.unique(keys):
        mask = keys == key
        b, c = divmod(int(key), 100)
        pool = advisors[(adv_brand == b) & (adv_country == c)]
        if len(pool) == 0:
            pool = advisors[adv_brand == b]
        if len(pool) == 0:
            pool = advisors
        owner[mask] = pool[rng.integers(0, len(pool), int(mask.sum()))]
    order = np.argsort(owner, kind="stable")
    book_len = np.bincount(owner, minlength=len(users))
    book_start = np.concatenate([[0], np.cumsum(book_len)[:-1]])

    spend = spend_distribution(rng, n)
    contact_counter = 40_000 + np.cumsum(rng.integers(1, 4, n))
    account_counter = 60_000 + np.cumsum(rng.integers(1, 4, n))
    return Customers(
        pod=org.pod, contact_counter=contact_counter, account_counter=account_counter, brand=brand, country=country,
        city=city, spend_cents=spend, owner=owner, book_order=order, book_start=book_start, book_len=book_len,
        by_spend=np.argsort(-spend, kind="stable"), n_leads=max(n // 3, 10), n_cases=max(n // 2, 10),
        lead_base=30_000 + int(rng.integers(0, 5000)), case_base=50_000 + int(rng.integers(0, 5000)),
    )


def _normalise(w: np.ndarray) -> np.ndarray:
    return w / w.sum()


def _name_pool(table: dict[str, tuple[str, ...]]) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray]:
    langs = sorted({c.language for c in geo.COUNTRIES})
    values: list[str] = []
    starts, sizes = [], []
    for lang in langs:
        starts.append(len(values))
        sizes.append(len(table[lang]))
        values += table[lang]
    lang_of_country = np.array([langs.index(c.language) for c in geo.COUNTRIES])
    display = pa.array(values)
    ascii_ = pa.array([names.ascii_name(v) for v in values])
    return display, ascii_, np.array(starts)[lang_of_country], np.array(sizes)[lang_of_country]


def _pick_from(rng: np.random.Generator, starts: np.ndarray, sizes: np.ndarray, country: np.ndarray) -> np.ndarray:
    return starts[country] + (rng.random(len(country)) * sizes[country]).astype(np.int64)


def _phones(rng: np.random.Generator, country: np.ndarray) -> pa.StringArray:
    templates = [c.phone.encode() for c in geo.COUNTRIES]
    width = max(len(t) for t in templates)
    table = np.zeros((len(templates), width), np.uint8)
    for i, t in enumerate(templates):
        table[i, : len(t)] = np.frombuffer(t, np.uint8)
    mat = table[country]
    digits = rng.integers(48, 58, mat.shape).astype(np.uint8)
    mat = np.where(mat == ord("X"), digits, mat)
    return from_matrix(mat, np.array([len(t) for t in templates])[country])


def _money(cents: np.ndarray) -> pa.StringArray:
    return join(ints(cents // 100), ".", from_matrix(DIGITS2[cents % 100]))


def write_customers_csv(path: Path, customers: Customers, org: Org, seed_seq: np.random.SeedSequence) -> int:
    """Write ``crm/customers.csv`` (columns :data:`CSV_COLUMNS`) in chunks; returns the row count.

    Names, e-mails, phones and addresses come from per-chunk generators spawned from ``seed_seq``
    so the file is the same for a seed however it is chunked in memory.
    """
    first_d, first_a, first_start, first_size = _name_pool(names.FIRST)
    last_d, last_a, last_start, last_size = _name_pool(names.LAST)
    street_vals: list[str] = []
    street_start, street_size = [], []
    for c in geo.COUNTRIES:
        street_start.append(len(street_vals))
        street_size.append(len(names.STREETS[c.code]))
        street_vals += names.STREETS[c.code]
    street_start_a, street_size_a = np.array(street_start), np.array(street_size)
    streets = pa.array(street_vals)
    city_names = pa.array([city.name for c in geo.COUNTRIES for city in c.cities])
    city_postal = pa.array([city.postal for c in geo.COUNTRIES for city in c.cities])
    city_base = np.concatenate([[0], np.cumsum([len(c.cities) for c in geo.COUNTRIES])[:-1]])
    country_names = pa.array([c.name for c in geo.COUNTRIES])
    languages = pa.array([c.language for c in geo.COUNTRIES])
    number_first = np.array([c.code in names.NUMBER_FIRST for c in geo.COUNTRIES])
    domains = [d for c in geo.COUNTRIES for d in c.email_domains]
    dom_start = np.concatenate([[0], np.cumsum([len(c.email_domains) for c in geo.COUNTRIES])[:-1]])
    dom_size = np.array([len(c.email_domains) for c in geo.COUNTRIES])
    brands = pa.array([b.name for b in org.brands])

    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(customers)
    chunks = seed_seq.spawn(max(1, -(-n // _CHUNK)))
    with pacsv.CSVWriter(path, pa.schema([(c, pa.string()) for c in CSV_COLUMNS])) as writer:
        for k, lo in enumerate(range(0, n, _CHUNK)):
            rng = np.random.Generator(np.random.PCG64(chunks[k]))
            idx = np.arange(lo, min(lo + _CHUNK, n))
            country = customers.country[idx].astype(np.int64)
            fi = _pick_from(rng, first_start, first_size, country)
            li = _pick_from(rng, last_start, last_size, country)
            suffix = rng.integers(0, 100, len(idx))
            suffix_txt = pc.if_else(pa.array(suffix < 60), "", ints(suffix))
            sep = take([".", "_", ""], rng.integers(0, 3, len(idx)))
            dom = take(domains, dom_start[country] + (rng.random(len(idx)) * dom_size[country]).astype(np.int64))
            email = join(take(first_a, fi), sep, take(last_a, li), suffix_txt, "@", dom)
            number = ints(rng.integers(1, 120, len(idx)))
            street = take(streets, street_start_a[country] + (rng.random(len(idx)) * street_size_a[country]).astype(np.int64))
            address = pc.if_else(pa.array(number_first[country]), join(number, " ", street), join(street, " ", number))
            city_ix = city_base[country] + customers.city[idx]
            table = pa.table([
                customers.contact_ids(idx), take(first_d, fi), take(last_d, li), email, _phones(rng, country), address,
                take(city_names, city_ix), take(city_postal, city_ix), take(country_names, country),
                take(brands, customers.brand[idx]), take(languages, country), _money(customers.spend_cents[idx]),
            ], names=list(CSV_COLUMNS))
            writer.write_table(table)
    return n
