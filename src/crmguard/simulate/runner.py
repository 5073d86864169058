"""Orchestration: build the org and customers, then generate and write one day at a time.

Random streams are split by purpose with ``numpy.random.SeedSequence`` (org, customers, customer
export, schedules, campaigns, and one stream per day and user chunk), so any day's traffic is fixed
by the seed alone. That makes days independent: they can be generated in worker processes, in any
order, and still give the same bytes; memory stays bounded by one day of one chunk of users per
worker.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from crmguard.simulate import formats
from crmguard.simulate.background import Context, Day, Events, admin_noise, human_day
from crmguard.simulate.campaigns import CAMPAIGNS, Campaign, plan_campaigns
from crmguard.simulate.clock import DAY_MS, day_start_ms
from crmguard.simulate.columns import join
from crmguard.simulate.customers import build_customers, write_customers_csv
from crmguard.simulate.integrations import Schedule, draw_schedule, integrations_day
from crmguard.simulate.labels import SimulationSummary, write_labels
from crmguard.simulate.org import Org, build_org
from crmguard.simulate.population import build_population
from crmguard.simulate.snapshot import write_snapshot
from crmguard.simulate.writers import DayFiles

DEFAULT_START = dt.date(2025, 3, 3)
USERS_PER_CHUNK = 4000
CUSTOMERS_PER_USER = 100
MAX_USERS = 1_000_000
MAX_DAYS = 3660
PARALLEL_MIN_USER_DAYS = 4000
"""Below this many user-days a run stays in one process (starting workers costs about a second)."""
_SMALL_BATCH = 20_000

_ORG, _CUSTOMERS, _CUSTOMER_CSV, _SCHEDULE, _CAMPAIGNS, _DAYS, _PERM = range(7)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *key])))


def validate(users: int, days: int, seed: int, campaigns: list[str] | None, start: dt.date | None,
             customers: int | None, workers: int | None) -> tuple[list[str], dt.date]:
    """Check the arguments of :func:`simulate`; returns (campaign names, start date) or raises
    ``ValueError`` saying what is wrong."""
    if isinstance(users, bool) or not isinstance(users, int) or not 5 <= users <= MAX_USERS:
        raise ValueError(f"users must be an integer between 5 and {MAX_USERS:,} (got {users!r})")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be an integer between 1 and {MAX_DAYS} (got {days!r})")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (got {seed!r})")
    if isinstance(campaigns, str):
        raise ValueError(f"campaigns must be a list of names, not a string (got {campaigns!r})")
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
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer (got {workers!r})")
    return [c for c in CAMPAIGNS if c in names], start


@dataclass
class Setup:
    """Everything a day needs, rebuilt identically from the arguments in every worker."""

    seed: int
    start: dt.date
    days: int
    org: Org
    ctx: Context
    schedule: Schedule
    plans: list[Campaign]
    period: tuple[int, int]


def build_setup(seed: int, users: int, start: dt.date, days: int, n_customers: int, names: list[str],
                quiet_days: int = 0) -> Setup:
    """Draw the org, customers, schedules and campaign plans for a run (no file is written);
    campaigns are planned after the first ``quiet_days`` days."""
    org = build_org(_rng(seed, _ORG), users, start)
    cust = build_customers(_rng(seed, _CUSTOMERS), org, n_customers)
    pop = build_population(org)
    ctx = Context(pop, cust, perm=_rng(seed, _PERM).permutation(len(cust)))
    schedule = draw_schedule(_rng(seed, _SCHEDULE))
    period = (day_start_ms(start), day_start_ms(start) + days * DAY_MS)
    plans = plan_campaigns(names, seed, _CAMPAIGNS, ctx, (period[0] + quiet_days * DAY_MS, period[1]))
    for plan in plans:  # a plan numbers days from its own period's start, the runner from the run's
        plan.by_day = {d + quiet_days: events for d, events in plan.by_day.items()}
    return Setup(seed, start, days, org, ctx, schedule, plans, period)


@dataclass
class DayResult:
    """What writing one day produced: rows, bytes and files per output kind, and each campaign's
    record keys and event counts of the day."""

    day: int
    rows: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    campaign_keys: list[dict[str, list[str]]] = field(default_factory=list)
    campaign_counts: list[dict[str, int]] = field(default_factory=list)


def run_day(setup: Setup, out: Path, d: int) -> DayResult:
    """Generate and write day ``d`` of the run; returns its :class:`DayResult`."""
    seed = setup.seed
    ctx = setup.ctx
    org = setup.org
    date = setup.start + dt.timedelta(days=d)
    files = DayFiles(out, date)
    offsets = ctx.pop.utc_offsets(date)
    humans = org.humans
    ctx.history_counter[0] = 0
    shared = Day(d, date, day_start_ms(date), _rng(seed, _DAYS, d, 0))
    extra = integrations_day(shared, ctx, setup.schedule)
    admin_noise(shared, ctx, humans, offsets[humans], extra)
    result = DayResult(d)
    attack = Events()
    for k, plan in enumerate(setup.plans):
        events, keys, counts = plan.events_for_day(shared, _rng(seed, _CAMPAIGNS, 1000 + d, k))
        attack.extend(events)
        result.campaign_keys.append(keys)
        result.campaign_counts.append(counts)
    for k, lo in enumerate(range(0, len(humans), USERS_PER_CHUNK)):
        chunk = humans[lo : lo + USERS_PER_CHUNK]
        part = Day(d, date, shared.start, _rng(seed, _DAYS, d, k + 1))
        groups = [(human_day(part, ctx, chunk, offsets[chunk]), part.rng)]
        if k == 0:
            groups += [(extra, _rng(seed, _DAYS, d, 0, 1)), (attack, _rng(seed, _CAMPAIGNS, 2000 + d))]
        write_events(files, groups, org.org_id15, (shared.start, shared.end))
    result.bytes = files.close()
    result.rows = dict(files.rows)
    return result


_WORKER: dict[str, object] = {}


def _init_worker(args: tuple) -> None:  # type: ignore[type-arg]
    seed, users, start, days, n_customers, names, quiet_days, out = args
    # One process per CPU already; Arrow's own thread pool would only oversubscribe.
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    _WORKER["setup"] = build_setup(seed, users, start, days, n_customers, names, quiet_days)
    _WORKER["out"] = out


def _worker_day(d: int) -> DayResult:
    return run_day(_WORKER["setup"], _WORKER["out"], d)  # type: ignore[arg-type]


def default_workers(users: int, days: int) -> int:
    """Worker processes used when ``workers`` is not given: one per CPU, at most one per day and
    at most 4 (each holds a day in memory), and a single process for small runs."""
    if users * days < PARALLEL_MIN_USER_DAYS or days < 2:
        return 1
    return max(1, min(os.cpu_count() or 1, days, 4))


def simulate(out: Path, users: int, days: int, seed: int, campaigns: list[str] | None = None,
             start: dt.date | None = None, progress: Callable[[int, int], None] | None = None, *,
             customers: int | None = None, workers: int | None = None, quiet_days: int = 0) -> SimulationSummary:
    """Simulate ``days`` days of a retailer's Salesforce and Okta telemetry into directory ``out``.

    ``users`` human staff (plus three integration users), ``customers`` customer records (default
    ``100 × users``), attack ``campaigns`` by name (``None``: all of :data:`CAMPAIGNS`; ``[]``:
    none), starting on ``start`` (default 2025-03-03, UTC days). ``progress(done, total)`` is called
    each time a day is written. ``workers`` sets how many processes generate days in parallel
    (default: see :func:`default_workers`); the output does not depend on it. Campaigns start after
    the first ``quiet_days`` days (a clean history for behavioural baselines to learn from). Workers are spawned,
    so a script calling this with more than one worker needs the usual
    ``if __name__ == "__main__":`` guard. The same arguments
    always give byte-identical files. Returns the :class:`SimulationSummary`; raises ``ValueError``
    for invalid arguments.
    """
    names, start = validate(users, days, seed, campaigns, start, customers, workers)
    if isinstance(quiet_days, bool) or not isinstance(quiet_days, int) or not 0 <= quiet_days < days:
        raise ValueError(f"quiet_days must be an integer from 0 to days - 1 = {days - 1} (got {quiet_days!r})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_customers = customers or max(1000, users * CUSTOMERS_PER_USER)
    n_workers = workers or default_workers(users, days)

    results: dict[int, DayResult] = {}
    if n_workers <= 1:
        setup = build_setup(seed, users, start, days, n_customers, names, quiet_days)
        counts = _write_customers(out, seed, setup)
        for d in range(days):
            results[d] = run_day(setup, out, d)
            if progress:
                progress(d + 1, days)
    else:
        # Workers rebuild the setup from the arguments (spawned, so nothing is shared by fork);
        # they start first so their start-up overlaps the customer export written here.
        context = multiprocessing.get_context("spawn")
        args = (seed, users, start, days, n_customers, names, quiet_days, out)
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=context, initializer=_init_worker,
                                 initargs=(args,)) as pool:
            pending = {pool.submit(_worker_day, d) for d in range(days)}
            setup = build_setup(seed, users, start, days, n_customers, names, quiet_days)
            counts = _write_customers(out, seed, setup)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    r = future.result()
                    results[r.day] = r
                    if progress:
                        progress(len(results), days)

    bytes_written: dict[str, int] = {}
    files_written: dict[str, int] = {}
    for d in range(days):
        r = results[d]
        for kind, size in r.bytes.items():
            bytes_written[kind] = bytes_written.get(kind, 0) + size
            files_written[kind] = files_written.get(kind, 0) + 1
        for kind, rows in r.rows.items():
            counts[kind] = counts.get(kind, 0) + rows
        for plan, keys, n in zip(setup.plans, r.campaign_keys, r.campaign_counts, strict=True):
            plan.record(keys, n)

    counts["snapshot"] = write_snapshot(out / "org" / "snapshot.json", setup.org, setup.ctx.customers, setup.plans,
                                        setup.period)
    labels = write_labels(out / "labels.json", seed, start, days, setup.org, setup.ctx.customers, setup.plans,
                          setup.period)
    for name in ("crm/customers.csv", "org/snapshot.json", "labels.json"):
        bytes_written[name] = (out / name).stat().st_size
    files_written.update({"crm/customers.csv": 1, "org/snapshot.json": 1, "labels.json": 1})
    return SimulationSummary.build(out, seed, start, days, users, len(setup.ctx.customers), counts, files_written,
                                   bytes_written, labels)


def _write_customers(out: Path, seed: int, setup: Setup) -> dict[str, int]:
    rows = write_customers_csv(out / "crm" / "customers.csv", setup.ctx.customers, setup.org,
                               np.random.SeedSequence([seed, _CUSTOMER_CSV]))
    return {"customers": rows}


def write_events(files: DayFiles, groups: list[tuple[Events, np.random.Generator]], org_id15: str,
                 day: tuple[int, int]) -> None:
    """Format the events of each group with the group's own generator, merge them by time per
    output kind and append them to the day's files. Times are kept inside ``day`` (epoch ms
    start, end): a session closing at midnight is logged in the day it belongs to.

    Formatting groups separately keeps background bytes independent of which campaigns run.
    """
    kinds = sorted({k for events, _ in groups for k in events.kinds})
    for kind in kinds:
        family, _, name = kind.partition("/")
        parts: list[tuple[np.ndarray, pa.Table | pa.Array]] = []
        for events, rng in groups:
            batches = [formats.resolve(b) | {"ts": np.clip(np.asarray(b["ts"], np.int64), day[0], day[1] - 1)}
                       for b in events.kinds.get(kind, [])]
            # Small batches are formatted together (fewer kernel calls); large ones on their own,
            # since they come sorted and are merged without copying.
            small = [b for b in batches if formats.size(b) < _SMALL_BATCH]
            batches = [b for b in batches if formats.size(b) >= _SMALL_BATCH] + ([formats.concat(small)] if small else [])
            for batch in batches:
                if formats.size(batch):
                    parts.append(_format(family, name, batch, org_id15, rng))
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


def _format(family: str, name: str, batch: formats.Batch, org_id15: str,
            rng: np.random.Generator) -> tuple[np.ndarray, pa.Table | pa.Array]:
    if family == "elf":
        return formats.elf_table(name, batch, org_id15, rng)
    if family == "rtem":
        return formats.rtem_lines(name, batch, rng)
    if family == "okta":
        return formats.okta_lines(batch, rng)
    if family == "audit":
        ts = np.asarray(batch["ts"], np.int64)
        order = np.argsort(ts, kind="stable")
        return ts[order], join(pa.array(list(batch["line"])).take(pa.array(order)), "\n")
    raise ValueError(f"unknown output kind {family}/{name}")


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
    return [parts[s[a]][1].slice(int(p[a]), int(b - a)) for a, b in zip(starts, ends, strict=True)]
