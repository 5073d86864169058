"""Compaction of the lake files the watcher has evaluated: a stream writes one small file per
partition per batch (86,400 a day at one batch a second), which would make every listing, every
duplicate check and every later scan slower as the day goes on.

Files are merged by size tier, as a log-structured store does: a file's tier is how many times
``fanout`` its size is above ``base_bytes``; once a partition holds ``fanout`` evaluated files of
one tier, they become one file of the next tier. Each byte is thus rewritten about once per tier
(a handful of times), and a partition holds at most ``fanout - 1`` files per tier. Files of
``max_bytes`` or more are left alone.

A merge is written by a background thread at the lowest CPU priority, with its own DuckDB
connection (one thread, insertion order kept: no sort); the watcher's loop switches it into the lake
between batches (see :meth:`crmguard.lake.Lake.switch`), so the files it evaluates and the cache it
keeps change at one point of its own thread.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from crmguard.lake import Lake, Merge
from crmguard.sources.sql import connect


@dataclass(frozen=True)
class CompactionPolicy:
    """When files are merged (see the module doc)."""

    fanout: int = 8
    """Files of one tier merged together; 0 never merges."""
    base_bytes: int = 16 << 10
    max_bytes: int = 256 << 20
    grace_s: float = 600.0
    """How long replaced files stay on disk (hidden) for readers that listed them before a switch."""


def tier(size: int, policy: CompactionPolicy) -> int | None:
    """The size tier of a ``size``-byte file under ``policy`` (0 below ``base_bytes``), or None for
    a file too large to merge."""
    if size >= policy.max_bytes:
        return None
    if size < policy.base_bytes:
        return 0
    return 1 + int(math.log(size / policy.base_bytes, policy.fanout))


def plan(files: Iterable[str], policy: CompactionPolicy) -> list[str] | None:
    """The files of the next merge among ``files`` (event files of a lake): the ``fanout`` or more
    files of one partition and one tier, lowest tier first (then the partition with most files), or
    None when no partition has that many."""
    if policy.fanout < 2:
        return None
    groups: dict[tuple[str, int], list[str]] = {}
    for f in files:
        try:
            t = tier(Path(f).stat().st_size, policy)
        except FileNotFoundError:
            continue
        if t is not None:
            groups.setdefault((str(Path(f).parent), t), []).append(f)
    ready = [(t, -len(fs), folder, fs) for (folder, t), fs in groups.items() if len(fs) >= policy.fanout]
    return sorted(min(ready)[3]) if ready else None


def _lowest_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux schedules threads one by one): a
    merge then runs on what the batches leave of the cores instead of delaying them."""
    # Not Linux, or not allowed: the merge just competes.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class Compactor:
    """Writes one merge at a time in a background thread (see the module doc)."""

    def __init__(self, lake: Lake, policy: CompactionPolicy) -> None:
        self.lake = lake
        self.policy = policy
        self._thread: threading.Thread | None = None
        self._result: Merge | BaseException | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        """The merges' connection (opening one takes about 80 ms), used by one merge at a time."""
        self.busy: frozenset[str] = frozenset()
        """The files of the merge being written."""

    @property
    def idle(self) -> bool:
        """True when no merge is being written or waits to be taken."""
        return self._thread is None

    def start(self, files: list[str]) -> None:
        """Begin merging ``files`` (one partition) in the background."""
        assert self._thread is None, "one merge at a time"
        self.busy = frozenset(files)
        self._result = None
        self._thread = threading.Thread(target=self._merge, args=(files,), name="compact", daemon=True)
        self._thread.start()

    def _merge(self, files: list[str]) -> None:
        _lowest_priority()
        try:
            if self._con is None:
                # One core at most: the watcher's batches have the other cores. A merge streams
                # file after file (no sort), so a small memory cap holds.
                self._con = connect(threads=1, memory_limit="512MB", temp_dir=str(self.lake.root / "_tmp"))
            self._result = self.lake.merge(files, self._con)
        except BaseException as exc:  # handed to the loop thread, which logs it
            self._result = exc

    def close(self) -> None:
        """Wait for the merge being written (dropping it) and close the connection."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._con is not None:
            self._con.close()
            self._con = None

    def take(self, wait: bool = False) -> Merge | None:
        """The merge written, once its thread has ended (with ``wait``, after waiting for it), or
        None while it runs or when none was started. Raises what the merge raised."""
        if self._thread is None or (self._thread.is_alive() and not wait):
            return None
        self._thread.join()
        result, self._thread, self._result, self.busy = self._result, None, None, frozenset()
        if isinstance(result, BaseException):
            raise result
        return result
