"""Ground truth (``labels.json``) and the run summary returned by :func:`crmguard.simulate.simulate`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from crmguard.simulate.clock import iso_z_one

if TYPE_CHECKING:
    from crmguard.simulate.campaigns.base import Campaign
    from crmguard.simulate.customers import Customers
    from crmguard.simulate.org import Org

NON_EVENT_KINDS = ("customers", "snapshot")


@dataclass(frozen=True)
class CampaignSummary:
    """One campaign as the summary reports it: name, actors (``"<kind> <username> (<user id>)"``;
    details in ``labels.json``), attacker IPs, window (ISO UTC) and how many events and customers
    it involved."""

    name: str
    actors: tuple[str, ...]
    attacker_ips: tuple[str, ...]
    start: str
    end: str
    events: int
    customers_touched: int


@dataclass(frozen=True)
class SimulationSummary:
    """What a simulation wrote: rows per output kind (``elf/Login``, ``rtem/ApiEvent``, ``okta``,
    ``audit``, ``customers``, ``snapshot``), files and bytes per kind, total log events, the
    campaigns, and the paths of each output."""

    out: Path
    seed: int
    start: dt.date
    days: int
    users: int
    customers: int
    counts: dict[str, int]
    files: dict[str, int]
    bytes: dict[str, int]
    total_events: int
    campaigns: tuple[CampaignSummary, ...]
    paths: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def build(cls, out: Path, seed: int, start: dt.date, days: int, users: int, customers: int, counts: dict[str, int],
              files: dict[str, int], bytes_: dict[str, int], labels: dict[str, Any]) -> SimulationSummary:
        """Assemble the summary from the run's tallies and its labels document."""
        campaigns = tuple(
            CampaignSummary(c["name"], tuple(f"{a['kind']} {a['username']} ({a['user_id']})" for a in c["actors"]),
                            tuple(c["attacker"]["ips"]), c["start"], c["end"], c["counts"]["events"],
                            c["counts"]["customers"])
            for c in labels["campaigns"]
        )
        paths = {
            "elf": out / "salesforce" / "elf", "rtem": out / "salesforce" / "rtem",
            "audit": out / "salesforce" / "audit", "okta": out / "okta", "customers": out / "crm" / "customers.csv",
            "snapshot": out / "org" / "snapshot.json", "labels": out / "labels.json",
        }
        total = sum(v for k, v in counts.items() if k not in NON_EVENT_KINDS)
        return cls(out, seed, start, days, users, customers, dict(sorted(counts.items())), dict(sorted(files.items())),
                   dict(sorted(bytes_.items())), total, campaigns, paths)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form of the summary."""
        return {
            "out": str(self.out), "seed": self.seed, "start": self.start.isoformat(), "days": self.days,
            "users": self.users, "customers": self.customers, "total_events": self.total_events,
            "counts": self.counts, "files": self.files, "bytes": self.bytes,
            "campaigns": [c.__dict__ | {"actors": list(c.actors), "attacker_ips": list(c.attacker_ips)}
                          for c in self.campaigns],
            "paths": {k: str(v) for k, v in self.paths.items()},
        }


def write_labels(path: Path, seed: int, start: dt.date, days: int, org: Org, customers: Customers,
                 campaigns: list[Campaign], period: tuple[int, int]) -> dict[str, Any]:
    """Write ``labels.json``: the simulated period, org identifiers and, per campaign, its actors,
    window, attacker infrastructure, parameters, the records returned to the attacker and the keys
    of every log record it produced. Returns the document."""
    doc = {
        "generator": "crmguard.simulate",
        "seed": seed,
        "period": {"start": iso_z_one(period[0]), "end": iso_z_one(period[1]), "days": days,
                   "first_day": start.isoformat()},
        "org": {"id": org.org_id18, "name": org.group, "my_domain": org.my_domain, "okta_domain": org.okta_domain},
        "event_keys": {
            "elf": "REQUEST_ID", "rtem": "EventIdentifier", "okta": "uuid", "audit": "Id",
        },
        "campaigns": [c.label(customers) for c in campaigns],
    }
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return doc
