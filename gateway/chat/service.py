"""One generation from routing to ledger event: plan, execute, price, record, shape.

Framework-free: the controller hands it a decoded request and sends back what it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.chat.relay import (
    SSE_DONE,
    encode,
    error_chunk,
    first_finish_reason,
    new_generation_id,
    normalize_finish_reason,
    sse,
    stamp,
    usage_body,
)
from gateway.chat.request import ChatRequest
from gateway.ledger.events import GenerationEvent, LedgerSink
from providers.errors import MidStreamError, UpstreamError
from providers.pricing import cost_of
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


@dataclass(slots=True)
class Answer:
    body: bytes
    headers: dict[str, str]


@dataclass(slots=True)
class StreamAnswer:
    chunks: AsyncIterator[bytes]
    headers: dict[str, str]


class ChatService:
    def __init__(self, planner: Planner, executor: Executor, ledger: LedgerSink) -> None:
        self._planner = planner
        self._executor = executor
        self._ledger = ledger

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
        )

    @staticmethod
    def _headers(gen_id: str, plan: Plan, attempts: int) -> dict[str, str]:
        return {
            "X-Generation-Id": gen_id,
            "X-Route-Mode": plan.mode,
            "X-Route-Attempts": str(attempts),
        }

    async def _record_failure(
        self, event: GenerationEvent, failed: GenerationFailed, started: float
    ) -> None:
        event.status = "error"
        event.http_status = failed.last.http_status
        event.error_message = failed.last.message
        event.attempts = failed.attempts
        event.latency_s = time.monotonic() - started
        await self._ledger.emit(event)

    async def complete(self, request: ChatRequest, caller: Caller) -> Answer:
        started = time.monotonic()
        gen_id = new_generation_id()
        plan = self._planner.plan(request.route)
        event = self._event(gen_id, request, plan, caller, streamed=False)
        try:
            served = await self._executor.complete(plan, request.upstream_body)
        except GenerationFailed as failed:
            await self._record_failure(event, failed, started)
            raise
        completion, endpoint = served.completion, served.endpoint
        cost = cost_of(completion.usage, endpoint.price)
        payload = completion.body
        stamp(payload, gen_id, request.route.model, endpoint.provider)
        payload["usage"] = usage_body(completion.usage, cost)
        native = first_finish_reason(payload.get("choices"))
        event.provider, event.endpoint_id = endpoint.provider, endpoint.id
        event.usage, event.cost, event.attempts = completion.usage, cost, served.attempts
        event.native_finish_reason = None if native is None else str(native)
        event.finish_reason = normalize_finish_reason(native)
        event.ttft_s = completion.ttft_s
        event.latency_s = time.monotonic() - started
        event.generation_s = completion.generation_s or completion.latency_s
        if request.route.explain:
            payload["route"] = self._explain(plan, served.attempts)
        await self._ledger.emit(event)
        return Answer(encode(payload), self._headers(gen_id, plan, len(served.attempts)))

    async def stream(self, request: ChatRequest, caller: Caller) -> StreamAnswer:
        """Opens the stream (falling back while nothing was sent), then relays it."""
        started = time.monotonic()
        gen_id = new_generation_id()
        plan = self._planner.plan(request.route)
        event = self._event(gen_id, request, plan, caller, streamed=True)
        try:
            opened = await self._executor.open_stream(plan, request.upstream_body)
        except GenerationFailed as failed:
            await self._record_failure(event, failed, started)
            raise
        headers = self._headers(gen_id, plan, len(opened.attempts) + 1)
        return StreamAnswer(self._relay(opened, request, plan, event, started), headers)

    async def _relay(
        self,
        opened: OpenedStream,
        request: ChatRequest,
        plan: Plan,
        event: GenerationEvent,
        started: float,
    ) -> AsyncIterator[bytes]:
        endpoint, model, gen_id = opened.endpoint, request.route.model, event.id
        event.provider, event.endpoint_id = endpoint.provider, endpoint.id
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
                    self._executor.finish_stream(opened, None)
                    event.attempts = opened.attempts
                    chunk.data["usage"] = usage_body(usage, event.cost)
                    if request.route.explain:
                        chunk.data["route"] = self._explain(plan, opened.attempts)
                    await self._ledger.emit(event)
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
                self._executor.finish_stream(opened, None)
                event.attempts = opened.attempts
                await self._ledger.emit(event)
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
            await self._ledger.emit(event)
            finished = True
            yield error_chunk(gen_id, model, endpoint.provider, 502, exc.message)
        finally:
            if not finished:
                # The client went away: stop the upstream and record a cancelled generation.
                await opened.rest.aclose()  # type: ignore[attr-defined]
                self._executor.finish_stream(opened, None)
                event.status, event.cancelled = "cancelled", True
                event.attempts = opened.attempts
                event.latency_s = time.monotonic() - started
                await self._ledger.emit(event)

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
    def _explain(plan: Plan, attempts: list[Any]) -> dict[str, Any]:
        return {
            "mode": plan.mode,
            **plan.explanation,
            "rejected": plan.rejected,
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
