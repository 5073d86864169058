"""Ground truth, customer export and org snapshot agree with each other and with the logs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from crmguard.simulate import SimulationSummary
from crmguard.simulate.customers import CSV_COLUMNS


def customers(out: Path) -> list[dict[str, str]]:
    with open(out / "crm" / "customers.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def snapshot(out: Path) -> dict:
    return json.loads((out / "org" / "snapshot.json").read_text())


def test_customer_export_has_the_expected_columns_and_a_luxury_spend_tail(run: tuple[Path, SimulationSummary]) -> None:
    out, summary = run
    with open(out / "crm" / "customers.csv", newline="", encoding="utf-8") as fh:
        assert tuple(next(csv.reader(fh))) == CSV_COLUMNS
    rows = customers(out)
    assert len(rows) == summary.customers == summary.counts["customers"]
    assert len({r["Id"] for r in rows}) == len(rows)
    assert all(len(r["Id"]) == 18 and r["Id"].startswith("003") and "@" in r["Email"] for r in rows)
    spend = sorted(float(r["TotalSpend"]) for r in rows)
    assert spend[len(spend) // 2] < 3000 < 10_000 <= spend[-1] <= 90_000


def test_touched_records_exist_in_the_customer_export(run: tuple[Path, SimulationSummary], labels: dict) -> None:
    ids = {r["Id"] for r in customers(run[0])}
    for c in labels["campaigns"]:
        touched = c["touched_customer_ids"]
        assert touched, c["name"]
        assert set(touched) <= ids, c["name"]
        assert set(c["touched_record_ids"]["Contact"]) <= ids
        assert c["counts"]["customers"] == len(touched)


def test_campaign_windows_fall_inside_the_simulated_period(labels: dict) -> None:
    start, end = labels["period"]["start"], labels["period"]["end"]
    for c in labels["campaigns"]:
        assert start <= c["start"] <= c["end"] <= end, c["name"]


def test_actors_are_org_users_and_attackers_have_infrastructure(run: tuple[Path, SimulationSummary],
                                                                 labels: dict) -> None:
    users = {u["Username"]: u["Id"] for u in snapshot(run[0])["users"]}
    for c in labels["campaigns"]:
        assert c["actors"], c["name"]
        for actor in c["actors"]:
            assert users[actor["username"]] == actor["user_id"]
        assert c["attacker"]["ips"] and c["attacker"]["user_agents"]
    insider = next(c for c in labels["campaigns"] if c["name"] == "insider")
    assert [a["kind"] for a in insider["actors"]] == ["insider"]


def test_event_keys_point_at_records_in_the_files(run: tuple[Path, SimulationSummary], labels: dict) -> None:
    out = run[0]
    for c in labels["campaigns"]:
        assert c["counts"]["events"] == sum(len(v) for v in c["event_keys"].values())
        for rel, keys in c["event_keys"].items():
            text = (out / rel).read_text(encoding="utf-8")
            assert all(k in text for k in keys[:50]), (c["name"], rel)


def test_snapshot_shows_what_the_campaigns_left_behind(run: tuple[Path, SimulationSummary], labels: dict) -> None:
    snap = snapshot(run[0])
    assert len(snap["users"]) == run[1].users + 3
    assert {"users", "profiles", "permission_sets", "permission_set_assignments", "connected_apps",
            "oauth_tokens", "okta"} <= set(snap)
    vishing = next(c for c in labels["campaigns"] if c["name"] == "vishing")
    app = vishing["attacker"]["apps"][0]
    installed = [a for a in snap["connected_apps"] if a["Id"] == app["id"]]
    assert installed and installed[0]["Name"] == app["name"] and not installed[0]["OptionsAllowAdminApprovedUsersOnly"]
    victim = vishing["actors"][0]["user_id"]
    assert any(t["UserId"] == victim and t["AppName"] == app["name"] for t in snap["oauth_tokens"])
