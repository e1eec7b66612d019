"""The in-process ledger queue of the embedded default: events wait here for the writer."""

from __future__ import annotations

import asyncio

from gateway.ledger.events import GenerationEvent


class InProcessLedger:
    """Unbounded so the request path never waits; the writer drains it in batches."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[GenerationEvent] = asyncio.Queue()

    async def emit(self, event: GenerationEvent) -> None:
        self.queue.put_nowait(event)
