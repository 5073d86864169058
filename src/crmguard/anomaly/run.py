"""Baselines as library calls: load a directory's peer groups, update the store, score days into
alerts, describe one identity."""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from crmguard.alerts.store import Store, StoreResult
from crmguard.anomaly.alerting import find_anomalies
from crmguard.anomaly.score import Settings, quantile_sql, scored_features_sql
from crmguard.anomaly.store import BaselineStore, UpdateResult
from crmguard.engine.run import Alert
from crmguard.errors import CrmguardError
from crmguard.lake import Lake


class BaselineError(CrmguardError):
    """A baseline input (directory file, identity) that cannot be used; says which and why."""


@dataclass(frozen=True)
class BaselineResult:
    """One baseline run: the update, the days scored, the alerts and what storing them did."""

    update: UpdateResult
    days: list[dt.date]
    alerts: list[Alert]
    stored: StoreResult


def read_directory(path: Path) -> pa.Table:
    """Peer groups ``(identity, peer_group)`` from a directory export: an org snapshot JSON (``users``
    with ``Username`` and ``ProfileId``, ``profiles`` with ``Id`` and ``Name``), or a CSV with a
    ``Username`` column and a ``Profile`` or ``Role`` column. Raises :class:`BaselineError`."""
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(path.read_text())
            names = {p["Id"]: p["Name"] for p in doc.get("profiles", [])}
            users = doc["users"]
            ids = [u["Username"] for u in users]
            groups = [names.get(u.get("ProfileId"), u.get("ProfileId") or "unknown") for u in users]
        else:
            with path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                cols = {c.lower(): c for c in reader.fieldnames or []}
                group_col = cols.get("profile") or cols.get("role") or cols.get("peer_group")
                if "username" not in cols or group_col is None:
                    raise BaselineError(f"{path}: the CSV needs a Username column and a Profile or Role column "
                                        f"(has {', '.join(reader.fieldnames or [])})")
                rows = list(reader)
            ids = [r[cols["username"]] for r in rows]
            groups = [r[group_col] or "unknown" for r in rows]
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{path}: not a directory export crmguard can read ({exc.__class__.__name__}: {exc})") from exc
    return pa.table({"identity": ids, "peer_group": groups})


def scorable_days(store: BaselineStore, settings: Settings, since: dt.datetime | None = None,
                  until: dt.datetime | None = None) -> list[dt.date]:
    """Stored days in [since, until) that have at least ``settings.min_history_days`` stored days
    before them (a day without history has nothing to be judged against)."""
    days = [dt.date.fromisoformat(d) for d in store.days()]
    if not days:
        return []
    first = days[0] + dt.timedelta(days=settings.min_history_days)
    lo = since.date() if since else first
    hi = until if until else dt.datetime.max.replace(tzinfo=dt.UTC)
    return [d for d in days if d >= max(lo, first)
            and dt.datetime.combine(d, dt.time(), dt.UTC) < hi]


def run_baselines(con: duckdb.DuckDBPyConnection, lake: Lake, state: Path | None, since: dt.datetime | None = None,
                  until: dt.datetime | None = None, settings: Settings | None = None, directory: Path | None = None,
                  full: bool = False, intel: Any = None, score: bool = True) -> BaselineResult:
    """Update the baseline store of ``lake`` (peer groups from ``directory`` when given); unless
    ``score`` is false, score days that have enough history and save the alerts in the SQLite
    ``state`` database (not saved when ``state`` is None). The days scored are those in [since, until)
    when either is given, every day with ``full``, and otherwise only the days the update can have
    changed: the days rebuilt and the 30 after each (their history). ``con`` must have the lake's ``events``
    view (see :func:`crmguard.detect.engine_connection`). Returns the :class:`BaselineResult`."""
    settings = settings or Settings()
    store = BaselineStore(lake)
    if directory is not None:
        store.set_peers(read_directory(directory))
    update = store.update(con, full=full, intel=intel)
    store.register(con)
    days = scorable_days(store, settings, since, until) if score else []
    if since is None and until is None and not full:
        # Only the days whose score can have changed: those rebuilt, and those whose history holds one.
        rebuilt = [dt.date.fromisoformat(d) for d in update.rebuilt]
        days = [d for d in days if any(r <= d <= r + dt.timedelta(days=settings.history_days) for r in rebuilt)]
    alerts = find_anomalies(con, days, settings) if days else []
    stored = StoreResult(0, 0, len(alerts), (), ())
    if state is not None:
        alert_store = Store(state)
        try:
            stored = alert_store.save(alerts)
        finally:
            alert_store.close()
    return BaselineResult(update, days, alerts, stored)


