"""Behavioural baselines end to end on a simulated org: features, incremental store, scores, alerts, CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from crmguard.anomaly import RULE_ID, BaselineStore
from crmguard.anomaly.run import BaselineError, read_directory
from crmguard.anomaly.score import quantile_sql
from crmguard.cli import EXIT_OK, main
from crmguard.ingest import ingest
from crmguard.lake import Lake
from crmguard.simulate import simulate


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-user org, 10 days, vishing and stolen token after 6 quiet days, ingested into a workspace."""
    root = tmp_path_factory.mktemp("baseline")
    simulate(root / "sim", users=60, days=10, seed=7, campaigns=["vishing", "stolen-token"], quiet_days=6)
    summary = ingest([str(root / "sim" / "salesforce"), str(root / "sim" / "okta")], Lake(root / "home" / "lake"))
    assert not summary.failed
    return root


def _labels(org: Path) -> dict:
    return json.loads((org / "sim" / "labels.json").read_text())


def test_quantile_with_implicit_zeros_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    con = duckdb.connect()
    for active, nonzero in ((200, 3), (200, 150), (50, 50), (1000, 9), (7, 1)):
        values = rng.integers(1, 10_000, nonzero)
        full = np.concatenate([np.zeros(active - nonzero, np.int64), values])
        expected = np.quantile(full, 0.99, method="inverted_cdf")
        sql = quantile_sql("list_sort(?::BIGINT[])", str(nonzero), str(active), 0.99)
        [(got,)] = con.execute(f"SELECT {sql}", [values.tolist()]).fetchall()
        assert got == expected, (active, nonzero)


