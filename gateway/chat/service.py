"""One generation from routing to ledger event: plan, execute, price, record, shape.

Framework-free: the controller hands it a decoded request and sends back what it returns.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio

from gateway.chat.charges import charge, stream_usage
from gateway.chat.recorder import Generation, Recorder, Spool, served_by
from gateway.chat.relay import (
    SSE_DONE,
    error_chunk,
    first_finish_reason,
    normalize_finish_reason,
    sse,
    stamp,
    upstream_id_of,
    usage_body,
)
from gateway.chat.request import ChatRequest
from gateway.errors import GenerationError
from gateway.json_encoding import encode
from gateway.keys.caller import Caller
from gateway.keys.limiter import Hold, Limiter
from gateway.keys.worst_case import worst_case_of
from gateway.ledger.events import GenerationEvent, LedgerSink
from providers.errors import UpstreamError
from providers.price_version import price_version
from providers.pricing import cost_of
from routing.affinity import AffinityMemory
from routing.executor import Executor, GenerationFailed, OpenedStream
from routing.planner import Plan, Planner

log = logging.getLogger("gateway.chat")


@dataclass(slots=True)
class Answer:
    body: bytes
    headers: dict[str, str]


@dataclass(slots=True)
class StreamAnswer:
    chunks: AsyncIterator[bytes]
    headers: dict[str, str]


class ChatService:
    def __init__(
        self,
        planner: Planner,
        executor: Executor,
        ledger: LedgerSink,
        limiter: Limiter | None = None,
        spool: Spool | None = None,
        affinity: AffinityMemory | None = None,
    ) -> None:
        self._planner = planner
        self._affinity = affinity  # only when shared: see `_begin`
        self._executor = executor
        self._limiter = limiter
        self._recorder = Recorder(ledger, limiter, spool)
        self._spool = spool

    async def _admit(self, caller: Caller, plan: Plan) -> Hold:
        """The key's rate limits and a hold of the request's worst-case cost (429 / 402)."""
        if self._limiter is None or not caller.key.limited:
            return Hold(caller.key, "", 0)
        return await self._limiter.admit(caller.key, worst_case_of(plan))

    def _event(
        self,
        gen_id: str,
        request: ChatRequest,
        plan: Plan,
        caller: Caller,
        streamed: bool,
        created_at: datetime,
    ) -> GenerationEvent:
        # Created when the key admitted it: the reports' period and the key's counters agree.
        return GenerationEvent(
            id=gen_id,
            created_at=created_at,
            requested_model=request.requested_model,
            model=request.route.model,
            mode=plan.mode,
            streamed=streamed,
            api_key_id=caller.api_key_id,
            app_referer=caller.app_referer,
            app_title=caller.app_title,
            explanation=dict(plan.explanation) if plan.explanation else None,
            session_id=request.session_id,
            external_user=request.external_user,
        )

    @staticmethod
    def _headers(gen_id: str, plan: Plan, attempts: int) -> dict[str, str]:
        return {
            "X-Generation-Id": gen_id,
            "X-Route-Mode": plan.mode,
            "X-Route-Attempts": str(attempts),
        }

    async def _begin(self, request: ChatRequest, caller: Caller, streamed: bool) -> Generation:
        """Plan and admit the key: the generation whose ending is recorded from here on.
        Refused with 503 before any upstream is called when its ledger event would have
        nowhere to go (the spool is full or unwritable)."""
        if self._spool is not None:
            self._spool.check_accepting()
        route = request.route
        if self._affinity is not None and route.continued and route.affinity_key is not None:
            # A later turn this replica may never have seen: one Redis read, only when the
            # conversation is not in memory (the planner itself reads memory only).
            await self._affinity.recall_shared(route.affinity_key, time.time())
        plan = self._planner.plan(route)
        hold = await self._admit(caller, plan)
        event = self._event(request.generation_id, request, plan, caller, streamed, hold.at)
        return self._recorder.open(event, hold, plan, request.upstream_body.get("messages"))

    async def _fail(self, generation: Generation, failed: GenerationFailed) -> GenerationError:
        """Record the failed generation; the error its client gets (routing's failure wrapped
        with the headers that name the generation)."""
        event = generation.event
        event.status = "error"
        event.http_status = failed.last.client_status
        event.error_message = failed.last.message
        await generation.record()
        headers = self._headers(event.id, generation.plan, len(failed.attempts))
        return GenerationError(failed, headers)

    async def complete(self, request: ChatRequest, caller: Caller) -> Answer:
        generation = await self._begin(request, caller, False)
        event, plan, hold = generation.event, generation.plan, generation.hold
        async with generation:  # leaving without `record()` records it cancelled
            try:
                served = await self._executor.complete(
                    plan, request.upstream_body, generation.attempts
                )
            except GenerationFailed as failed:
                raise await self._fail(generation, failed) from failed
            gen_id = event.id
            completion, endpoint = served.completion, served.endpoint
            cost = cost_of(completion.usage, endpoint.price)
            payload = completion.body
            event.upstream_id = upstream_id_of(payload)
            stamp(payload, gen_id, endpoint.model, endpoint.provider)  # the model that served
            payload["usage"] = usage_body(completion.usage, cost)
            native = first_finish_reason(payload.get("choices"))
            event.provider, event.endpoint_id = endpoint.provider, endpoint.id
            event.model = endpoint.model
            event.price_version = price_version(endpoint)
            event.usage, event.cost = completion.usage, cost
            event.native_finish_reason = None if native is None else str(native)
            event.finish_reason = normalize_finish_reason(native)
            event.ttft_s = completion.ttft_s
            event.latency_s = time.monotonic() - generation.started
            event.generation_s = completion.generation_s or completion.latency_s
            if request.route.explain:
                payload["route"] = self._explain(plan, served.attempts, served.skipped)
            await generation.record()
        headers = {**self._headers(gen_id, plan, len(served.attempts)), **hold.headers}
        return Answer(encode(payload), headers)

    async def stream(self, request: ChatRequest, caller: Caller) -> StreamAnswer:
        """Opens the stream (falling back while nothing was sent), then relays it."""
        generation = await self._begin(request, caller, True)
        try:
            opened = await self._executor.open_stream(
                generation.plan, request.upstream_body, generation.attempts
            )
        except GenerationFailed as failed:
            raise await self._fail(generation, failed) from failed
        except BaseException:
            await generation.close()  # cancelled (client or server gone) or a bug
            raise
        event, plan = generation.event, generation.plan
        headers = {
            **self._headers(event.id, plan, len(opened.attempts) + 1),
            **generation.hold.headers,
        }
        relay = self._relay(opened, request, generation)
        abandon = functools.partial(self._abandon, opened, request, generation)
        return StreamAnswer(_Relay(relay, generation, abandon), headers)

    async def _abandon(
        self, opened: OpenedStream, request: ChatRequest, generation: Generation
    ) -> None:
        """A stream closed before its relay ever ran (the client left before the first byte):
        what the relay's own ending would have recorded."""
        with anyio.CancelScope(shield=True):
            await opened.aclose()
            served_by(generation.event, opened.endpoint)
            self._close_event(generation.event, opened, request, generation.started, failed=False)
            await generation.close()

    async def _relay(
        self, opened: OpenedStream, request: ChatRequest, generation: Generation
    ) -> AsyncGenerator[bytes, None]:
        """Relay the chunks as they come. A chunk with usage and no output is held until the
        next one arrives or the upstream ends, so the generation is recorded from its final
        usage before the last chunk goes out; every other ending (upstream error, client gone)
        is recorded by what was relayed."""
        generation.relaying = True  # from here on this generator's `finally` records the end
        event, plan = generation.event, generation.plan
        endpoint, gen_id = opened.endpoint, event.id
        model = endpoint.model  # the model that served: a `models` fallback may differ
        served_by(event, endpoint)
        event.ttft_s = time.monotonic() - generation.started
        held: dict[str, Any] | None = None  # usage without output: maybe the final chunk
        try:
            async for chunk in opened:
                data = chunk.data
                if event.upstream_id is None:
                    event.upstream_id = upstream_id_of(data)
                stamp(data, gen_id, model, endpoint.provider)
                if chunk.usage is not None and not opened.carried_output:
                    if held is not None:
                        yield sse(held)
                    held = data
                    continue
                if held is not None:
                    yield sse(held)
                    held = None
                yield sse(data)
            final = held or {"object": "chat.completion.chunk", "choices": []}
            stamp(final, gen_id, model, endpoint.provider)
            self._close_event(event, opened, request, generation.started, failed=False)
            final["usage"] = usage_body(event.usage, event.cost)
            if request.route.explain:
                final["route"] = self._explain(plan, opened.attempts, opened.skipped)
            await generation.record()
            yield sse(final)
            yield SSE_DONE
        except UpstreamError as exc:
            self._close_event(event, opened, request, generation.started, failed=True)
            event.status, event.http_status = "error", 502
            event.error_message = exc.message
            event.finish_reason = event.native_finish_reason = "error"
            await generation.record()
            yield error_chunk(gen_id, model, endpoint.provider, 502, exc.message)
            yield SSE_DONE
        finally:
            if not generation.recorded:
                # The client went away: stop the upstream (its attempt ends cancelled) and
                # charge what was relayed. Shielded: the server cancelled this task's scope.
                with anyio.CancelScope(shield=True):
                    await opened.aclose()
                    self._close_event(event, opened, request, generation.started, failed=False)
                    await generation.close()

    def _close_event(
        self,
        event: GenerationEvent,
        opened: OpenedStream,
        request: ChatRequest,
        started: float,
        *,
        failed: bool,
    ) -> None:
        now = time.monotonic()
        usage = stream_usage(opened, request.upstream_body.get("messages"))
        event.usage, event.cost = charge(usage, opened.endpoint.price, failed=failed)
        native = opened.native_finish_reason
        event.native_finish_reason = None if native is None else str(native)
        event.finish_reason = normalize_finish_reason(native)
        event.latency_s = now - started
        event.generation_s = now - opened.started - opened.ttft_s

    @staticmethod
    def _explain(plan: Plan, attempts: list[Any], skipped: Sequence[Any] = ()) -> dict[str, Any]:
        return {
            "mode": plan.mode,
            **plan.explanation,
            "rejected": plan.rejected,
            "skipped": {s.endpoint_id: s.reason for s in skipped},
            "attempts": [
                {
                    "endpoint": a.endpoint_id,
                    "provider": a.provider,
                    "outcome": a.outcome,
                    "status": a.status,
                    "error_class": a.error_class,
                    "latency_ms": round(a.latency_s * 1000, 3),
                }
                for a in attempts
            ],
        }


class _Relay:
    """A relay that records its generation even when it is closed before it ever ran
    (closing a generator that never started skips its `finally`). Iterating hands out the
    generator itself, so chunks pay nothing for this."""

    __slots__ = ("_abandon", "_chunks", "_generation")

    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        generation: Generation,
        abandon: Callable[[], Awaitable[None]],
    ) -> None:
        self._chunks = chunks
        self._generation = generation
        self._abandon = abandon

    def __aiter__(self) -> AsyncGenerator[bytes, None]:
        return self._chunks

    async def __anext__(self) -> bytes:
        return await anext(self._chunks)

    async def aclose(self) -> None:
        await self._chunks.aclose()
        if not self._generation.relaying and not self._generation.recorded:
            await self._abandon()
