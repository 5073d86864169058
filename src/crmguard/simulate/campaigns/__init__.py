"""Labelled attack campaigns. Each module plans one campaign from its own random stream, so its
parameters (timing, speed, chunk sizes, names, IP ranges, user agents) change with the seed and do
not depend on which other campaigns run."""

from __future__ import annotations

import numpy as np

from crmguard.simulate.background import Context
from crmguard.simulate.campaigns import credential_stuffing, insider, stolen_token, vishing
from crmguard.simulate.campaigns.base import Campaign

CAMPAIGNS: tuple[str, ...] = ("vishing", "stolen-token", "insider", "credential-stuffing")
"""Valid campaign names, in the order they are planned."""

_PLANNERS = {"vishing": vishing.plan, "stolen-token": stolen_token.plan, "insider": insider.plan,
             "credential-stuffing": credential_stuffing.plan}


def plan_campaigns(names: list[str], seed: int, stream: int, ctx: Context, period: tuple[int, int]) -> list[Campaign]:
    """Plan the named campaigns inside ``period`` (epoch ms). Each gets the generator
    ``SeedSequence([seed, stream, index of its name in CAMPAIGNS])``. Returns them in
    :data:`CAMPAIGNS` order."""
    plans = []
    for name in CAMPAIGNS:
        if name in names:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, CAMPAIGNS.index(name)])))
            plans.append(_PLANNERS[name](rng, ctx, period))
    return plans


__all__ = ["CAMPAIGNS", "Campaign", "plan_campaigns"]
