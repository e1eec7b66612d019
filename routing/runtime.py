"""One replica's routing wired from its `RoutingConfig`: stats store, live stats, planner,
executor. Nothing here reads the env or holds a default (`routing.config`, `routing.defaults`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from providers.catalog import Catalog, Endpoint, Secret
from providers.provider import Provider
from routing.affinity import AffinityMemory, AffinityShare
from routing.breaker import Breakers
from routing.config import RoutingConfig, StatsPolicy
from routing.executor import Executor
from routing.live import LiveStats
from routing.planner import Availability, Planner
from routing.redis_stats_store import RedisStatsStore
from routing.stats_store import InProcessStatsStore, StatsStore


@dataclass
class Routing:
    live: LiveStats
    planner: Planner
    executor: Executor
    affinity: AffinityMemory


log = logging.getLogger("routing.stats")


def stats_store(config: StatsPolicy, redis: Redis | RedisCluster | None, prefix: str) -> StatsStore:
    """Redis when the deployment has one (shared by every replica), else in process."""
    layout = config.layout()
    if redis is None:
        return InProcessStatsStore(layout)
    return RedisStatsStore(redis, prefix, layout, settle_s=config.settle_s)


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
    availability: Availability | None = None,
    affinity_share: AffinityShare | None = None,
) -> AsyncIterator[Routing]:
    """Start the live stats loop, yield the wired planner and executor, flush on the way out.

    `availability` says why an endpoint can't take a request now (e.g. the llama.cpp monitor's
    `unavailable`); the planner gates such endpoints behind the others.
    """
    breakers = Breakers(config.breaker)
    stats = config.stats
    store = stats_store(stats, redis, redis_prefix)
    if isinstance(store, RedisStatsStore):
        await _adopt_legacy(store)
    live = LiveStats(
        store,
        breakers,
        refresh_s=stats.refresh_s,
        flush_s=stats.flush_s,
        outage_uptime=config.scoring.outage_uptime,
    )
    affinity = AffinityMemory(config.affinity_entries, affinity_share)
    planner = Planner(
        catalog, live.snapshot, affinity=affinity, policy=config.scoring, availability=availability
    )
    executor = Executor(
        providers,
        secret_for or catalog.secret_for,
        config.timeouts,
        max_attempts=config.max_attempts,
        observer=live,
        retry=config.retry,
        gate=live,
        on_served=affinity,
    )
    await live.start()
    try:
        yield Routing(live, planner, executor, affinity)
    finally:
        await live.aclose()
