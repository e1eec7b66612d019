"""Where stats buckets and breaker states live: the `StatsStore` protocol and the in-process one.

The request path only calls the synchronous `record`/`share_breaker`; I/O happens in `flush` and
`read`, which the background loop of `routing.live` drives. Redis: `routing.redis_stats_store`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from routing.breaker import BreakerState
from routing.buckets import BucketKey, Buckets, Layout, Observation, tally


@dataclass(frozen=True, slots=True)
class StoreView:
    """What a read returns: every bucket the windows need and every shared breaker state."""

    buckets: Buckets
    breakers: Mapping[str, BreakerState]


class StatsStore(Protocol):
    layout: Layout

    def record(self, observation: Observation) -> None:
        """Tally one attempt in memory; never I/O."""
        ...

    def share_breaker(self, state: BreakerState) -> None:
        """Queue a breaker transition for the other replicas; never I/O."""
        ...

    async def flush(self) -> None:
        """Push what was recorded since the last flush (one round trip at most)."""
        ...

    async def read(self, now: float) -> StoreView: ...

    async def claim_probe(self, endpoint_id: str, until: float, ttl_s: float) -> bool:
        """Win the single half-open probe of the breaker period that ended at `until`."""
        ...

    async def aclose(self) -> None: ...


class InProcessStatsStore:
    """The embedded default: buckets and breakers in this process's memory."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._buckets: dict[BucketKey, dict[str, int]] = {}
        self._breakers: dict[str, BreakerState] = {}
        self._probes: dict[tuple[str, float], float] = {}  # (endpoint, until) -> expiry
        self._retention = {t.width_ms: t.retention_ms for t in layout.tiers}

    def record(self, observation: Observation) -> None:
        tally(observation, self.layout, self._buckets)

    def share_breaker(self, state: BreakerState) -> None:
        self._breakers[state.endpoint_id] = state

    async def flush(self) -> None:
        return None

    async def read(self, now: float) -> StoreView:
        now_ms = int(now * 1000)
        retention = self._retention
        for key in [
            k for k in self._buckets if (k[1] + 1) * k[0] + retention.get(k[0], 0) < now_ms
        ]:
            del self._buckets[key]
        return StoreView(self._buckets, dict(self._breakers))

    async def claim_probe(self, endpoint_id: str, until: float, ttl_s: float) -> bool:
        now = time.time()
        self._probes = {k: v for k, v in self._probes.items() if v > now}
        key = (endpoint_id, until)
        if key in self._probes:
            return False
        self._probes[key] = now + ttl_s
        return True

    async def aclose(self) -> None:
        return None
