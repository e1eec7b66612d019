"""One generation's ending: however it ends (served, failed, cancelled, cut off), exactly one
ledger event and one settlement of its key's hold, in one Redis round trip.

Not pricing (`gateway.chat.charges`) and not shaping answers (`gateway.chat.relay`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

import anyio

from gateway.chat.charges import endpoint_of, prompt_charge
from gateway.keys.limiter import Hold, Limiter, Settlement
from gateway.ledger.events import GenerationEvent, LedgerSink
from gateway.ledger.stream import LedgerUnavailable
from gateway.unit_of_work import new_unit_of_work
from providers.catalog import Endpoint
from providers.price_version import price_version
from routing.attempts import Attempt
from routing.planner import Plan

log = logging.getLogger("gateway.chat")


class Spool(Protocol):
    """Where an event goes when the ledger queue can't take it (`gateway.ledger.spool`)."""

    async def append(self, event: GenerationEvent, settlement: Settlement | None) -> None:
        """Keep `event` durably; raises `LedgerUnavailable` when it can't."""
        ...

    def check_accepting(self) -> None:
        """Raises `LedgerUnavailable` (503) while the spool could not take another event."""
        ...


def served_by(event: GenerationEvent, endpoint: Endpoint) -> None:
    """Stamp the endpoint a generation is charged at: provider, endpoint, the model it serves
    (a `models` fallback may differ from the one asked for) and its price version."""
    event.provider, event.endpoint_id, event.model = endpoint.provider, endpoint.id, endpoint.model
    event.price_version = price_version(endpoint)


class Recorder:
    """Ends generations: the ledger event and the settlement go out together (DESIGN.md step
    6); an event the ledger queue refuses goes to the spool, so a served answer still reaches
    the ledger and the client still gets it."""

    def __init__(self, ledger: LedgerSink, limiter: Limiter | None, spool: Spool | None) -> None:
        self._ledger = ledger
        self._limiter = limiter
        self._spool = spool

    def open(self, event: GenerationEvent, hold: Hold, plan: Plan, messages: object) -> Generation:
        return Generation(self, event, hold, plan, messages, time.monotonic())

    async def end(self, event: GenerationEvent, hold: Hold) -> None:
        """Raises `LedgerUnavailable` only if the event was neither queued nor spooled; a
        failed settlement is only logged (the ledger has the cost)."""
        work = new_unit_of_work()
        self._ledger.emit_into(work, event)
        if self._limiter is not None:
            self._limiter.settle_into(work, hold, event.cost.total, event.usage.total_tokens)
        try:
            await work.send()
        except LedgerUnavailable:
            if self._spool is None:
                raise
            settlement = None
            if hold.settle_failed:  # Redis took neither: settle again on replay
                settlement = Settlement.of(hold, event.cost.total, event.usage.total_tokens)
            await self._spool.append(event, settlement)  # raises when it can't either


@dataclass(eq=False)
class Generation:
    """One client request from admission to its ledger event. `record()` ends it once; leaving
    `async with` (or calling `close()`) without it records a cancelled generation, charged for
    what the upstream was already asked to do."""

    recorder: Recorder
    event: GenerationEvent
    hold: Hold
    plan: Plan
    messages: object  # the request's messages, to count the prompt when no usage came back
    started: float  # monotonic
    attempts: list[Attempt] = field(default_factory=list)  # filled by the executor
    recorded: bool = False
    relaying: bool = False  # a stream's relay is running: its own `finally` records the end

    async def record(self) -> None:
        if self.recorded:
            return
        self.recorded = True
        event = self.event
        event.attempts = self.attempts
        if not event.latency_s:
            event.latency_s = time.monotonic() - self.started
        await self.recorder.end(event, self.hold)

    async def close(self) -> None:
        """Record the generation as cancelled unless it was recorded; shielded, as it runs
        while a cancellation unwinds."""
        if self.recorded:
            return
        event = self.event
        if event.status == "ok":
            event.status, event.cancelled = "cancelled", True
        if not event.usage.total_tokens and self._upstream_had_it():
            # Cancelled while an upstream was working on it: the prompt was processed, at that
            # endpoint's price; the event names it (reports group cost by it and its prices).
            endpoint = endpoint_of(self.plan, self.attempts[-1])
            if endpoint is not None and event.endpoint_id is None:
                served_by(event, endpoint)
            event.usage, event.cost = prompt_charge(self.plan, self.attempts[-1], self.messages)
        with anyio.CancelScope(shield=True):
            try:
                await self.record()
            except LedgerUnavailable:
                log.error("cancelled generation not recorded", extra={"generation_id": event.id})

    def _upstream_had_it(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].outcome == "cancelled"

    async def __aenter__(self) -> Generation:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
