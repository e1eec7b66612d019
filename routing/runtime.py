"""One replica's routing built from plain configuration: stats store, live stats, planner,
executor. The gateway hands in its routing settings as a mapping; nothing here reads the env.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from providers.catalog import Catalog, Endpoint, Secret
from providers.provider import Provider, Timeouts
from routing.affinity import AffinityMemory, AffinityShare
from routing.breaker import BreakerPolicy, Breakers
from routing.buckets import Layout
from routing.executor import Executor, RetryPolicy
from routing.live import LiveStats
from routing.planner import Planner
from routing.redis_stats_store import RedisStatsStore
from routing.scoring import RoutingPolicy
from routing.stats_store import InProcessStatsStore, StatsStore

log = logging.getLogger("routing.stats")


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """Every routing knob; field names match `gateway.settings.RoutingSettings`."""

    connect_timeout_s: float = 5.0
    first_token_timeout_s: float = 60.0
    total_timeout_s: float = 600.0
    idle_timeout_s: float = 60.0
    generation_timeout_s: float = 900.0
    max_attempts: int = 6
    retries_per_endpoint: int = 1
    backoff_base_s: float = 0.05
    backoff_max_s: float = 2.0
    stats_refresh_s: float = 1.0
    stats_flush_s: float = 0.2
    stats_buckets: int = 15
    stats_settle_s: float = 2.0
    uptime_windows_s: tuple[float, ...] = (30, 300, 1800, 86_400, 2_592_000)
    outage_window_s: float = 30.0
    latency_window_s: float = 1800.0
    min_samples: int = 5
    explore_share: float = 0.05
    outage_uptime: float = 0.7
    outage_min_requests: int = 3
    breaker_failures: int = 5
    breaker_cooldown_s: float = 5.0
    breaker_max_cooldown_s: float = 60.0
    affinity_entries: int = 100_000
    affinity_yield: float = 0.25

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RoutingConfig:
        """Take the fields this class knows from a settings dump; ignore the rest."""
        known = {f.name for f in dataclasses.fields(cls)}
        picked = {k: v for k, v in values.items() if k in known}
        if "uptime_windows_s" in picked:
            picked["uptime_windows_s"] = tuple(picked["uptime_windows_s"])
        return cls(**picked)

    def layout(self) -> Layout:
        return Layout.build(
            self.uptime_windows_s,
            self.outage_window_s,
            self.latency_window_s,
            self.stats_buckets,
            self.stats_settle_s,
        )

    def timeouts(self) -> Timeouts:
        return Timeouts(
            self.connect_timeout_s,
            self.first_token_timeout_s,
            self.total_timeout_s,
            self.idle_timeout_s,
        )


@dataclass
class Routing:
    live: LiveStats
    planner: Planner
    executor: Executor
    affinity: AffinityMemory


def stats_store(
    config: RoutingConfig, redis: Redis | RedisCluster | None, prefix: str
) -> StatsStore:
    """Redis when the deployment has one (shared by every replica), else in process."""
    layout = config.layout()
    if redis is None:
        return InProcessStatsStore(layout)
    return RedisStatsStore(redis, prefix, layout, settle_s=config.stats_settle_s)


async def _adopt_legacy(store: RedisStatsStore) -> None:
    try:
        merged = await store.adopt_legacy(time.time())
    except (RedisError, OSError) as exc:  # stats restart from empty windows: routing still works
        log.warning("stats from before the {stats} hash tag not merged: %s", exc)
        return
    if merged:
        log.info("stats from before the {stats} hash tag merged", extra={"keys": merged})


@asynccontextmanager
async def open_routing(
    config: RoutingConfig,
    catalog: Catalog,
    providers: Mapping[str, Provider],
    redis: Redis | RedisCluster | None = None,
    redis_prefix: str = "gw:",
    secret_for: Callable[[Endpoint], Secret | None] | None = None,
    affinity_share: AffinityShare | None = None,
) -> AsyncIterator[Routing]:
    """Start the live stats loop, yield the wired planner and executor, flush on the way out."""
    breakers = Breakers(
        BreakerPolicy(
            failures=config.breaker_failures,
            cooldown_s=config.breaker_cooldown_s,
            max_cooldown_s=config.breaker_max_cooldown_s,
            probe_ttl_s=config.first_token_timeout_s,
        )
    )
    store = stats_store(config, redis, redis_prefix)
    if isinstance(store, RedisStatsStore):
        await _adopt_legacy(store)
    live = LiveStats(
        store,
        breakers,
        refresh_s=config.stats_refresh_s,
        flush_s=config.stats_flush_s,
        outage_uptime=config.outage_uptime,
    )
    affinity = AffinityMemory(config.affinity_entries, affinity_share)
    policy = RoutingPolicy(
        min_samples=config.min_samples,
        explore_share=config.explore_share,
        outage_uptime=config.outage_uptime,
        outage_min_requests=config.outage_min_requests,
        affinity_yield=config.affinity_yield,
    )
    planner = Planner(catalog, live.snapshot, affinity=affinity, policy=policy)
    executor = Executor(
        providers,
        secret_for or catalog.secret_for,
        config.timeouts(),
        max_attempts=config.max_attempts,
        observer=live,
        retry=RetryPolicy(
            retries_per_endpoint=config.retries_per_endpoint,
            backoff_base_s=config.backoff_base_s,
            backoff_max_s=config.backoff_max_s,
            deadline_s=config.generation_timeout_s,
        ),
        gate=live,
        affinity=affinity,
    )
    await live.start()
    try:
        yield Routing(live, planner, executor, affinity)
    finally:
        await live.aclose()
