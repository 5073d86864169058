"""Which time window an incremental detection run must cover, and which of its alerts it may store.

New events (including late ones) all lie at or after ``min_new``. For the alerts of a run to equal
those of one batch run over every event, every alert the new events can change must be recomputed
whole:

- a detection alert is one (rule, dedup key, dedup period) bucket, buckets aligned on epoch
  multiples of the rule's ``dedup_period``: the run starts at or before ``floor(min_new, period)``;
- a correlation episode (see :mod:`crmguard.engine.correlate`) merges firing windows
  ``[t - T, t]`` that touch: the run starts at or before ``min_new - T`` (windows ending at new
  events are complete), and at or before ``first_seen - T`` of every stored episode of that rule
  still open (``last_seen >= min_new - T``), which new firings can extend or merge with.

Only windows that end at or after ``min_new`` can change, so a run stores only the alerts whose
``last_seen >= min_new``: older buckets and episodes are seen cut at the window start and must not
overwrite what is stored. When new events merge or extend an episode backwards (late events), the
episode's id (hash of its first event time) changes; stored episodes of the same rule and group that
it now covers are *superseded* (status ``superseded``) so each episode is one open alert.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

from crmguard.engine.rules import Rule
from crmguard.engine.run import Alert


@dataclass(frozen=True)
class StoredEpisode:
    """A stored correlation alert: id, rule id, dedup key (the group) and its time span."""

    id: str
    rule_id: str
    dedup_key: str
    first_seen: dt.datetime
    last_seen: dt.datetime


def floor_time(t: dt.datetime, period: dt.timedelta) -> dt.datetime:
    """Return the start of the epoch-aligned ``period`` bucket holding ``t`` (UTC)."""
    secs = int(period.total_seconds())
    return dt.datetime.fromtimestamp(math.floor(t.timestamp() / secs) * secs, dt.UTC)


def lookback(rules: Iterable[Rule]) -> dt.timedelta:
    """The longest correlation timespan of ``rules`` (zero when there is none)."""
    return max((r.correlation.timespan for r in rules if r.correlation), default=dt.timedelta(0))


def rule_starts(min_new: dt.datetime, rules: list[Rule], stored: Iterable[StoredEpisode],
                reach: int = 1) -> dict[str, dt.datetime]:
    """Return, per rule name, the earliest event time that rule's run must read when the new events
    start at ``min_new``, given the stored correlation episodes (see the module doc). Rules with
    a short window need not re-read the look-back of the longest one. ``reach``: how many of its
    timespans before ``min_new`` a correlation reads (see :func:`retention_starts`)."""
    starts: dict[str, dt.datetime] = {}
    spans: dict[str, tuple[str, dt.timedelta]] = {}
    for r in rules:
        if r.condition and not r.hidden:
            starts[r.name] = floor_time(min_new, r.dedup_period)
        elif r.correlation:
            spans[r.id] = (r.name, r.correlation.timespan)
            starts[r.name] = min_new - reach * r.correlation.timespan
    for ep in stored:
        if ep.rule_id in spans:
            name, span = spans[ep.rule_id]
            if ep.last_seen >= min_new - span:
                starts[name] = min(starts[name], ep.first_seen - span)
    return starts


def retention_starts(mark: dt.datetime, rules: list[Rule], stored: Iterable[StoredEpisode]) -> dict[str, dt.datetime]:
    """Per rule name, the earliest event time any later run can read, when every later batch's
    new events lie at or after ``mark`` (the watermark less the late tolerance) and ``stored`` are
    the correlation episodes stored now: the match cache may drop older matches.

    :func:`rule_starts` at ``mark``, but a correlation keeps twice its timespan: an episode a later
    run opens first fires at or after ``mark``, so its first event is at or after ``mark - T``, and
    re-reading it starts ``T`` before that."""
    return rule_starts(mark, rules, stored, reach=2)


def window_start(min_new: dt.datetime, rules: list[Rule], stored: Iterable[StoredEpisode]) -> dt.datetime:
    """Return the earliest event time a run of all ``rules`` must read when the new events start at
    ``min_new`` (the earliest of their :func:`rule_starts`)."""
    return min([min_new, *rule_starts(min_new, rules, stored).values()])


def to_store(alerts: list[Alert], min_new: dt.datetime) -> list[Alert]:
    """The alerts of a run that the new events can have changed (``last_seen >= min_new``)."""
    return [a for a in alerts if a.last_seen >= min_new]


def superseded(saved: list[Alert], stored: Iterable[StoredEpisode]) -> list[str]:
    """Ids of stored episodes covered by a freshly computed episode of the same rule and group
    with a different id (the new events merged them into it or extended it backwards)."""
    by_group: dict[tuple[str, str], list[Alert]] = {}
    for a in saved:
        by_group.setdefault((a.rule_id, a.dedup_key), []).append(a)
    out = []
    for ep in stored:
        for a in by_group.get((ep.rule_id, ep.dedup_key), ()):
            if a.id != ep.id and ep.first_seen <= a.last_seen and a.first_seen <= ep.last_seen:
                out.append(ep.id)
                break
    return out
