"""The executor: the loop over a plan's endpoints, retrying and falling back on upstream failures.

Owns no routing decisions: the plan says which endpoints in which order; admission
(`routing.admission`: breaker and slots) says which may be called now; observers hear how each
attempt ended (live stats) and which endpoint served (cache affinity). One tenacity policy per
endpoint (`routing.retry`), one attempt budget per generation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from providers.catalog import Endpoint, Secret
from providers.errors import (
    UpstreamContextExceeded,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from providers.parameters import upstream_body
from providers.provider import Chunk, Completion, Provider, Timeouts, UpstreamCall
from providers.usage import Usage
from routing import defaults
from routing.admission import Admission, EndpointGate
from routing.attempts import Attempt, GenerationFailed, Served, Skip
from routing.bounds import completion_bound
from routing.planner import Plan
from routing.preferences import RouteRequest
from routing.retry import RetryPolicy, retryable, retrying
from routing.stream import OpenedStream

__all__ = [
    "Attempt",
    "AttemptObserver",
    "EndpointGate",
    "Executor",
    "GenerationFailed",
    "OpenedStream",
    "RetryPolicy",
    "Served",
    "ServedObserver",
    "Skip",
]

_T = TypeVar("_T")
_NOT_STARTED = datetime.min.replace(tzinfo=UTC)


class AttemptObserver(Protocol):
    """Receives every attempt's outcome (live stats, breaker)."""

    def observe(self, attempt: Attempt, error: UpstreamError | None) -> None: ...


class ServedObserver(Protocol):
    """Hears which endpoint served a generation, and with what usage (cache affinity)."""

    def served(
        self, request: RouteRequest, endpoint: Endpoint, usage: Usage, now: float
    ) -> None: ...


@dataclass(slots=True)
class _Run:
    """One generation's progress through its plan."""

    plan: Plan
    deadline: float  # monotonic
    budget: int
    attempts: list[Attempt] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    started_wall: datetime = _NOT_STARTED  # set with `started` as each attempt starts
    started: float = 0.0
    slot: int = -1  # the admission slot token of the current attempt


