"""One watcher per spool and per state DB.

A watcher's crash safety rests on owning its work queue (the spool) and its progress (the state
DB): two watchers on one spool would both take its inputs, and on one state DB would record each
other's batches. Each resource gets a lock file held with ``flock`` for the watcher's life; the
kernel drops it when the process dies, kill -9 included, so a restart never finds a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from crmguard.errors import ConfigError


class Ownership:
    """Exclusive hold of the lock files ``paths`` (created as needed), taken at construction and
    released by :meth:`release`. Raises :class:`ConfigError` naming the resource and the pid of
    the process that holds it when another one does."""

    def __init__(self, paths: list[tuple[Path, str]]) -> None:
        self._held: list[int] = []
        try:
            for path, what in paths:
                self._take(Path(path), what)
        except BaseException:
            self.release()
            raise

    def _take(self, path: Path, what: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(f"another crmguard watch (pid {holder}) is using this {what}: stop it first, "
                              "or give this one its own --home / --state", file=str(path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._held.append(fd)

    def release(self) -> None:
        """Release every lock held (the lock files stay: their content is only informative)."""
        while self._held:
            fd = self._held.pop()
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
