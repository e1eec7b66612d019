"""The executor: runs a plan's attempts, retrying and falling back on upstream failures.

Owns no routing decisions; the plan says which endpoints, in which order.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from providers.catalog import Endpoint, Secret
from providers.errors import UpstreamError, UpstreamUnavailable
from providers.provider import Chunk, Completion, Provider, Timeouts, UpstreamCall
from routing.planner import Plan


@dataclass(slots=True)
class Attempt:
    """One upstream call and how it ended."""

    endpoint_id: str
    provider: str
    started_at: datetime
    latency_s: float = 0.0
    ttft_s: float | None = None
    outcome: str = "ok"  # "ok" or the error class's outcome
    status: int | None = None
    error_class: str | None = None
    message: str | None = None


class AttemptObserver(Protocol):
    """Receives every attempt's outcome (live stats, breaker)."""

    def observe(self, attempt: Attempt, error: UpstreamError | None) -> None: ...


class GenerationFailed(Exception):
    """Every allowed attempt failed; `last` is what the client is told."""

    def __init__(self, last: UpstreamError, attempts: list[Attempt]) -> None:
        super().__init__(last.message)
        self.last = last
        self.attempts = attempts


@dataclass(slots=True)
class Served:
    endpoint: Endpoint
    completion: Completion
    attempts: list[Attempt]


@dataclass(slots=True)
class OpenedStream:
    """A stream whose first chunk has arrived: from here on there is no fallback."""

    endpoint: Endpoint
    first: Chunk
    rest: AsyncIterator[Chunk]
    attempts: list[Attempt]
    started: float  # monotonic start of the serving attempt
    ttft_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Executor:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        secret_for: Callable[[Endpoint], Secret | None],
        timeouts: Timeouts,
        max_attempts: int = 6,
        observer: AttemptObserver | None = None,
    ) -> None:
        self._providers = providers
        self._secret_for = secret_for
        self._timeouts = timeouts
        self._max_attempts = max_attempts
        self._observer = observer

    def _call(self, endpoint: Endpoint, body: dict[str, Any]) -> UpstreamCall:
        return UpstreamCall(
            endpoint,
            {**body, "model": endpoint.upstream_model},
            self._secret_for(endpoint),
            self._timeouts,
        )

    def _order(self, plan: Plan) -> tuple[Endpoint, ...]:
        endpoints = plan.endpoints if plan.allow_fallbacks else plan.endpoints[:1]
        return endpoints[: self._max_attempts]

    def _record(
        self,
        attempts: list[Attempt],
        endpoint: Endpoint,
        started_wall: datetime,
        started: float,
        ttft: float | None,
        error: UpstreamError | None,
    ) -> None:
        attempt = Attempt(
            endpoint.id, endpoint.provider, started_wall, time.monotonic() - started, ttft
        )
        if error is not None:
            attempt.outcome = error.outcome
            attempt.status = error.status
            attempt.error_class = type(error).__name__
            attempt.message = error.message
        attempts.append(attempt)
        if self._observer is not None:
            self._observer.observe(attempt, error)

    async def complete(self, plan: Plan, body: dict[str, Any]) -> Served:
        attempts: list[Attempt] = []
        last: UpstreamError = UpstreamUnavailable("no endpoint was tried")
        for endpoint in self._order(plan):
            provider = self._providers[endpoint.kind]
            started_wall, started = datetime.now(UTC), time.monotonic()
            try:
                completion = await provider.complete(self._call(endpoint, body))
            except UpstreamError as exc:
                self._record(attempts, endpoint, started_wall, started, None, exc)
                last = exc
                if not exc.fallback:
                    break
                continue
            self._record(attempts, endpoint, started_wall, started, completion.ttft_s, None)
            return Served(endpoint, completion, attempts)
        raise GenerationFailed(last, attempts)

    async def open_stream(self, plan: Plan, body: dict[str, Any]) -> OpenedStream:
        attempts: list[Attempt] = []
        last: UpstreamError = UpstreamUnavailable("no endpoint was tried")
        for endpoint in self._order(plan):
            provider = self._providers[endpoint.kind]
            started_wall, started = datetime.now(UTC), time.monotonic()
            stream = provider.stream(self._call(endpoint, body))
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                last = UpstreamUnavailable(f"{endpoint.provider}: empty stream")
                self._record(attempts, endpoint, started_wall, started, None, last)
                continue
            except UpstreamError as exc:
                self._record(attempts, endpoint, started_wall, started, None, exc)
                last = exc
                if not exc.fallback:
                    break
                continue
            ttft = time.monotonic() - started
            return OpenedStream(
                endpoint, first, stream, attempts, started, ttft, {"started_wall": started_wall}
            )
        raise GenerationFailed(last, attempts)

    def finish_stream(self, opened: OpenedStream, error: UpstreamError | None) -> None:
        """Record the serving attempt once its stream has ended (well or not)."""
        self._record(
            opened.attempts,
            opened.endpoint,
            opened.extra["started_wall"],
            opened.started,
            opened.ttft_s,
            error,
        )
