"""Orchestration: build the org and customers, then generate and write one day at a time.

Random streams are split by purpose with ``numpy.random.SeedSequence`` (org, customers, customer
export, schedules, campaigns, and one stream per day and user chunk), so any day's traffic is fixed
by the seed alone and memory stays bounded by one day of one chunk of users.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from crmguard.simulate import formats
from crmguard.simulate.background import Context, Day, Events, admin_noise, human_day
from crmguard.simulate.campaigns import CAMPAIGNS, Campaign, plan_campaigns
from crmguard.simulate.clock import day_start_ms
from crmguard.simulate.columns import join
from crmguard.simulate.customers import build_customers, write_customers_csv
from crmguard.simulate.integrations import draw_schedule, integrations_day
from crmguard.simulate.labels import SimulationSummary, write_labels
from crmguard.simulate.org import build_org
from crmguard.simulate.population import build_population
from crmguard.simulate.snapshot import write_snapshot
from crmguard.simulate.writers import DayFiles

DEFAULT_START = dt.date(2025, 3, 3)
USERS_PER_CHUNK = 4000
CUSTOMERS_PER_USER = 100
MAX_USERS = 1_000_000
MAX_DAYS = 3660

_ORG, _CUSTOMERS, _CUSTOMER_CSV, _SCHEDULE, _CAMPAIGNS, _DAYS, _PERM = range(7)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *key])))


def validate(users: int, days: int, seed: int, campaigns: list[str] | None, start: dt.date | None,
             customers: int | None) -> tuple[list[str], dt.date]:
    """Check the arguments of :func:`simulate`; returns (campaign names, start date) or raises
    ``ValueError`` saying what is wrong."""
    if isinstance(users, bool) or not isinstance(users, int) or not 5 <= users <= MAX_USERS:
        raise ValueError(f"users must be an integer between 5 and {MAX_USERS:,} (got {users!r})")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be an integer between 1 and {MAX_DAYS} (got {days!r})")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (got {seed!r})")
    names = list(CAMPAIGNS) if campaigns is None else list(campaigns)
    unknown = [c for c in names if c not in CAMPAIGNS]
    if unknown:
        raise ValueError(f"unknown campaign(s) {', '.join(map(repr, unknown))}; choose from {', '.join(CAMPAIGNS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"campaign listed twice: {names}")
    if start is None:
        start = DEFAULT_START
    if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
        raise ValueError(f"start must be a datetime.date (got {start!r})")
    if customers is not None and (isinstance(customers, bool) or not isinstance(customers, int) or customers < 100):
        raise ValueError(f"customers must be an integer of at least 100 (got {customers!r})")
    return [c for c in CAMPAIGNS if c in names], start


def simulate(out: Path, users: int, days: int, seed: int, campaigns: list[str] | None = None,
             start: dt.date | None = None, progress: Callable[[int, int], None] | None = None, *,
             customers: int | None = None) -> SimulationSummary:
    """Simulate ``days`` days of a retailer's Salesforce and Okta telemetry into directory ``out``.

    ``users`` human staff (plus three integration users), ``customers`` customer records (default
    ``100 × users``), attack ``campaigns`` by name (``None``: all of :data:`CAMPAIGNS`; ``[]``:
    none), starting on ``start`` (default 2025-03-03, UTC days). ``progress(done, total)`` is called
    after each day. The same arguments always give byte-identical files. Returns the
    :class:`SimulationSummary`; raises ``ValueError`` for invalid arguments.
    """
    names, start = validate(users, days, seed, campaigns, start, customers)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_customers = customers or max(1000, users * CUSTOMERS_PER_USER)

    org = build_org(_rng(seed, _ORG), users, start)
    cust = build_customers(_rng(seed, _CUSTOMERS), org, n_customers)
    counts: dict[str, int] = {"customers": write_customers_csv(out / "crm" / "customers.csv", cust, org,
                                                               np.random.SeedSequence([seed, _CUSTOMER_CSV]))}
    pop = build_population(org)
    ctx = Context(pop, cust, perm=_rng(seed, _PERM).permutation(len(cust)))
    schedule = draw_schedule(_rng(seed, _SCHEDULE))
    period = (day_start_ms(start), day_start_ms(start) + days * 86_400_000)
    plans: list[Campaign] = plan_campaigns(names, seed, _CAMPAIGNS, ctx, period)

    bytes_written: dict[str, int] = {}
    files_written: dict[str, int] = {}
    humans = org.humans
    for d in range(days):
        date = start + dt.timedelta(days=d)
        files = DayFiles(out, date)
        offsets = pop.utc_offsets(date)
        ctx.history_counter[0] = 0
        shared = Day(d, date, day_start_ms(date), _rng(seed, _DAYS, d, 0))
        extra = integrations_day(shared, ctx, schedule)
        admin_noise(shared, ctx, humans, offsets[humans], extra)
        attack = Events()
        for plan in plans:
            attack.extend(plan.events_for_day(shared, ctx, _rng(seed, _CAMPAIGNS, 1000 + d, plans.index(plan))))
        for k, lo in enumerate(range(0, len(humans), USERS_PER_CHUNK)):
            chunk = humans[lo : lo + USERS_PER_CHUNK]
            part = Day(d, date, shared.start, _rng(seed, _DAYS, d, k + 1))
            events = human_day(part, ctx, chunk, offsets[chunk])
            groups = [(events, part.rng)]
            if k == 0:
                groups += [(extra, _rng(seed, _DAYS, d, 0, 1)), (attack, _rng(seed, _CAMPAIGNS, 2000 + d))]
            write_events(files, groups, org.org_id15)
        for kind, size in files.close().items():
            bytes_written[kind] = bytes_written.get(kind, 0) + size
            files_written[kind] = files_written.get(kind, 0) + 1
        for kind, rows in files.rows.items():
            counts[kind] = counts.get(kind, 0) + rows
        if progress:
            progress(d + 1, days)

    counts["snapshot"] = write_snapshot(out / "org" / "snapshot.json", org, cust, plans, period)
    labels = write_labels(out / "labels.json", seed, start, days, org, cust, plans, period)
    for name in ("crm/customers.csv", "org/snapshot.json", "labels.json"):
        bytes_written[name] = (out / name).stat().st_size
    return SimulationSummary.build(out, seed, start, days, users, len(cust), counts, files_written, bytes_written,
                                   labels)


def write_events(files: DayFiles, groups: list[tuple[Events, np.random.Generator]], org_id15: str) -> None:
    """Format each batch of ``events`` (every group with its own generator), merge them by time
    per output kind and append them to the day's files.

    Formatting groups separately keeps background bytes independent of which campaigns run.
    """
    kinds = sorted({k for events, _ in groups for k in events.kinds})
    for kind in kinds:
        family, _, name = kind.partition("/")
        parts: list[tuple[np.ndarray, pa.Table | pa.Array]] = []
        for events, rng in groups:
            for batch in events.kinds.get(kind, []):
                if not formats.size(batch):
                    continue
                if family == "elf":
                    parts.append(formats.elf_table(name, batch, org_id15, rng))
                elif family == "rtem":
                    parts.append(formats.rtem_lines(name, batch, rng))
                elif family == "okta":
                    parts.append(formats.okta_lines(batch, rng))
                elif family == "audit":
                    order = np.argsort(np.asarray(batch["ts"], np.int64), kind="stable")
                    parts.append((np.asarray(batch["ts"], np.int64)[order],
                                  join(pa.array(list(batch["line"])).take(pa.array(order)), "\n")))
                else:
                    raise ValueError(f"unknown output kind {kind}")
        if not parts:
            continue
        pieces = merge_sorted(parts)
        if family == "elf":
            files.elf(name, pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0])
        elif family == "rtem":
            files.rtem(name, pieces)
        elif family == "okta":
            files.okta(pieces)
        else:
            files.audit(pieces)


def merge_sorted(parts: list[tuple[np.ndarray, pa.Table | pa.Array]]) -> list[pa.Table | pa.Array]:
    """Merge time-sorted parts into time order, as a list of slices of the parts (no copy when
    the parts interleave little, which is the usual case of one large and a few small parts)."""
    if len(parts) == 1:
        return [parts[0][1]]
    ts = np.concatenate([p[0] for p in parts])
    src = np.repeat(np.arange(len(parts)), [len(p[0]) for p in parts])
    pos = np.concatenate([np.arange(len(p[0])) for p in parts])
    order = np.argsort(ts, kind="stable")
    s, p = src[order], pos[order]
    n = len(order)
    cuts = np.flatnonzero((s[1:] != s[:-1]) | (p[1:] != p[:-1] + 1)) + 1
    if len(cuts) > max(64, n // 16):
        first = parts[0][1]
        whole = (pa.concat_tables([q[1] for q in parts]) if isinstance(first, pa.Table)
                 else pa.concat_arrays([q[1] for q in parts]))
        return [whole.take(pa.array(order))]
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [n]])
    return [parts[s[a]][1].slice(int(p[a]), int(b - a)) for a, b in zip(starts, ends)]


def labels_json(path: Path) -> dict:
    """Read a ``labels.json`` written by :func:`simulate`."""
    return json.loads(Path(path).read_text())
