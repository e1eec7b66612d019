"""The app's dependencies: each names one part the lifespan opened (or the caller), so a route
receives exactly the parts its parameters name and nothing else.

Not the parts themselves (`gateway.resources`) nor who the caller is (`gateway.keys.caller`).
"""

from __future__ import annotations

from typing import Any

from litestar.datastructures import State
from litestar.di import Provide
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.keys.caller import provide_api_key, provide_caller
from gateway.keys.keyring import Keyring
from gateway.ledger.lifecycle import Ledger
from gateway.metrics.prometheus import GatewayMetrics
from gateway.resources import resources_in
from gateway.settings import Settings
from providers.catalog import Catalog
from providers.llamacpp_health import LlamaCppMonitor
from routing.runtime import Routing


def _settings(state: State) -> Settings:
    return resources_in(state).settings


def _catalog(state: State) -> Catalog:
    return resources_in(state).catalog


def _engine(state: State) -> AsyncEngine:
    return resources_in(state).engine


def _redis(state: State) -> Redis | None:
    return resources_in(state).redis


def _keyring(state: State) -> Keyring:
    return resources_in(state).keys


def _ledger(state: State) -> Ledger:
    return resources_in(state).ledger


def _routing(state: State) -> Routing | None:
    return resources_in(state).routing


def _llamacpp(state: State) -> LlamaCppMonitor | None:
    return resources_in(state).llamacpp


def _gateway_metrics(state: State) -> GatewayMetrics | None:
    return resources_in(state).metrics


def _endpoint_stats(state: State) -> dict[str, dict[str, Any]]:
    return resources_in(state).endpoint_stats()


def _sync(provider: Any) -> Provide:
    return Provide(provider, sync_to_thread=False)


DEPENDENCIES: dict[str, Provide] = {
    "settings": _sync(_settings),
    "catalog": _sync(_catalog),
    "engine": _sync(_engine),
    "redis": _sync(_redis),
    "keyring": _sync(_keyring),
    "ledger": _sync(_ledger),
    "routing": _sync(_routing),
    "llamacpp": _sync(_llamacpp),
    "gateway_metrics": _sync(_gateway_metrics),
    "endpoint_stats": _sync(_endpoint_stats),
    "caller": _sync(provide_caller),
    "api_key": _sync(provide_api_key),
}
