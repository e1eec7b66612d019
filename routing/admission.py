"""Admission: whether an endpoint of the plan may be called now, as one decision over its
circuit breaker and its concurrency slots; and the slots themselves (taken per call).

This is the one place that decides "busy" when a call is about to be made: this replica's own
count of calls in flight against the endpoint's `max_concurrency` (when it may `spill_over`).
A deployment's availability signal (the llama.cpp monitor's `unavailable`, polled every
0.5 s) only orders the plan (`routing.gates`): it may lag, and when the two disagree this
count wins. An endpoint the monitor calls busy is still called here when it has a free slot
(it was planned behind the others), and one the monitor calls free is skipped when every
slot counted here is taken. Not the retry rule (`routing.retry`) nor the loop (`routing.executor`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from providers.catalog import Endpoint
from providers.errors import UpstreamUnavailable
from routing.attempts import Skip
from routing.breaker import Phase
from routing.retry import RetryPolicy


class EndpointGate(Protocol):
    """The breakers as admission asks them: may this endpoint be called now?"""

    def phase(self, endpoint_id: str, now: float) -> tuple[Phase, float]: ...

    async def claim_probe(self, endpoint_id: str, now: float) -> bool: ...


class Admission:
    """Breaker + slots for every endpoint of this replica; waits only for a pinned endpoint."""

    def __init__(
        self,
        gate: EndpointGate | None,
        retry: RetryPolicy,
        *,
        slot_ttl_s: float,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._gate = gate
        self._retry = retry
        self._slot_ttl_s = slot_ttl_s
        self._sleep = sleep
        self._clock = clock
        # Busy slots per endpoint (token -> monotonic start), for `max_concurrency`. A slot
        # whose stream was never finished expires with the attempt's total timeout.
        self._inflight: dict[str, dict[int, float]] = {}
        self._tokens = itertools.count()

    async def admit(
        self, endpoint: Endpoint, *, alone: bool, deadline: float, skipped: list[Skip]
    ) -> bool:
        """Whether to call the endpoint now. One that may not is added to `skipped` (False),
        unless it is `alone` (no other endpoint is allowed): then this waits for it (an open
        breaker's pause, a probe, a slot) until the generation's `deadline` (monotonic)."""
        delay = max(self._retry.backoff_base_s, 0.01)
        while True:
            reason = self._closed_reason(endpoint)
            if reason is None:
                return True
            gate = self._gate
            phase, until = gate.phase(endpoint.id, self._clock()) if gate else ("closed", 0.0)
            if phase == "half_open" and gate is not None:
                if await gate.claim_probe(endpoint.id, self._clock()):
                    return True
                reason = "half-open: another request holds the probe"
            wait = until - self._clock() if phase == "open" else delay
            if not alone:
                retry_after = max(wait, 0.0) if phase == "open" else None
                skipped.append(Skip(endpoint.id, f"{endpoint.provider}: {reason}", retry_after))
                return False
            delay = min(delay * 2, max(self._retry.backoff_max_s, delay))
            if time.monotonic() + wait > deadline:
                raise UpstreamUnavailable(
                    f"{endpoint.provider}: {reason}", retry_after=max(wait, 0.0)
                )
            await self._sleep(max(wait, 0.0))

    def take(self, endpoint: Endpoint, started: float) -> int:
        """Hold one of the endpoint's slots for a call starting now; the token releases it."""
        token = next(self._tokens)
        self._inflight.setdefault(endpoint.id, {})[token] = started
        return token

    def release(self, endpoint: Endpoint, token: int) -> None:
        slots = self._inflight.get(endpoint.id)
        if slots is not None:
            slots.pop(token, None)
            if not slots:
                del self._inflight[endpoint.id]

    def busy(self, endpoint: Endpoint) -> int:
        """Calls in flight to the endpoint from this replica (stale slots dropped)."""
        slots = self._inflight.get(endpoint.id)
        if not slots:
            return 0
        stale = time.monotonic() - self._slot_ttl_s
        for token in [t for t, started in slots.items() if started < stale]:
            del slots[token]
        return len(slots)

    def _closed_reason(self, endpoint: Endpoint) -> str | None:
        gate = self._gate
        if gate is not None:
            phase, until = gate.phase(endpoint.id, self._clock())
            if phase == "open":
                return f"out of rotation for {max(until - self._clock(), 0):.1f}s"
            if phase == "half_open":
                return "half-open"
        slots = endpoint.max_concurrency
        if slots is not None and endpoint.spill_over and self.busy(endpoint) >= slots:
            return "every slot is busy"
        return None
