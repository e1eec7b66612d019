"""What the ledger reports about itself: writer counters, queue depth and lag.

Shown as JSON (`GET /api/v1/ledger/status`) and Prometheus text (`GET /metrics`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

PROMETHEUS_PREFIX = "gateway_ledger_"


@dataclass(slots=True)
class WriterCounters:
    """Counts since this process started."""

    written_total: int = 0  # generations newly inserted
    replayed_total: int = 0  # events already in the ledger (redelivered after a crash)
    batches_total: int = 0
    write_errors_total: int = 0  # failed attempts to commit a batch (each is retried)
    dead_letters_total: int = 0  # events set aside as unwritable
    last_commit_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LedgerStatus:
    source: str
    durable: bool
    writer_running: bool
    queue_depth: int | None  # None when the queue could not be asked
    lag_seconds: float  # age of the oldest event not yet in the database; 0 when none
    counters: WriterCounters = field(default_factory=WriterCounters)
    writer_here: bool = True  # False: another process (`gateway ledger-writer`) writes
    dead_letters: int | None = None  # events kept in `ledger_dead_letters`; None: unknown
    spool_depth: int | None = None  # events this process spooled, not yet replayed (Redis only)

    def as_dict(self) -> dict[str, Any]:
        counters = asdict(self.counters)
        last = self.counters.last_commit_at
        counters["last_commit_at"] = None if last is None else last.isoformat()
        return {
            "source": self.source,
            "durable": self.durable,
            "writer": "this process" if self.writer_here else "another process",
            "writer_running": self.writer_running,
            "queue_depth": self.queue_depth,
            "lag_seconds": self.lag_seconds,
            "dead_letters": self.dead_letters,
            "spool_depth": self.spool_depth,
            **counters,
        }

    def prometheus(self) -> str:
        c = self.counters
        metrics: list[tuple[str, str, str, float | None]] = [
            ("queue_depth", "gauge", "events waiting or in flight", self.queue_depth),
            ("lag_seconds", "gauge", "age of the oldest unwritten event", self.lag_seconds),
            ("spool_depth", "gauge", "events spooled locally, not yet replayed", self.spool_depth),
            ("written_total", "counter", "generations inserted", c.written_total),
            ("replayed_total", "counter", "events found already stored", c.replayed_total),
            ("batches_total", "counter", "batches committed", c.batches_total),
            ("write_errors_total", "counter", "failed commits, retried", c.write_errors_total),
            ("dead_letters_total", "counter", "events set aside", c.dead_letters_total),
            (
                "dead_letters",
                "gauge",
                "events kept as dead letters (gateway ledger dead-letters list | replay)",
                self.dead_letters,
            ),
            (
                "writer_up",
                "gauge",
                "1 while this process's writer runs (absent when another process writes)",
                int(self.writer_running) if self.writer_here else None,
            ),
        ]
        lines: list[str] = []
        for short, kind, help_text, value in metrics:
            if value is None:
                continue
            name = f"{PROMETHEUS_PREFIX}{short}"
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        return "\n".join(lines) + "\n"
