"""Per-user values that daily traffic picks from, precomputed once as Arrow arrays.

Each user has two usual places: their boutique or office (location 0) and home (location 1).
Everything that depends only on the user and the place (IP, geolocation, Okta client and security
context) is rendered here once, so a day's events only ``take`` from these arrays.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from crmguard.simulate import clock, formats, geo
from crmguard.simulate.org import AGENTS, Org

OFFICE, HOME = 0, 1


@dataclass
class Population:
    """Arrow columns per user (length ``n``) and per user-place (length ``2n``, index ``2*u + place``)."""

    org: Org
    n: int
    role: np.ndarray
    id15: pa.Array
    id18: pa.Array
    username: pa.Array
    okta_actor: pa.Array
    okta_user_target: pa.Array
    desktop_ua: pa.Array
    desktop_browser: pa.Array
    desktop_platform: pa.Array
    mobile_ua: pa.Array
    mobile_platform: pa.Array
    place_ip: pa.Array
    place_country: pa.Array
    place_country_name: pa.Array
    place_city: pa.Array
    place_state: pa.Array
    place_postal: pa.Array
    place_lat: pa.Array
    place_lon: pa.Array
    place_client: pa.Array
    place_security: pa.Array
    place_chain: pa.Array
    site_rule: list[str]
    site_minutes: np.ndarray

    def utc_offsets(self, day: dt.date) -> np.ndarray:
        """Each user's UTC offset in minutes on ``day`` (from their site's time zone)."""
        per_site = np.array([clock.utc_offset_minutes(r, m, day) for r, m in zip(self.site_rule, self.site_minutes, strict=True)])
        return per_site[self.org.users.site]


def build_population(org: Org) -> Population:
    """Render the per-user and per-place arrays of ``org``; returns the :class:`Population`."""
    users = org.users
    n = len(users)
    places: list[tuple[str, geo.Network, geo.City]] = []
    for u in range(n):
        site = org.sites[users.site[u]]
        places.append((site.ip, site.network, site.city))
        home_net = users.home_network[u]
        places.append((users.home_ip[u] or site.ip, home_net, home_net.city if users.home_ip[u] else site.city))
    desktop = [AGENTS[a] for a in users.desktop_agent]
    clients = []
    for k, (ip, _net, city) in enumerate(places):
        agent = desktop[k // 2]
        clients.append(formats.okta_client(agent.raw, agent.okta_browser, agent.okta_os, agent.device, ip, city))
    mobile = [AGENTS[a] if a >= 0 else None for a in users.mobile_agent]
    name = [users.name(i) for i in range(n)]
    return Population(
        org=org, n=n, role=users.role,
        id15=pa.array(users.sf15), id18=pa.array(users.sf18), username=pa.array(users.username),
        okta_actor=pa.array([formats.okta_actor(users.okta_id[i], users.username[i], name[i]) for i in range(n)]),
        okta_user_target=pa.array([
            formats.okta_target(users.okta_id[i], users.username[i], name[i], "User") for i in range(n)
        ]),
        desktop_ua=pa.array([a.raw for a in desktop]), desktop_browser=pa.array([a.sf_browser for a in desktop]),
        desktop_platform=pa.array([a.sf_platform for a in desktop]),
        mobile_ua=pa.array([a.raw if a else "" for a in mobile]),
        mobile_platform=pa.array([a.sf_platform if a else "" for a in mobile]),
        place_ip=pa.array([p[0] for p in places]),
        place_country=pa.array([p[2].country for p in places]),
        place_country_name=pa.array([geo.COUNTRY_NAMES[p[2].country] for p in places]),
        place_city=pa.array([p[2].name for p in places]),
        place_state=pa.array([p[2].state for p in places]),
        place_postal=pa.array([p[2].postal for p in places]),
        place_lat=pa.array([repr(p[2].lat) for p in places]),
        place_lon=pa.array([repr(p[2].lon) for p in places]),
        place_client=pa.array(clients),
        place_security=pa.array([formats.okta_security(p[1], False) for p in places]),
        place_chain=pa.array([formats.okta_ip_chain(p[0], p[2]) for p in places]),
        site_rule=[s.city.tz_rule for s in org.sites],
        site_minutes=np.array([s.city.tz_minutes for s in org.sites]),
    )
