"""Counters the watcher keeps while it runs, rendered as a status line and as Prometheus text."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Metrics:
    """Live figures of one watcher process (thread-safe: the HTTP thread reads, the loop writes)."""

    started: float = field(default_factory=time.time)
    events: int = 0
    duplicates: int = 0
    late: int = 0
    batches: int = 0
    batch_errors: int = 0
    alerts_created: int = 0
    alerts_updated: int = 0
    alerts_open: int = 0
    requests: dict[int, int] = field(default_factory=dict)
    bytes_accepted: int = 0
    records_accepted: int = 0
    last_batch_s: float = 0.0
    last_batch_at: float = 0.0
    heartbeat: float = field(default_factory=time.time)
    lag_s: float = 0.0
    watermark: str | None = None
    spool_files: int = 0
    spool_bytes: int = 0
    delivered: int = 0
    delivery_failed: int = 0
    last_error: str | None = None
    _window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=600))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, status: int, records: int = 0, size: int = 0) -> None:
        """Count one HTTP request with its response ``status`` (and what it brought when accepted)."""
        with self._lock:
            self.requests[status] = self.requests.get(status, 0) + 1
            self.records_accepted += records
            self.bytes_accepted += size

    def batch(self, events: int, duplicates: int, late: int, created: int, updated: int, seconds: float,
              lag_s: float) -> None:
        """Count one finished batch."""
        now = time.time()
        with self._lock:
            self.events += events
            self.duplicates += duplicates
            self.late += late
            self.batches += 1
            self.alerts_created += created
            self.alerts_updated += updated
            self.last_batch_s = seconds
            self.last_batch_at = now
            self.lag_s = lag_s
            self._window.append((now, self.events))

    def rate(self, span_s: float = 10.0) -> float:
        """Events ingested per second over the last ``span_s`` seconds."""
        now = time.time()
        with self._lock:
            points = [p for p in self._window if p[0] >= now - span_s]
            if not points:
                return 0.0
            first_t, first_n = points[0]
            # Count from the last point before the span so a single batch still gives a rate.
            before = [p for p in self._window if p[0] < now - span_s]
            if before:
                first_t, first_n = before[-1]
            elif len(points) == 1:
                first_t, first_n = self.started, 0
            return (self.events - first_n) / max(now - first_t, 1e-3)

    def status_line(self) -> str:
        """One line for people: rate, lag, watermark, alerts, spool depth, batches."""
        return (f"watch: {self.rate():,.0f} events/s, lag {self.lag_s:.2f} s, watermark {self.watermark or '-'}, "
                f"{self.events:,} events ({self.late:,} late, {self.duplicates:,} duplicate), "
                f"alerts {self.alerts_open:,} open (+{self.alerts_created:,} new), "
                f"spool {self.spool_files:,} files / {self.spool_bytes / 1e6:.1f} MB, {self.batches:,} batches"
                + (f", last error: {self.last_error}" if self.last_error else ""))

    def prometheus(self) -> str:
        """The figures in the Prometheus text exposition format."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, value: float, labels: str = "") -> None:
            if not any(line.startswith(f"# HELP {name} ") for line in lines):
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
            lines.append(f"{name}{labels} {value:g}" if isinstance(value, float) else f"{name}{labels} {value}")

        with self._lock:
            metric("crmguard_watch_events_ingested_total", "counter", "Events stored in the lake by the watcher.",
                   self.events)
            metric("crmguard_watch_events_duplicate_total", "counter", "Events received again and skipped.",
                   self.duplicates)
            metric("crmguard_watch_events_late_total", "counter", "Events older than the watermark when stored.",
                   self.late)
            metric("crmguard_watch_alerts_total", "counter", "Alerts created by the watcher.", self.alerts_created)
            metric("crmguard_watch_alerts_updated_total", "counter", "Alert updates (grown in place).",
                   self.alerts_updated)
            metric("crmguard_watch_alerts_open", "gauge", "Alerts in the store (not superseded).", self.alerts_open)
            metric("crmguard_watch_batches_total", "counter", "Micro-batches completed.", self.batches)
            metric("crmguard_watch_batch_errors_total", "counter", "Micro-batches that failed (retried).",
                   self.batch_errors)
            metric("crmguard_watch_last_batch_seconds", "gauge", "Duration of the last batch.",
                   float(self.last_batch_s))
            metric("crmguard_watch_lag_seconds", "gauge",
                   "Age of the oldest input when the last batch finished (arrival to evaluated).", float(self.lag_s))
            metric("crmguard_watch_spool_files", "gauge", "Inputs waiting in the spool.", self.spool_files)
            metric("crmguard_watch_spool_bytes", "gauge", "Bytes waiting in the spool.", self.spool_bytes)
            metric("crmguard_watch_records_accepted_total", "counter", "Records accepted over HTTP.",
                   self.records_accepted)
            metric("crmguard_watch_alerts_delivered_total", "counter", "Alert deliveries made.", self.delivered)
            for status, n in sorted(self.requests.items()):
                metric("crmguard_watch_http_requests_total", "counter", "HTTP ingest requests by status.", n,
                       f'{{status="{status}"}}')
        return "\n".join(lines) + "\n"
