"""What every campaign shares: its ground truth (actors, window, parameters, records touched, the
keys of each log record it wrote), bucketing its events by day, and helpers to speak as an
attacker (Okta events from an arbitrary IP and device, Salesforce clients).

Campaign events are few, so they are planned up front with small Python loops; they are then
handed to the runner day by day and formatted with the same code as background traffic.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from crmguard.simulate import formats, geo, ids
from crmguard.simulate.background import Context, Day, Events
from crmguard.simulate.calls import Client
from crmguard.simulate.clock import DAY_MS, iso_z_one
from crmguard.simulate.columns import as_strings, uuids
from crmguard.simulate.customers import Customers
from crmguard.simulate.formats import Batch
from crmguard.simulate.org import DESKTOP_AGENTS, Agent

SCRIPT_AGENTS = (
    "python-requests/2.31.0", "python-requests/2.32.3", "curl/8.5.0", "curl/7.88.1", "Go-http-client/1.1",
    "Go-http-client/2.0", "aiohttp/3.9.5", "Python-urllib/3.11", "simple-salesforce/1.12.6 python-requests/2.32.3",
    "axios/1.7.2", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "okhttp/4.9.3",
)
"""User agents of scripts and HTTP libraries (attack tooling rarely sets a browser's)."""

EXTRA_BROWSERS = (
    Agent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
          "CHROME", "Linux", "Chrome 131", "Linux", "Computer"),
    Agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
          "CHROME", "Windows 10", "Chrome 128", "Windows 10", "Computer"),
    Agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
          "FIREFOX", "Windows 10", "Firefox 128", "Windows 10", "Computer"),
    Agent("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 "
          "Safari/605.1.15", "SAFARI", "Mac OS X", "Safari 17", "Mac OSX", "Computer"),
)
BROWSERS = DESKTOP_AGENTS + EXTRA_BROWSERS

_KEY_FIELD = {"elf": "REQUEST_ID", "rtem": "EventIdentifier", "okta": "uuid", "audit": "Id"}


