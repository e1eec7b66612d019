"""One generation from routing to ledger event: plan, execute, price, record, shape.

Framework-free: the controller hands it a decoded request and sends back what it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, NamedTuple, TypeVar

import anyio

from gateway.chat.relay import (
    SSE_DONE,
    encode,
    error_chunk,
    first_finish_reason,
    normalize_finish_reason,
    sse,
    stamp,
    upstream_id_of,
    usage_body,
)
from gateway.chat.request import ChatRequest
from gateway.keys.limiter import Hold, Limiter
from gateway.keys.record import ANONYMOUS, ApiKey
from gateway.keys.worst_case import worst_case_of
from gateway.ledger.events import GenerationEvent, LedgerSink
from gateway.resp import Batch
from providers.errors import MidStreamError, UpstreamError
from providers.price_version import price_version
from providers.pricing import ZERO, cost_of
from providers.usage import Usage
from routing.executor import Executor, GenerationFailed, OpenedStream
from routing.planner import Plan, Planner

log = logging.getLogger("gateway.chat")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request: key and app attribution."""

    api_key_id: str | None = None
    app_referer: str | None = None
    app_title: str | None = None
    key: ApiKey = ANONYMOUS  # its limits and routing defaults


@dataclass(slots=True)
class Answer:
    body: bytes
    headers: dict[str, str]


@dataclass(slots=True)
class StreamAnswer:
    chunks: AsyncIterator[bytes]
    headers: dict[str, str]


_R = TypeVar("_R")


class _Begun(NamedTuple, Generic[_R]):
    started: float
    plan: Plan
    hold: Hold
    event: GenerationEvent
    result: _R


