"""Fixtures for the parser tests: the public sample logs in ``../shared/data``, read in place.

The samples are never copied into the project. Set ``CRMGUARD_SHARED_DATA`` to their folder
when the checkout is not next to ``shared/``; without them these tests are skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from crmguard.sources import read

Row = dict[str, Any]

MISSING = "public samples not found: ../shared/data is absent (set CRMGUARD_SHARED_DATA)"


def _shared_data_dir() -> Path:
    env = os.environ.get("CRMGUARD_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of public sample logs (``shared/data``); skips the test when it is absent."""
    folder = _shared_data_dir()
    if not (folder / "salesforce").is_dir() or not (folder / "okta").is_dir():
        pytest.skip(MISSING)
    return folder


@pytest.fixture(scope="session")
def events(shared_data: Path) -> Callable[[str | Path], list[Row]]:
    """``events(path)``: the events ``crmguard.sources.read`` yields for a sample (a path relative
    to ``shared/data``, or any file), as dicts of the event-schema columns. Cached per file."""
    cache: dict[Path, list[Row]] = {}

    def load(path: str | Path) -> list[Row]:
        full = Path(path) if Path(path).is_absolute() else shared_data / path
        if full not in cache:
            assert full.is_file(), f"sample missing: {full}"
            cache[full] = [row for batch in read(full) for row in batch.to_pylist()]
        return cache[full]

    return load


def pick(rows: Iterable[Row], **where: Any) -> list[Row]:
    """The rows whose columns equal ``where``; ``raw_has=text`` matches a substring of ``raw``."""
    raw_has = where.pop("raw_has", None)
    return [
        r for r in rows
        if all(r[k] == v for k, v in where.items()) and (raw_has is None or raw_has in r["raw"])
    ]


@pytest.fixture(scope="session")
def one() -> Callable[..., Row]:
    """``one(rows, column=value, ..., raw_has=text)``: the single row matching, else the test fails."""

    def find(rows: Iterable[Row], **where: Any) -> Row:
        found = pick(rows, **where)
        assert len(found) == 1, f"expected one row matching {where}, found {len(found)}"
        return found[0]

    return find


@pytest.fixture(scope="session")
def sample_line(shared_data: Path) -> Callable[[str, int], dict[str, Any]]:
    """``sample_line(path, n)``: line ``n`` (1-based) of an NDJSON sample, parsed; for deriving a
    variant of a real record (written to a temp file, never into the project)."""

    def line(path: str, n: int) -> dict[str, Any]:
        with open(shared_data / path, encoding="utf-8") as fh:
            for i, text in enumerate(fh, 1):
                if i == n:
                    return json.loads(text)
        raise AssertionError(f"{path} has no line {n}")

    return line


@pytest.fixture
def write_ndjson(tmp_path: Path) -> Callable[[Iterable[dict[str, Any]]], Path]:
    """``write_ndjson(records)``: a temp NDJSON file holding ``records``."""

    def write(records: Iterable[dict[str, Any]]) -> Path:
        path = tmp_path / f"derived-{len(list(tmp_path.iterdir()))}.ndjson"
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        return path

    return write
