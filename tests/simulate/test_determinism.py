"""Same seed, same bytes (whatever the number of worker processes); different seeds, different
campaign parameters; background traffic does not depend on which campaigns run."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from crmguard.simulate import simulate


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_the_same_bytes_serial_or_parallel(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a", users=30, days=2, seed=5, workers=1)
    b = simulate(tmp_path / "b", users=30, days=2, seed=5, workers=2)
    assert a.total_events == b.total_events > 0
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def _fingerprint(labels: dict) -> dict[str, object]:
    out = {}
    for c in labels["campaigns"]:
        out[c["name"]] = (tuple(c["attacker"]["ips"]), tuple(c["attacker"]["user_agents"]),
                          json.dumps(c["attacker"]["apps"]), json.dumps(c["parameters"], sort_keys=True))
    return out


def test_different_seeds_give_different_campaign_parameters(tmp_path: Path, labels: dict) -> None:
    other = simulate(tmp_path / "other", users=30, days=2, seed=12)
    mine = _fingerprint(labels)
    theirs = _fingerprint(json.loads((other.out / "labels.json").read_text()))
    assert set(mine) == set(theirs) == {"vishing", "stolen-token", "insider", "credential-stuffing"}
    for name in mine:
        ips, agents, apps, params = mine[name]
        ips2, agents2, apps2, params2 = theirs[name]
        assert ips != ips2, name
        assert params != params2, name
    assert mine["vishing"][2] != theirs["vishing"][2]  # the look-alike app's name and id
    assert mine["vishing"][3] != theirs["vishing"][3]  # API, chunk size, pauses, objects ...


def _rows_without(path: Path, keys: set[str], family: str) -> list[str]:
    if family == "elf":
        with open(path, newline="") as fh:
            return [",".join(r) for r in csv.reader(fh) if r[2] not in keys]
    if family == "okta":
        return [json.dumps(e) for e in json.loads(path.read_text()) if e["uuid"] not in keys]
    return [line for line in path.read_text().splitlines() if json.loads(line).get("EventIdentifier",
                                                                                 json.loads(line).get("Id")) not in keys]


def test_removing_labelled_records_gives_back_the_attack_free_export(tmp_path: Path) -> None:
    """The labels list every record a campaign wrote, and the rest is byte-for-byte the export
    simulated without campaigns."""
    clean = simulate(tmp_path / "clean", users=25, days=2, seed=3, campaigns=[])
    attacked = simulate(tmp_path / "attacked", users=25, days=2, seed=3)
    labels = json.loads((attacked.out / "labels.json").read_text())
    assert json.loads((clean.out / "labels.json").read_text())["campaigns"] == []
    keys: dict[str, set[str]] = {}
    for c in labels["campaigns"]:
        for path, values in c["event_keys"].items():
            keys.setdefault(path, set()).update(values)
    assert sum(len(v) for v in keys.values()) == sum(c["counts"]["events"] for c in labels["campaigns"])
    assert attacked.total_events == clean.total_events + sum(len(v) for v in keys.values())
    for path in sorted((attacked.out / "salesforce").rglob("*")) + sorted((attacked.out / "okta").rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(attacked.out))
        family = "elf" if "/elf/" in rel else "okta" if rel.startswith("okta") else "json"
        twin = clean.out / rel
        expected = _rows_without(twin, set(), family) if twin.exists() else []
        assert _rows_without(path, keys.get(rel, set()), family) == expected, rel
