"""The in-process ledger queue of the embedded default: events wait here for the writer.

Not durable: what is queued when the process dies is lost (production uses the Redis stream).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.ledger.codec import encode_event
from gateway.ledger.events import GenerationEvent
from gateway.ledger.source import Entry
from gateway.ledger.stream import LedgerUnavailable

if TYPE_CHECKING:
    from gateway.unit_of_work import UnitOfWork

log = logging.getLogger("gateway.ledger.queue")
MAX_QUEUED_EVENTS = 100_000  # events waiting for the database in one process


class InProcessLedger:
    """Both the sink (request path) and the source (writer). Emit never waits; past
    `max_events` (the database has been refusing or lagging for a long time) it refuses, and
    the answer is withheld (503) rather than left unbilled or memory grown without bound."""

    kind = "in-process"
    durable = False
    claim_idle_s: float | None = None  # no other writer reads this queue

    def __init__(self, max_events: int = MAX_QUEUED_EVENTS) -> None:
        self._max_events = max_events
        self._waiting: deque[Entry] = deque()
        self._in_flight: dict[str, Entry] = {}
        self._arrived = asyncio.Event()
        self._next_id = 0

    async def emit(self, event: GenerationEvent) -> None:
        self._put(event)

    def emit_into(self, work: UnitOfWork, event: GenerationEvent) -> None:
        self._put(event)  # nothing here waits: queued now, `work` untouched

    def _put(self, event: GenerationEvent) -> None:
        if len(self._waiting) + len(self._in_flight) >= self._max_events:
            log.error("ledger queue full; event refused", extra={"generation_id": event.id})
            raise LedgerUnavailable("the ledger is unavailable; try again")
        self._next_id += 1
        self._waiting.append(Entry(str(self._next_id), event))
        self._arrived.set()

    async def read(self, count: int, wait_s: float) -> list[Entry]:
        if not self._waiting and wait_s > 0:
            self._arrived.clear()
            try:
                async with asyncio.timeout(wait_s):
                    await self._arrived.wait()
            except TimeoutError:
                return []
        batch: list[Entry] = []
        while self._waiting and len(batch) < count:
            entry = self._waiting.popleft()
            self._in_flight[entry.id] = entry
            batch.append(entry)
        return batch

    async def ack(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            self._in_flight.pop(entry.id, None)

    async def recover(self) -> None:
        stuck = list(self._in_flight.values())
        self._in_flight.clear()
        self._waiting.extendleft(reversed(stuck))  # first again, in their order
        if stuck:
            self._arrived.set()

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        # No second store in process: the log line is the record a human can replay.
        log.error("ledger event set aside (%s): %s", reason, encode_event(entry.event).decode())
        await self.ack([entry])

    async def depth(self) -> int:
        return len(self._waiting) + len(self._in_flight)

    async def oldest_age_s(self) -> float | None:
        oldest = [e.event.created_at for e in self._in_flight.values()]
        if self._waiting:
            oldest.append(self._waiting[0].event.created_at)
        if not oldest:
            return None
        return max((datetime.now(UTC) - min(oldest)).total_seconds(), 0.0)

    async def tidy(self) -> None:
        return None