class Executor:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        secret_for: Callable[[Endpoint], Secret | None],
        timeouts: Timeouts,
        max_attempts: int = defaults.MAX_ATTEMPTS,
        observer: AttemptObserver | None = None,
        *,
        retry: RetryPolicy | None = None,
        gate: EndpointGate | None = None,
        on_served: ServedObserver | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._providers = providers
        self._secret_for = secret_for
        self._timeouts = timeouts
        self._max_attempts = max_attempts
        self._observer = observer
        self._retry = retry = retry or RetryPolicy()
        self._on_served = on_served
        self._sleep = sleep
        self._clock = clock
        self._admission = Admission(
            gate, retry, slot_ttl_s=timeouts.total, sleep=sleep, clock=clock
        )

    # -- public surface

    async def complete(
        self, plan: Plan, body: dict[str, Any], attempts: list[Attempt] | None = None
    ) -> Served:
        """The first answer the plan's endpoints give. Attempts go into `attempts` (when given)
        as they end, so a caller that is cancelled still knows what was tried."""

        async def once(endpoint: Endpoint, call: UpstreamCall) -> Completion:
            return await self._providers[endpoint.kind].complete(call)

        endpoint, completion, run = await self._run(plan, body, once, attempts)
        self._admission.release(endpoint, run.slot)
        attempt = self._attempt(endpoint, run.started_wall, run.started, completion.ttft_s)
        usage = completion.usage
        attempt.completion_tokens = usage.completion_tokens
        attempt.generation_s = completion.generation_s or attempt.latency_s
        if _error_finish(completion.body):
            attempt.outcome = "error_finish"
        self._finish(run.attempts, attempt, None)
        self._served(plan, endpoint, usage)
        return Served(endpoint, completion, run.attempts, run.skipped)

    async def open_stream(
        self, plan: Plan, body: dict[str, Any], attempts: list[Attempt] | None = None
    ) -> OpenedStream:
        """The first stream whose first chunk arrives; it records its own attempt when it ends
        (see `routing.stream`)."""

        async def once(endpoint: Endpoint, call: UpstreamCall) -> tuple[Chunk, Any]:
            stream = self._providers[endpoint.kind].stream(call)
            try:
                async with asyncio.timeout(call.timeouts.first_token):
                    first = await anext(stream)
            except StopAsyncIteration:
                raise UpstreamUnavailable(f"{endpoint.provider}: empty stream") from None
            except TimeoutError as exc:
                await stream.aclose()  # type: ignore[attr-defined]
                late = UpstreamTimeout(f"{endpoint.provider}: no first token in time")
                late.answered = True  # it may be generating (and billing) it: never sent again
                raise late from exc
            except BaseException:
                await stream.aclose()  # type: ignore[attr-defined]
                raise
            return first, stream

        endpoint, (first, stream), run = await self._run(plan, body, once, attempts)
        ttft = time.monotonic() - run.started
        started_wall, slot = run.started_wall, run.slot

        def ended(opened: OpenedStream) -> None:
            self._stream_ended(opened, plan, started_wall, slot)

        return OpenedStream(
            endpoint, first, stream, run.attempts, run.started, ttft, ended, run.skipped
        )

    def _stream_ended(
        self, opened: OpenedStream, plan: Plan, started_wall: datetime, slot: int
    ) -> None:
        """Record the serving attempt of a stream that ended (called once, by the stream)."""
        self._admission.release(opened.endpoint, slot)
        attempt = self._attempt(opened.endpoint, started_wall, opened.started, opened.ttft_s)
        attempt.streamed = True
        usage = opened.usage
        if usage is not None:
            attempt.completion_tokens = usage.completion_tokens
            attempt.generation_s = max(attempt.latency_s - opened.ttft_s, 0.0)
        error = opened.error
        if opened.ended == "cancelled":
            attempt.outcome = "cancelled"
        elif error is None and opened.native_finish_reason == "error":
            attempt.outcome = "error_finish"
        self._finish(opened.attempts, attempt, error)
        if opened.ended == "ok" and usage is not None:
            self._served(plan, opened.endpoint, usage)

    # -- the loop over the plan

    async def _run(
        self,
        plan: Plan,
        body: dict[str, Any],
        once: Callable[[Endpoint, UpstreamCall], Awaitable[_T]],
        attempts: list[Attempt] | None = None,
    ) -> tuple[Endpoint, _T, _Run]:
        run = _Run(plan, time.monotonic() + self._retry.deadline_s, self._max_attempts)
        if attempts is not None:
            run.attempts = attempts
        last: UpstreamError | None = None
        # Waiting (Retry-After, an open breaker) and retrying up to the whole budget are for
        # a client that pinned one endpoint: exacto, or allow_fallbacks=false. A plan that has
        # one endpoint only because nothing else is enabled fails fast instead.
        alone = len(plan.endpoints) == 1 and not plan.allow_fallbacks
        # After a context-length 400, a model's endpoints with no longer context are skipped;
        # the next model of `models` is tried.
        too_short: dict[str, int] = {}
        for endpoint in plan.endpoints:
            if run.budget <= 0:
                break
            if endpoint.context_length <= too_short.get(endpoint.model, 0):
                continue
            try:
                admitted = await self._admission.admit(
                    endpoint, alone=alone, deadline=run.deadline, skipped=run.skipped
                )
                if not admitted:
                    continue
                result = await self._try_endpoint(endpoint, body, alone, run, once)
            except UpstreamContextExceeded as exc:
                last = exc
                too_short[endpoint.model] = max(
                    too_short.get(endpoint.model, 0), endpoint.context_length
                )
                continue
            except UpstreamError as exc:
                last = exc
                if not exc.fallback:
                    break
                continue
            return endpoint, result, run
        if last is None:
            waits = [s.retry_after for s in run.skipped if s.retry_after is not None]
            last = UpstreamUnavailable(
                "every endpoint is out of rotation: " + "; ".join(s.reason for s in run.skipped),
                retry_after=min(waits) if waits else None,
            )
        raise GenerationFailed(last, run.attempts, run.skipped)

    async def _try_endpoint(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        alone: bool,
        run: _Run,
        once: Callable[[Endpoint, UpstreamCall], Awaitable[_T]],
    ) -> _T:
        """One endpoint under its tenacity policy: retry transient failures, then give up.

        The first try runs outside tenacity, whose per-attempt machinery costs ~45 µs
        (benchmarks/NOTES.md): only a retryable failure enters the policy.
        """
        per_endpoint = 1 + self._retry.retries_per_endpoint
        limit = run.budget if alone else min(per_endpoint, run.budget)  # the first try counts
        try:
            return await self._call_once(endpoint, body, run, once)
        except UpstreamError as exc:
            if not retryable(exc, alone):
                raise
            replayed: UpstreamError | None = exc
        policy = retrying(
            self._retry,
            alone=alone,
            limit=limit,
            exhausted=lambda: run.budget <= 0,
            deadline=run.deadline,
            sleep=self._sleep,
        )
        async for attempt in policy:
            with attempt:
                if replayed is not None:
                    # Tenacity decides on the first try like on any other: same numbering,
                    # backoff, stop and Retry-After handling as if it had made the call.
                    failure, replayed = replayed, None
                    raise failure
                return await self._call_once(endpoint, body, run, once)
        raise AssertionError("tenacity ended without an outcome")  # pragma: no cover

    async def _call_once(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        run: _Run,
        once: Callable[[Endpoint, UpstreamCall], Awaitable[_T]],
    ) -> _T:
        remaining = run.deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeout(f"{endpoint.provider}: the generation ran out of time")
        t = self._timeouts
        timeouts = Timeouts(
            t.connect, min(t.first_token, remaining), min(t.total, remaining), t.idle
        )
        request = run.plan.request
        # Exactly one completion cap reaches the upstream: the one the key's hold priced.
        cap = completion_bound(endpoint, request.prompt_tokens, request.max_tokens)
        call = UpstreamCall(
            endpoint,
            {**upstream_body(endpoint, body, request.parameters), "max_tokens": cap},
            self._secret_for(endpoint),
            timeouts,
            request.max_tokens,
        )
        run.budget -= 1
        run.started_wall, run.started = datetime.now(UTC), time.monotonic()
        run.slot = self._admission.take(endpoint, run.started)
        try:
            return await once(endpoint, call)
        except UpstreamError as exc:
            self._admission.release(endpoint, run.slot)
            self._finish(
                run.attempts, self._attempt(endpoint, run.started_wall, run.started, None), exc
            )
            raise
        except BaseException:
            # Cancelled (the client or the server went away) while the upstream was working.
            self._admission.release(endpoint, run.slot)
            attempt = self._attempt(endpoint, run.started_wall, run.started, None)
            attempt.outcome = "cancelled"
            self._finish(run.attempts, attempt, None)
            raise

    # -- bookkeeping

    def _attempt(
        self, endpoint: Endpoint, started_wall: datetime, started: float, ttft: float | None
    ) -> Attempt:
        return Attempt(
            endpoint.id, endpoint.provider, started_wall, time.monotonic() - started, ttft
        )

    def _finish(
        self, attempts: list[Attempt], attempt: Attempt, error: UpstreamError | None
    ) -> None:
        if error is not None:
            attempt.failed(error)
        attempts.append(attempt)
        if self._observer is not None:
            self._observer.observe(attempt, error)

    def _served(self, plan: Plan, endpoint: Endpoint, usage: Usage) -> None:
        if self._on_served is not None:
            self._on_served.served(plan.request, endpoint, usage, self._clock())


def _error_finish(body: dict[str, Any]) -> bool:
    choices = body.get("choices")
    if not isinstance(choices, list):
        return False
    return any(isinstance(c, dict) and c.get("finish_reason") == "error" for c in choices)