def test_update_alerts_on_the_campaigns_with_explanations(org: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(org / "home")
    assert main(["baseline", "update", "--home", home, "--directory", str(org / "sim" / "org" / "snapshot.json"),
                 "--json"]) == EXIT_OK
    alerts = json.loads(capsys.readouterr().out)
    labels = _labels(org)
    victims = {c["name"]: c["actors"][0]["username"].lower() for c in labels["campaigns"]}
    starts = {c["name"]: dt.datetime.fromisoformat(c["start"].replace("Z", "+00:00")) for c in labels["campaigns"]}
    by_actor = {a["actor"]: a for a in alerts}
    for name, who in victims.items():
        alert = by_actor[who]
        assert alert["rule_id"] == RULE_ID
        fired = dt.datetime.fromisoformat(alert["context"]["fired_at"].replace("Z", "+00:00"))
        assert starts[name] <= fired <= starts[name] + dt.timedelta(hours=2), name
        assert "rows in" in alert["explanation"] and "peer p99" in alert["explanation"]
        assert alert["context"]["score"] >= 4.5 and alert["event_ids"]
    # At most one alert on a non-campaign identity over 4 scored days of 60 users.
    assert len(set(by_actor) - set(victims.values())) <= 1


def test_update_is_incremental_and_replay_stores_nothing_twice(org: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(org / "home")
    main(["baseline", "update", "--home", home])
    capsys.readouterr()
    store = BaselineStore(Lake(org / "home" / "lake"))
    con = Lake(org / "home" / "lake").connect()
    again = store.update(con)
    assert again.rebuilt == () and again.events == 0 and again.current == 10
    # Re-running the whole update stores no new alert; with nothing rebuilt, nothing is re-scored.
    assert main(["baseline", "update", "--home", home]) == EXIT_OK
    assert "0 anomalies over 0 scored day(s)" in capsys.readouterr().out
    assert main(["baseline", "update", "--home", home, "--full"]) == EXIT_OK
    assert "0 new" in capsys.readouterr().out
    # A new file in one day's partition rebuilds that day only, and the features are the same as a full rebuild.
    store.register(con)
    before = con.execute("SELECT count(*), sum(value) FROM hourly").fetchall()
    day = store.days()[3]
    part = next((org / "home" / "lake" / "events" / "source=okta" / f"date={day}").glob("*.parquet"))
    part.rename(part.with_name("part-moved.parquet"))
    again = store.update(con)
    assert again.rebuilt == (day,)
    store.register(con)
    assert con.execute("SELECT count(*), sum(value) FROM hourly").fetchall() == before
    full = store.update(con, full=True)
    assert len(full.rebuilt) == 10
    store.register(con)
    assert con.execute("SELECT count(*), sum(value) FROM hourly").fetchall() == before


def test_show_prints_normal_and_recent_behaviour(org: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(org / "home")
    main(["baseline", "update", "--home", home, "--no-alerts"])
    capsys.readouterr()
    who = _labels(org)["campaigns"][0]["actors"][0]["username"]
    assert main(["baseline", "show", who, "--home", home, "--json"]) == EXIT_OK
    shown = json.loads(capsys.readouterr().out)
    assert shown["identity"] == who.lower() and shown["active_days"] >= 3
    assert {r["kind"] for r in shown["known"]} >= {"ip", "user_agent"}
    assert any(r["feature"].startswith("rows:") for r in shown["normal"])
    assert sum(shown["channel_share"].values()) == pytest.approx(1.0, abs=0.01)
    assert main(["baseline", "show", "nobody@example.com", "--home", home]) != EXIT_OK
    assert "no baseline for 'nobody@example.com'" in capsys.readouterr().err


def test_directory_files(tmp_path: Path) -> None:
    good = tmp_path / "users.csv"
    good.write_text("Username,Profile\nAna@Example.com,Advisor\nbo@example.com,Admin\n")
    assert read_directory(good).to_pylist() == [{"identity": "Ana@Example.com", "peer_group": "Advisor"},
                                               {"identity": "bo@example.com", "peer_group": "Admin"}]
    bad = tmp_path / "bad.csv"
    bad.write_text("Email,Team\na@b.c,x\n")
    with pytest.raises(BaselineError, match="bad.csv: the CSV needs a Username column"):
        read_directory(bad)
    broken = tmp_path / "snap.json"
    broken.write_text("{not json")
    with pytest.raises(BaselineError, match="snap.json: not a directory export"):
        read_directory(broken)


def test_watch_raises_the_same_anomalies_as_a_batch_update(org: Path, tmp_path: Path) -> None:
    """Day by day through `watch --baselines`, then one batch update: the same alerts (actor, day)."""
    import shutil
    import sqlite3

    from crmguard.realtime.watch import Watcher, WatchOptions

    inbox = tmp_path / "inbox"
    watcher = Watcher(WatchOptions(lake=tmp_path / "lake", state=tmp_path / "state.db", spool=tmp_path / "spool",
                                   inbox=inbox, baselines=True, baseline_every_s=0.0))
    sim = org / "sim"
    days = sorted(p.name for p in (sim / "salesforce" / "elf").iterdir())
    try:
        for day in days:
            target = inbox / day
            shutil.copytree(sim / "salesforce" / "elf" / day, target / "elf")
            for path in [*(sim / "salesforce" / "rtem" / day).glob("*"), sim / "okta" / f"{day}.json",
                         sim / "salesforce" / "audit" / f"{day}.json"]:
                if path.exists():
                    shutil.copy(path, target / f"{path.parent.name}-{path.name}")
            assert watcher.step() is not None
        assert watcher.step() is None
    finally:
        watcher.close()

    def stored(db: Path) -> set[tuple[str, str]]:
        with sqlite3.connect(db) as con:
            return set(con.execute("SELECT actor, dedup_key FROM alerts WHERE rule_id = ?", (RULE_ID,)).fetchall())

    streamed = stored(tmp_path / "state.db")
    assert main(["baseline", "update", "--home", str(org / "home"), "--state", str(tmp_path / "batch.db"),
                 "--full"]) == EXIT_OK
    batch = stored(tmp_path / "batch.db")
    victims = {c["actors"][0]["username"].lower() for c in _labels(org)["campaigns"]}
    assert victims <= {actor for actor, _ in batch}
    assert streamed == batch


def test_thresholds_are_options(org: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home, state = str(org / "home"), str(tmp_path / "s.db")
    assert main(["baseline", "update", "--home", home, "--state", state, "--full", "--json",
                 "--alert-score", "60", "--volume-alone", "60"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == []
    assert main(["baseline", "update", "--home", home, "--state", state, "--full", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)