class ChatService:
    def __init__(
        self,
        planner: Planner,
        executor: Executor,
        ledger: LedgerSink,
        limiter: Limiter | None = None,
    ) -> None:
        self._planner = planner
        self._executor = executor
        self._ledger = ledger
        self._limiter = limiter

    async def _admit(self, caller: Caller, plan: Plan) -> Hold:
        """The key's rate limits and a hold of the request's worst-case cost (429 / 402)."""
        if self._limiter is None or not caller.key.limited:
            return Hold(caller.key, "", 0)
        return await self._limiter.admit(caller.key, worst_case_of(plan))

    async def _release(self, hold: Hold) -> None:
        """Free a hold without charging; shielded, as it runs while a cancellation unwinds."""
        if self._limiter is not None:
            with anyio.CancelScope(shield=True):
                await self._limiter.settle(hold, ZERO, 0)

    async def _end(self, event: GenerationEvent, hold: Hold) -> None:
        """The generation's one ledger event, and its key's spend settled with the real cost:
        one Redis round trip (DESIGN.md step 6). Raises `LedgerUnavailable` if the event was
        not queued; a failed settlement is only logged."""
        batch = Batch()
        self._ledger.emit_into(batch, event)
        if self._limiter is not None:
            self._limiter.settle_into(batch, hold, event.cost.total, event.usage.total_tokens)
        await batch.send()

    def _event(
        self, gen_id: str, request: ChatRequest, plan: Plan, caller: Caller, streamed: bool
    ) -> GenerationEvent:
        return GenerationEvent(
            id=gen_id,
            created_at=datetime.now(UTC),
            requested_model=request.requested_model,
            model=request.route.model,
            mode=plan.mode,
            streamed=streamed,
            api_key_id=caller.api_key_id,
            app_referer=caller.app_referer,
            app_title=caller.app_title,
            explanation=plan.explanation if plan.explanation else None,
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

    async def _record_failure(
        self, event: GenerationEvent, failed: GenerationFailed, started: float, hold: Hold
    ) -> None:
        event.status = "error"
        event.http_status = failed.last.http_status
        event.error_message = failed.last.message
        event.attempts = failed.attempts
        event.latency_s = time.monotonic() - started
        await self._end(event, hold)

    async def _begin(
        self,
        request: ChatRequest,
        caller: Caller,
        streamed: bool,
        call: Callable[[Plan, dict[str, Any]], Awaitable[_R]],
    ) -> _Begun[_R]:
        """Plan, admit the key, run the attempts; a failure is recorded and its hold freed."""
        started = time.monotonic()
        plan = self._planner.plan(request.route)
        hold = await self._admit(caller, plan)
        event = self._event(request.generation_id, request, plan, caller, streamed)
        try:
            result = await call(plan, request.upstream_body)
        except GenerationFailed as failed:
            failed.headers = self._headers(event.id, plan, len(failed.attempts))
            await self._record_failure(event, failed, started, hold)
            raise
        except BaseException:
            await self._release(hold)  # cancelled (client gone) or a bug: free the hold
            raise
        return _Begun(started, plan, hold, event, result)

    async def complete(self, request: ChatRequest, caller: Caller) -> Answer:
        started, plan, hold, event, served = await self._begin(
            request, caller, False, self._executor.complete
        )
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
        event.usage, event.cost, event.attempts = completion.usage, cost, served.attempts
        event.native_finish_reason = None if native is None else str(native)
        event.finish_reason = normalize_finish_reason(native)
        event.ttft_s = completion.ttft_s
        event.latency_s = time.monotonic() - started
        event.generation_s = completion.generation_s or completion.latency_s
        if request.route.explain:
            payload["route"] = self._explain(plan, served.attempts, served.skipped)
        await self._end(event, hold)
        headers = {**self._headers(gen_id, plan, len(served.attempts)), **hold.headers}
        return Answer(encode(payload), headers)

    async def stream(self, request: ChatRequest, caller: Caller) -> StreamAnswer:
        """Opens the stream (falling back while nothing was sent), then relays it."""
        started, plan, hold, event, opened = await self._begin(
            request, caller, True, self._executor.open_stream
        )
        gen_id = event.id
        headers = {**self._headers(gen_id, plan, len(opened.attempts) + 1), **hold.headers}
        return StreamAnswer(self._relay(opened, request, plan, event, started, hold), headers)

    async def _relay(
        self,
        opened: OpenedStream,
        request: ChatRequest,
        plan: Plan,
        event: GenerationEvent,
        started: float,
        hold: Hold,
    ) -> AsyncIterator[bytes]:
        endpoint, gen_id = opened.endpoint, event.id
        model = endpoint.model  # the model that served: a `models` fallback may differ
        event.provider, event.endpoint_id, event.model = endpoint.provider, endpoint.id, model
        event.upstream_id = upstream_id_of(opened.first.data)
        event.price_version = price_version(endpoint)
        event.ttft_s = time.monotonic() - started
        usage: Usage | None = None
        native: Any = None
        error: UpstreamError | None = None
        finished = False
        try:
            chunk = opened.first
            while True:
                native = first_finish_reason(chunk.data.get("choices")) or native
                stamp(chunk.data, gen_id, model, endpoint.provider)
                if chunk.usage is not None:
                    usage = chunk.usage
                    self._close_event(event, opened, usage, native, started)
                    self._executor.finish_stream(
                        opened, None, usage=usage, finish_reason=event.finish_reason
                    )
                    event.attempts = opened.attempts
                    chunk.data["usage"] = usage_body(usage, event.cost)
                    if request.route.explain:
                        chunk.data["route"] = self._explain(plan, opened.attempts, opened.skipped)
                    await self._end(event, hold)
                    finished = True
                    yield sse(chunk.data)
                else:
                    yield sse(chunk.data)
                try:
                    chunk = await anext(opened.rest)
                except StopAsyncIteration:
                    break
            if not finished:
                # The upstream never sent usage: close the generation with what we know.
                usage = Usage()
                self._close_event(event, opened, usage, native, started)
                self._executor.finish_stream(
                    opened, None, usage=usage, finish_reason=event.finish_reason
                )
                event.attempts = opened.attempts
                await self._end(event, hold)
                finished = True
                yield sse(
                    {
                        "id": gen_id,
                        "object": "chat.completion.chunk",
                        "model": model,
                        "provider": endpoint.provider,
                        "choices": [],
                        "usage": usage_body(usage, event.cost),
                    }
                )
            yield SSE_DONE
        except UpstreamError as exc:
            error = MidStreamError(exc.message, status=exc.status)
            self._executor.finish_stream(opened, error)
            event.status, event.http_status = "error", 502
            event.error_message = exc.message
            event.finish_reason = event.native_finish_reason = "error"
            event.attempts = opened.attempts
            event.latency_s = time.monotonic() - started
            await self._end(event, hold)
            finished = True
            yield error_chunk(gen_id, model, endpoint.provider, 502, exc.message)
            yield SSE_DONE
        finally:
            if not finished:
                # The client went away: stop the upstream and record a cancelled generation.
                # Shielded: the server cancelled this task's scope, so any await would re-raise.
                with anyio.CancelScope(shield=True):
                    await opened.rest.aclose()  # type: ignore[attr-defined]
                    self._executor.finish_stream(opened, None, cancelled=True)
                    event.status, event.cancelled = "cancelled", True
                    event.attempts = opened.attempts
                    event.latency_s = time.monotonic() - started
                    await self._end(event, hold)

    def _close_event(
        self,
        event: GenerationEvent,
        opened: OpenedStream,
        usage: Usage,
        native: Any,
        started: float,
    ) -> None:
        now = time.monotonic()
        event.usage = usage
        event.cost = cost_of(usage, opened.endpoint.price)
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