def profile(con: duckdb.DuckDBPyConnection, store: BaselineStore, identity: str, days: int = 30,
            recent_hours: int = 24, settings: Settings | None = None) -> dict[str, Any]:
    """An identity's normal and recent behaviour: per scored feature its own p99 per active hour over
    the ``days`` before its last ``recent_hours``, its API / UI / report shares, the IPs, ASNs,
    countries, apps, user agents, channels and hours it used then, and the hourly features of the last
    ``recent_hours``. Raises :class:`BaselineError` when the
    store holds nothing for ``identity``."""
    settings = settings or Settings()
    store.register(con)
    who = identity.lower()
    [(last,)] = con.execute("SELECT max(hour) FROM hourly WHERE identity = ?", [who]).fetchall()
    if last is None:
        raise BaselineError(f"no baseline for {identity!r}: the store has no events of this identity "
                            "(run `crmguard baseline update`, and check the spelling: usernames are matched lower-case)")
    [(group,)] = con.execute("SELECT any_value(peer_group) FROM peers WHERE identity = ?", [who]).fetchall()
    cut = last - dt.timedelta(hours=recent_hours)
    start = cut - dt.timedelta(days=days)
    q = settings.quantile
    scored = scored_features_sql()
    [(hours, active_days)] = con.execute(
        "SELECT count(*), count(DISTINCT CAST(hour AS DATE)) FROM hourly WHERE identity = ? AND feature = 'events' "
        "AND hour >= ? AND hour <= ?", [who, start, cut]).fetchall()
    normal = con.execute(
        f"""SELECT feature, {quantile_sql("list_sort(list(value))", "count(*)", str(hours or 1), q)} AS own_hour_p99,
            max(value) AS own_hour_max, count(*) AS hours_with
        FROM hourly WHERE identity = ? AND hour >= ? AND hour <= ? AND {scored} GROUP BY feature ORDER BY feature""",
        [who, start, cut]).fetchall()
    known = con.execute(
        """SELECT kind, count(DISTINCT value), list(DISTINCT value ORDER BY value)[1:5], min(first_time)
        FROM facts WHERE identity = ? AND first_time >= ? AND first_time <= ? GROUP BY kind ORDER BY kind""",
        [who, start, cut]).fetchall()
    channels = dict(con.execute(
        "SELECT feature, sum(value) FROM hourly WHERE identity = ? AND hour >= ? AND hour <= ? "
        "AND feature IN ('api', 'ui', 'report') GROUP BY feature", [who, start, cut]).fetchall())
    total = sum(channels.values()) or 1
    recent = con.execute(
        "SELECT hour, feature, value FROM hourly WHERE identity = ? AND hour > ? ORDER BY hour, feature",
        [who, cut]).fetchall()
    return {
        "identity": who, "peer_group": group, "history_from": start, "last_active_hour": last,
        "active_hours": int(hours), "active_days": int(active_days),
        "channel_share": {k: round(channels.get(k, 0) / total, 3) for k in ("api", "ui", "report")},
        "normal": [{"feature": f, "own_hour_p99": p, "own_hour_max": m, "hours_with": n} for f, p, m, n in normal],
        "known": [{"kind": k, "distinct": n, "examples": ex, "first_seen": fs} for k, n, ex, fs in known],
        "recent": [{"hour": h, "feature": f, "value": v} for h, f, v in recent],
    }
