"""Live stats of one replica: records every attempt, refreshes the local snapshot, runs breakers.

The request path touches only memory here; a background task flushes to the store every
`flush_s` and rebuilds the snapshot every `refresh_s`. Not a place for routing decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType

from redis.exceptions import RedisError

from providers.background import stop_task
from providers.errors import UpstreamError
from providers.openai_compatible import MAX_RETRY_AFTER_S
from routing import defaults
from routing.breaker import Breakers, BreakerState, Phase
from routing.buckets import Observation, Outcome, summarize
from routing.executor import Attempt
from routing.stats import EMPTY_SNAPSHOT, StatsSnapshot
from routing.stats_store import StatsStore

log = logging.getLogger("routing.stats")


def observation_of(attempt: Attempt, error: UpstreamError | None, at: float) -> Observation | None:
    """What an attempt tells the stats; None when it says nothing about the endpoint.

    400/413-style client errors and "unavailable" (busy, breaker) don't count; 429 counts as
    rate limiting; every other failure, and a successful call that finished with an error,
    counts against uptime.
    """
    outcome: Outcome
    if error is None:
        if attempt.outcome == "cancelled":
            return None
        outcome = "error" if attempt.outcome == "error_finish" else "ok"
    elif error.rate_limited:
        outcome = "rate_limited"
    elif error.counts_against_uptime:
        outcome = "error"
    else:
        return None
    if outcome != "ok":
        return Observation(attempt.endpoint_id, at, outcome)
    throughput = None
    tokens, generation = attempt.completion_tokens, attempt.generation_s
    if tokens and generation and generation > 0:
        throughput = tokens / generation
    return Observation(
        attempt.endpoint_id,
        at,
        "ok",
        ttft_s=attempt.ttft_s if attempt.streamed else None,
        latency_s=attempt.latency_s,
        throughput=throughput,
    )


class LiveStats:
    """The attempt observer, the executor's breaker gate and the planner's snapshot source."""

    def __init__(
        self,
        store: StatsStore,
        breakers: Breakers | None = None,
        *,
        refresh_s: float = defaults.STATS_REFRESH_S,
        flush_s: float = defaults.STATS_FLUSH_S,
        outage_uptime: float = defaults.OUTAGE_UPTIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.breakers = breakers or Breakers()
        self.refresh_s = refresh_s
        self.flush_s = flush_s
        self._outage_uptime = outage_uptime
        self._clock = clock
        self._snapshot: StatsSnapshot = EMPTY_SNAPSHOT
        self._probe_lost: dict[str, float] = {}  # endpoint -> the half-open period we lost
        self._task: asyncio.Task[None] | None = None

    # -- what routing reads

    def snapshot(self) -> StatsSnapshot:
        return self._snapshot

    def phase(self, endpoint_id: str, now: float) -> tuple[Phase, float]:
        state = self.breakers.get(endpoint_id)
        if state is None:
            return "closed", 0.0
        return state.phase(now), state.until

    async def claim_probe(self, endpoint_id: str, now: float) -> bool:
        """One probe per half-open period across replicas; a lost claim is not retried."""
        state = self.breakers.get(endpoint_id)
        if state is None or state.phase(now) != "half_open":
            return state is None or state.phase(now) == "closed"
        if self._probe_lost.get(endpoint_id) == state.until:
            return False
        won = await self.store.claim_probe(
            endpoint_id, state.until, self.breakers.policy.probe_ttl_s
        )
        if not won:
            self._probe_lost[endpoint_id] = state.until
        return won

    # -- what the executor reports

    def observe(self, attempt: Attempt, error: UpstreamError | None) -> None:
        now = self._clock()
        observation = observation_of(attempt, error, now)
        if observation is not None:
            self.store.record(observation)
        breakers = self.breakers
        changed: BreakerState | None = None
        if error is not None and error.retry_after is not None:
            changed = breakers.on_retry_after(attempt.endpoint_id, now, error.retry_after)
        if observation is None:
            pass
        elif observation.outcome == "ok":
            changed = breakers.on_success(attempt.endpoint_id, now) or changed
        elif observation.outcome == "error":
            changed = breakers.on_failure(attempt.endpoint_id, now) or changed
        if changed is not None:
            self._shared(changed)

    def _shared(self, state: BreakerState) -> None:
        self.store.share_breaker(state)
        self._snapshot = replace(
            self._snapshot, breakers=MappingProxyType(dict(self.breakers.states()))
        )
        if state.open:
            log.warning(
                "breaker open",
                extra={"endpoint": state.endpoint_id, "until": state.until, "reason": state.reason},
            )

    # -- the background loop

    async def refresh(self) -> StatsSnapshot:
        """Flush, read the store, rebuild the snapshot; open breakers on shared outages."""
        await self.store.flush()
        now = self._clock()
        view = await self.store.read(now)
        breakers = self.breakers
        breakers.merge(self._bounded(view.breakers))
        recovered = {k: s.recovered_at for k, s in breakers.states().items() if s.recovered_at}
        endpoints = summarize(view.buckets, self.store.layout, now, recovered)
        failures = breakers.policy.failures
        for endpoint_id, stats in endpoints.items():
            recent, uptime = stats.recent, stats.recent.uptime
            if recent.errors >= failures and uptime is not None and uptime < self._outage_uptime:
                changed = breakers.on_outage(
                    endpoint_id, now, f"uptime {uptime:.0%} over {recent.requests} recent attempts"
                )
                if changed is not None:
                    self.store.share_breaker(changed)
        self._snapshot = StatsSnapshot(
            now, MappingProxyType(endpoints), MappingProxyType(dict(breakers.states()))
        )
        return self._snapshot

    def _bounded(self, remote: Mapping[str, BreakerState]) -> Mapping[str, BreakerState]:
        """Shared states with their pause cut to the longest this version ever sets, counted
        from when they were set: a state written before `Retry-After` was capped (or by hand)
        must not keep an endpoint out for years."""
        longest = max(self.breakers.policy.max_cooldown_s, MAX_RETRY_AFTER_S)
        bounded = dict(remote)
        for endpoint_id, state in remote.items():
            if state.open and state.until > state.changed_at + longest:
                log.warning(
                    "shared breaker pause cut", extra={"endpoint": endpoint_id, "was": state.until}
                )
                bounded[endpoint_id] = replace(state, until=state.changed_at + longest)
        return bounded

    async def run(self) -> None:
        next_refresh = 0.0
        while True:
            try:
                if time.monotonic() >= next_refresh:
                    await self.refresh()
                    next_refresh = time.monotonic() + self.refresh_s
                else:
                    await self.store.flush()
            except (RedisError, OSError) as exc:
                log.warning("stats refresh failed", extra={"error": type(exc).__name__})
            except Exception:
                # Bad data in the store or a bug must not stop routing's view of the world.
                log.exception("stats refresh failed unexpectedly; continuing")
            await asyncio.sleep(self.flush_s)

    async def start(self) -> None:
        """Load the first snapshot, then keep it fresh in the background."""
        with contextlib.suppress(RedisError, OSError):
            await self.refresh()
        self._task = asyncio.create_task(self.run(), name="routing-stats")

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The background loop (for readiness: a loop that ended is reported)."""
        return self._task

    async def aclose(self) -> None:
        """Stop the loop and flush what is still buffered."""
        await stop_task(self._task)
        self._task = None
        with contextlib.suppress(RedisError, OSError):
            await self.store.aclose()

    def endpoint_stats(self) -> dict[str, dict[str, object]]:
        """Per endpoint id, the figures the endpoints listing shows."""
        snapshot = self._snapshot
        result: dict[str, dict[str, object]] = {}
        for endpoint_id, stats in snapshot.endpoints.items():
            body = stats.to_json()
            body["latency_last_30m"] = body["ttft_ms"]
            body["throughput_last_30m"] = body["throughput"]
            result[endpoint_id] = body
        for endpoint_id, state in snapshot.breakers.items():
            body = result.setdefault(endpoint_id, {})
            body["breaker"] = {
                "phase": state.phase(snapshot.taken_at or self._clock()),
                "until": state.until if state.open else None,
                "reason": state.reason or None,
            }
        return result
