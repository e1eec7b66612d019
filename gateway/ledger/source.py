"""Where the ledger writer reads generation events from: the `LedgerSource` protocol.

Two implementations: the Redis stream (durable, shared by replicas) and the in-process queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.ledger.events import GenerationEvent


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued event and the id its source acknowledges it by."""

    id: str
    event: GenerationEvent


class LedgerSource(Protocol):
    kind: str  # "redis-stream" | "in-process"
    durable: bool  # survives this process dying (entries not acked are delivered again)
    # Entries read and not acked for this long may be claimed by another writer; None: no other
    # writer can (a writer then retries what it read until it commits).
    claim_idle_s: float | None

    async def read(self, count: int, wait_s: float) -> list[Entry]:
        """Up to `count` entries not yet written; waits up to `wait_s` for the first one."""

    async def ack(self, entries: Sequence[Entry]) -> None:
        """The entries are committed to the database: forget them."""

    async def recover(self) -> None:
        """A writer step failed unexpectedly: deliver what it had read again."""

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        """Set aside an entry that can never be written, keeping it for a human, and ack it."""

    async def depth(self) -> int:
        """Entries waiting or in flight."""

    async def oldest_age_s(self) -> float | None:
        """Age of the oldest entry not yet acked; None when there is none."""

    async def tidy(self) -> None:
        """Periodic housekeeping (forget departed consumers)."""