@dataclass
class Campaign:
    """A planned attack with its ground truth. Subclasses fill it in ``plan``."""

    name: str
    description: str
    period: tuple[int, int]
    actors: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    ips: list[str] = field(default_factory=list)
    user_agents: list[str] = field(default_factory=list)
    apps: list[dict[str, str]] = field(default_factory=list)
    networks: list[dict[str, Any]] = field(default_factory=list)
    touched: dict[str, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    by_day: dict[int, Events] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first: int | None = None
    last: int | None = None

    # -- building ----------------------------------------------------------------------------------

    def add(self, kind: str, batch: Batch) -> None:
        """Add a batch of ``kind``; rows outside the simulated period are dropped (the attack is
        cut off where the simulation ends), the rest are bucketed by day."""
        ts = np.asarray(batch["ts"], np.int64)
        if not len(ts):
            return
        keep = (ts >= self.period[0]) & (ts < self.period[1])
        day = (ts - self.period[0]) // DAY_MS
        for d in np.unique(day[keep]):
            rows = np.flatnonzero(keep & (day == d))
            part = {k: _rows(v, rows, len(ts)) for k, v in batch.items()}
            self.by_day.setdefault(int(d), Events()).add(kind, part)
        if keep.any():
            lo, hi = int(ts[keep].min()), int(ts[keep].max())
            self.first = lo if self.first is None else min(self.first, lo)
            self.last = hi if self.last is None else max(self.last, hi)

    def add_all(self, events: Events) -> None:
        """Add every batch of ``events``."""
        for kind, batches in events.kinds.items():
            for b in batches:
                self.add(kind, b)

    def touch(self, entity: str, indices: np.ndarray, when: np.ndarray | int | None = None) -> None:
        """Record that records ``indices`` of ``entity`` were returned to the attacker (only those
        returned inside the simulated period count)."""
        indices = np.asarray(indices, np.int64)
        if when is not None:
            when_a = np.broadcast_to(np.asarray(when, np.int64), indices.shape)
            indices = indices[(when_a >= self.period[0]) & (when_a < self.period[1])]
        self.touched[entity].append(indices)

    def inside(self, ts: int) -> bool:
        """Whether ``ts`` falls inside the simulated period."""
        return self.period[0] <= ts < self.period[1]

    # -- handing over to the runner ------------------------------------------------------------------

    def events_for_day(self, day: Day, rng: np.random.Generator) -> tuple[Events, dict[str, list[str]], dict[str, int]]:
        """The campaign's events of ``day``, each given its record key; also returns the keys per
        output file and the event counts per kind, for :meth:`record`."""
        events = self.by_day.get(day.index, Events())
        keys: dict[str, list[str]] = {}
        counts: dict[str, int] = {}
        for kind, batches in events.kinds.items():
            family, _, name = kind.partition("/")
            path = _path(family, name, day.date)
            for i, b in enumerate(batches):
                b = batches[i] = formats.resolve(b)
                n = formats.size(b)
                key = _KEY_FIELD[family]
                if key not in b:
                    b[key] = _new_keys(family, rng, n)
                keys.setdefault(path, []).extend(as_strings(b[key], n).to_pylist())
                counts[kind] = counts.get(kind, 0) + n
        return events, keys, counts

    def record(self, keys: dict[str, list[str]], counts: dict[str, int]) -> None:
        """Add one day's record keys and event counts (from :meth:`events_for_day`) to the truth."""
        for path, values in keys.items():
            self.keys.setdefault(path, []).extend(values)
        for kind, n in counts.items():
            self.counts[kind] += n

    # -- ground truth --------------------------------------------------------------------------------

    def label(self, customers: Customers) -> dict[str, Any]:
        """The campaign's entry in ``labels.json``."""
        touched = {e: np.unique(np.concatenate(v)) if v else np.zeros(0, np.int64) for e, v in self.touched.items()}
        contact = touched.get("Contact", np.zeros(0, np.int64))
        account = touched.get("Account", np.zeros(0, np.int64))
        exposed = np.union1d(contact, account)
        records = {
            "Contact": customers.contact_ids(contact).to_pylist(),
            "Account": customers.account_ids(account).to_pylist(),
        }
        for entity in ("Lead", "Case"):
            if entity in touched:
                records[entity] = customers.record_ids(entity, touched[entity]).to_pylist()
        other = {e: int(len(v)) for e, v in touched.items() if e not in records}
        start = self.first if self.first is not None else self.period[0]
        end = self.last if self.last is not None else start
        return {
            "name": self.name,
            "description": self.description,
            "start": iso_z_one(start),
            "end": iso_z_one(end + 1),
            "actors": self.actors,
            "attacker": {"ips": self.ips, "user_agents": self.user_agents, "networks": self.networks, "apps": self.apps},
            "parameters": self.params,
            "touched_customer_ids": customers.contact_ids(exposed).to_pylist(),
            "touched_record_ids": records,
            "counts": {
                "events": int(sum(self.counts.values())),
                "events_by_kind": dict(sorted(self.counts.items())),
                "customers": int(len(exposed)),
                "records": {**{e: len(v) for e, v in records.items()}, **other},
            },
            "event_keys": dict(sorted(self.keys.items())),
        }

    # -- snapshot hooks ------------------------------------------------------------------------------

    def snapshot_apps(self) -> list[dict[str, Any]]:
        """Connected apps the campaign left installed."""
        return []

    def adjust_tokens(self, tokens: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """OAuth tokens as the campaign left them."""
        return tokens

    def snapshot_permission_sets(self) -> list[tuple[int, str]]:
        """(user index, permission set name) assignments the campaign added."""
        return []


def _new_keys(family: str, rng: np.random.Generator, n: int) -> pa.Array:
    if family == "elf":
        return ids.request_ids(rng, n)
    return uuids(rng, n, version=4 if family == "rtem" else 1)


def _rows(value: Any, rows: np.ndarray, n: int) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        return value[rows]
    if isinstance(value, pa.Array):
        return value.take(pa.array(rows))
    if isinstance(value, list):
        return [value[i] for i in rows]
    if isinstance(value, formats.Deferred):
        return value.take(rows)
    raise TypeError(f"unsupported column type {type(value)}")


def _path(family: str, name: str, date: dt.date) -> str:
    day = date.isoformat()
    if family == "elf":
        return f"salesforce/elf/{day}/{name}.csv"
    if family == "rtem":
        return f"salesforce/rtem/{day}/{name}.json"
    if family == "audit":
        return f"salesforce/audit/{day}.json"
    return f"okta/{day}.json"


# --- speaking as someone ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Place:
    """Where a request comes from: IP, its network and whether Okta flags it as a proxy."""

    ip: str
    network: geo.Network

    @property
    def proxy(self) -> bool:
        """Anonymising infrastructure (VPN exit, Tor, rented server)."""
        return self.network.kind in ("vpn", "tor", "hosting")


def okta_event(rng: np.random.Generator, ts: np.ndarray | list[int], event_type: str, *, actor: str, agent: Agent,
               place: Place, session: str, credential: str, target: str = "null", uri: str = "/api/v1/authn",
               extra: str = "", result: str | list[str] = "SUCCESS", reason: str | list[str] = "") -> Batch:
    """Okta events of one type by ``actor`` (rendered actor JSON) using ``agent`` from ``place``."""
    ts = np.asarray(ts, np.int64)
    n = len(ts)
    city = place.network.city
    tx = ids.okta_request_ids(rng, n)
    return {
        "ts": ts, "eventType": event_type, "actor": actor,
        "client": formats.okta_client(agent.raw, agent.okta_browser, agent.okta_os, agent.device, place.ip, city),
        "securityContext": formats.okta_security(place.network, place.proxy),
        "ipChain": formats.okta_ip_chain(place.ip, city),
        "authenticationContext": formats.okta_auth_context(pa.array([session] * n), credential, n),
        "target": target, "debugData": formats.debug_data(tx, uri, extra, n),
        "result": result if isinstance(result, str) else pa.array(result),
        "reason": reason if isinstance(reason, str) else pa.array(reason), "transaction": tx,
    }


def user_client(ctx: Context, user: int, place: Place, agent: str, rng: np.random.Generator, *, app_name: str = "N/A",
                app_id15: str = "", app_id18: str = "", client_name: str = "", client_ip: str = "") -> Client:
    """A Salesforce :class:`Client` acting as org user ``user`` from ``place`` with fresh session keys."""
    org = ctx.pop.org
    keys = ids.session_keys(rng, 2).to_pylist()
    history = ids.strings(ids.id_matrix("0Ya", org.pod, rng.integers(10**12, 2 * 10**12, 1)))[0].as_py()
    return Client(
        user15=org.users.sf15[user], user18=org.users.sf18[user], username=org.users.username[user], ip=place.ip,
        city=place.network.city, agent=agent, app_name=app_name, app_id15=app_id15, app_id18=app_id18,
        client_name=client_name, session_key=keys[0], login_key=keys[1], history=history, client_ip=client_ip,
        login_url=org.my_domain,
    )


def refresh(client: Client, rng: np.random.Generator, place: Place | None = None) -> Client:
    """The same client with new session keys (a new token refresh or login), optionally elsewhere."""
    keys = ids.session_keys(rng, 2).to_pylist()
    changes: dict[str, Any] = {"session_key": keys[0], "login_key": keys[1]}
    if place is not None:
        changes.update(ip=place.ip, city=place.network.city)
    return Client(**{**client.__dict__, **changes})


def sso_target(ctx: Context, user: int) -> str:
    """Okta target list of ``user`` signing in to Salesforce."""
    return formats.okta_sso_target(ctx.pop.org.okta_sf_app_id, ctx.pop.okta_user_target[user].as_py())


def actor_entry(ctx: Context, user: int, kind: str) -> dict[str, Any]:
    """A labels ``actors`` entry for org user ``user``."""
    users = ctx.pop.org.users
    return {"kind": kind, "username": users.username[user], "user_id": users.sf18[user],
            "okta_id": users.okta_id[user], "name": users.name(user)}


def network_entry(net: geo.Network) -> dict[str, Any]:
    """A labels ``networks`` entry."""
    return {"asn": net.asn, "as_org": net.as_org, "kind": net.kind, "country": net.city.country}


def pick(rng: np.random.Generator, seq: tuple | list) -> Any:  # type: ignore[type-arg]
    """One element of ``seq``."""
    return seq[int(rng.integers(len(seq)))]
