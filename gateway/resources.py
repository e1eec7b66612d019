"""Everything the app holds open for its lifetime, built and closed by the lifespan.

Routes receive the parts they use as dependencies (`gateway.dependencies`); the chat route and
the guards reach them through `resources_in`, the one typed accessor. No module globals.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from litestar.datastructures import State
from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.affinity_share import RedisAffinityShare, open_affinity_share
from gateway.chat.service import ChatService
from gateway.keys.keyring import Keyring, open_keyring
from gateway.keys.redis_limiter import RedisLimiter
from gateway.ledger.lifecycle import Ledger, open_ledger
from gateway.metrics.prometheus import GatewayMetrics, MeteredLedger, open_breakers, open_metrics
from gateway.redis_options import BACKGROUND_OPTIONS
from gateway.redis_topology import BackgroundRedis, Topology
from gateway.reports.prices import register_prices
from gateway.resp import Commands
from gateway.settings import Settings
from gateway.upstreams import open_transports
from providers.catalog import Catalog, load_catalog
from providers.llamacpp import LlamaCppProvider
from providers.llamacpp_health import LlamaCppMonitor
from providers.openai_compatible import OpenAICompatibleProvider
from providers.provider import Provider
from providers.tokenizer import warm as warm_tokenizer
from routing.runtime import Routing, open_routing

REDIS_POOL_SIZE = 64  # redis-py connections per worker (background users); more commands wait
REDIS_POOL_WAIT_S = 10.0  # a command that waits longer for a connection fails


@dataclass
class Resources:
    settings: Settings
    catalog: Catalog
    chat: ChatService
    engine: AsyncEngine
    redis: BackgroundRedis | None
    ledger: Ledger
    keys: Keyring
    routing: Routing | None = None
    llamacpp: LlamaCppMonitor | None = None
    metrics: GatewayMetrics | None = None

    def endpoint_stats(self) -> dict[str, dict[str, Any]]:
        """Live figures per endpoint id for the endpoints listing (from the routing snapshot)."""
        stats = {} if self.routing is None else self.routing.live.endpoint_stats()
        if self.llamacpp is not None:
            for endpoint_id, server in self.llamacpp.states().items():
                stats.setdefault(endpoint_id, {})["llamacpp"] = server
        return stats


def resources_in(state: State) -> Resources:
    """The app's resources, as the lifespan stored them in its state."""
    resources: Resources = state.resources
    return resources


def make_engine(settings: Settings) -> AsyncEngine:
    db = settings.database
    if db.is_sqlite:
        path = db.database_url.split(":///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return create_async_engine(db.database_url)
    return create_async_engine(db.database_url, pool_size=db.database_pool_size, pool_pre_ping=True)


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    async with AsyncExitStack() as stack:
        catalog = load_catalog(settings.catalog.catalog)
        http, transports = await open_transports(settings.upstream, catalog, stack)
        engine = make_engine(settings)
        stack.push_async_callback(engine.dispose)
        redis: BackgroundRedis | None = None
        resp: Commands | None = None
        if settings.redis.redis_url:
            topology = Topology.from_url(settings.redis.redis_url)
            if topology.kind == "single":
                # Bounded and waiting: redis-py's default pool raises MaxConnectionsError past
                # 100 concurrent commands (1,000 streams ending together) instead of queueing.
                pool = BlockingConnectionPool.from_url(
                    settings.redis.redis_url,
                    max_connections=REDIS_POOL_SIZE,
                    timeout=REDIS_POOL_WAIT_S,
                    **BACKGROUND_OPTIONS,
                )
                redis = Redis.from_pool(pool)  # closes the pool with the client
            else:
                redis = topology.background(**BACKGROUND_OPTIONS)
            stack.push_async_callback(redis.aclose)
            # The request path's limiter call and end-of-request batch: a few multiplexed
            # connections, far cheaper per command than redis-py (benchmarks/NOTES.md); redis-py
            # for a Cluster or Sentinel deployment.
            resp = topology.commands()
            stack.push_async_callback(resp.aclose)
        ledger = await stack.enter_async_context(open_ledger(settings, engine, redis, resp))
        keyring = await stack.enter_async_context(open_keyring(settings, engine, redis, resp))
        await register_prices(engine, catalog)  # what reports show each price version as
        providers: dict[str, Provider] = {"openai": OpenAICompatibleProvider(http, transports)}
        providers["llamacpp"] = LlamaCppProvider(http, transports)
        llamacpp = LlamaCppMonitor(
            http,
            [
                (ep, catalog.secret_for(ep))
                for ep in catalog.endpoints
                if ep.kind == "llamacpp" and catalog.status[ep.id].enabled
            ],
        )
        await llamacpp.start()
        stack.push_async_callback(llamacpp.aclose)
        share: RedisAffinityShare | None = None
        if resp is not None and settings.routing.affinity_shared:
            share = await stack.enter_async_context(
                open_affinity_share(resp, settings.redis.redis_prefix)
            )
        routing = await stack.enter_async_context(
            open_routing(
                settings.routing.config(),
                catalog,
                providers,
                redis,
                settings.redis.redis_prefix,
                # spill-over: busy or loading llama.cpp servers yield to the others
                availability=llamacpp.unavailable,
                affinity_share=share,
            )
        )
        planner, executor = routing.planner, routing.executor
        metrics = await stack.enter_async_context(
            open_metrics(open_breakers(catalog, routing.live.snapshot))
        )
        if ledger.spool is not None and isinstance(keyring.limiter, RedisLimiter):
            ledger.spool.settler = keyring.limiter  # spooled settlements are sent again too
        chat = ChatService(
            planner,
            executor,
            MeteredLedger(ledger, metrics),
            keyring.limiter,
            ledger.spool,
            affinity=routing.affinity if share is not None else None,
        )
        await asyncio.to_thread(warm_tokenizer)  # for answers that come back without usage
        yield Resources(
            settings,
            catalog,
            chat,
            engine,
            redis,
            ledger,
            keyring,
            routing,
            llamacpp,
            metrics,
        )
