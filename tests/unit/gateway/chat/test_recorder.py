"""The generation recorder with fakes: exactly one ledger event and one settlement per
generation however it ends; a refused event goes to the spool; what partial answers cost."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from gateway.chat.charges import charge, stream_usage
from gateway.chat.recorder import Recorder
from gateway.keys.limiter import Hold
from gateway.keys.record import ANONYMOUS
from gateway.ledger.events import GenerationEvent
from gateway.ledger.stream import LedgerUnavailable
from gateway.resp import Batch
from providers.catalog import Endpoint, Price
from providers.provider import Chunk
from providers.usage import Usage
from routing.attempts import Attempt
from routing.planner import Plan
from routing.preferences import RouteRequest
from routing.stream import OpenedStream

ENDPOINT = Endpoint(
    model="m",
    provider="p",
    base_url="http://x",
    upstream_model="m",
    context_length=1000,
    price=Price(prompt=Decimal(1), completion=Decimal(2)),
)
PLAN = Plan(RouteRequest("m", "balanced"), "balanced", (ENDPOINT,))
MESSAGES = [{"role": "user", "content": "hello there"}]


class Sink:
    def __init__(self, refuse: bool = False) -> None:
        self.events: list[GenerationEvent] = []
        self.refuse = refuse

    async def emit(self, event: GenerationEvent) -> None:
        self.events.append(event)

    def emit_into(self, batch: Batch, event: GenerationEvent) -> None:
        batch.add(Redis(), ("XADD",), lambda reply: self._queued(event, reply))  # type: ignore[arg-type]

    def _queued(self, event: GenerationEvent, reply: Any) -> None:
        if self.refuse:
            raise LedgerUnavailable("down")
        self.events.append(event)


class Redis:
    """Answers every pipelined command with OK."""

    async def pipeline(self, commands: list[Any]) -> list[Any]:
        return [b"OK"] * len(commands)


class Limiter:
    def __init__(self) -> None:
        self.settled: list[tuple[Decimal, int]] = []

    def settle_into(self, batch: Batch, hold: Hold, cost: Decimal, tokens: int) -> None:
        self.settled.append((cost, tokens))


class FakeSpool:
    def __init__(self) -> None:
        self.events: list[GenerationEvent] = []

    async def append(self, event: GenerationEvent, settlement: Any = None) -> None:
        self.events.append(event)

    def check_accepting(self) -> None:
        return None


def generation(sink: Sink, limiter: Limiter, spool: Any = None):
    recorder = Recorder(sink, limiter, spool)  # type: ignore[arg-type]
    event = GenerationEvent("gen-1", datetime.now(UTC), "m", "m", "balanced", True)
    return recorder.open(event, Hold(ANONYMOUS, "", 0), PLAN, MESSAGES)


async def test_record_then_close_is_one_event_and_one_settlement() -> None:
    sink, limiter = Sink(), Limiter()
    gen = generation(sink, limiter)
    await gen.record()
    await gen.record()
    await gen.close()
    assert len(sink.events) == 1 and len(limiter.settled) == 1
    assert sink.events[0].status == "ok"


async def test_leaving_without_a_record_is_a_cancelled_generation() -> None:
    sink, limiter = Sink(), Limiter()
    with pytest.raises(RuntimeError):
        async with generation(sink, limiter):
            raise RuntimeError("a bug, or a cancellation")
    assert [e.status for e in sink.events] == ["cancelled"] and sink.events[0].cancelled
    assert limiter.settled == [(Decimal(0), 0)]  # nothing ran upstream: nothing charged


async def test_cancelled_while_an_upstream_worked_pays_the_prompt() -> None:
    sink, limiter = Sink(), Limiter()
    gen = generation(sink, limiter)
    gen.attempts.append(Attempt(ENDPOINT.id, "p", datetime.now(UTC), outcome="cancelled"))
    await gen.close()
    event = sink.events[0]
    assert event.status == "cancelled" and event.usage.prompt_tokens > 0
    assert limiter.settled == [(event.cost.total, event.usage.total_tokens)]
    assert event.cost.total == Decimal(event.usage.prompt_tokens) / 1_000_000


async def test_an_event_the_queue_refuses_goes_to_the_spool() -> None:
    sink, limiter, spool = Sink(refuse=True), Limiter(), FakeSpool()
    gen = generation(sink, limiter, spool)
    await gen.record()
    assert [e.id for e in spool.events] == ["gen-1"] and not sink.events


async def test_without_a_spool_a_refused_event_is_an_error() -> None:
    gen = generation(Sink(refuse=True), Limiter())
    with pytest.raises(LedgerUnavailable):
        await gen.record()


async def _stream(chunks: list[Chunk]) -> OpenedStream:
    async def rest():
        for chunk in chunks[1:]:
            yield chunk

    ended: list[str] = []
    return OpenedStream(ENDPOINT, chunks[0], rest(), [], 0.0, 0.0, lambda s: ended.append("x"))


def delta(text: str, usage: Usage | None = None) -> Chunk:
    return Chunk({"choices": [{"index": 0, "delta": {"content": text}}]}, usage)


async def test_the_largest_running_usage_is_billed() -> None:
    chunks = [delta("a", Usage(10, 1)), delta("b", Usage(10, 2)), delta("c", Usage(10, 3))]
    opened = await _stream(chunks)
    assert [c async for c in opened] == chunks
    assert stream_usage(opened, MESSAGES) == Usage(10, 3)


async def test_without_usage_the_relayed_text_is_counted() -> None:
    opened = await _stream([delta("Hello"), delta(" world"), delta("!")])
    async for _ in opened:
        pass
    usage = stream_usage(opened, MESSAGES)
    assert usage.completion_tokens == 3 and usage.prompt_tokens > 0


def test_an_error_without_output_costs_nothing_and_with_output_costs_it() -> None:
    assert charge(Usage(50, 0), ENDPOINT.price, failed=True)[1].total == 0
    assert charge(Usage(50, 0), ENDPOINT.price, failed=False)[1].total > 0
    _, cost = charge(Usage(50, 5), ENDPOINT.price, failed=True)
    assert cost.total == Decimal("0.00006")
