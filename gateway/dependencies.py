"""The app's dependencies: each names one part the lifespan opened (or the caller), so a route
receives exactly the parts its parameters name and nothing else.

Not the parts themselves (`gateway.resources`) nor who the caller is (`gateway.keys.caller`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from litestar.datastructures import State
from litestar.di import Provide

from gateway.keys.caller import provide_api_key, provide_caller
from gateway.resources import Resources, resources_in

T = TypeVar("T")


def _part(read: Callable[[Resources], T]) -> Provide:
    """A dependency reading one part of the app's resources."""

    def provide(state: State) -> T:
        return read(resources_in(state))

    return Provide(provide, sync_to_thread=False)


DEPENDENCIES: dict[str, Provide] = {
    "settings": _part(lambda resources: resources.settings),
    "catalog": _part(lambda resources: resources.catalog),
    "engine": _part(lambda resources: resources.engine),
    "redis": _part(lambda resources: resources.redis),
    "keyring": _part(lambda resources: resources.keys),
    "ledger": _part(lambda resources: resources.ledger),
    "routing": _part(lambda resources: resources.routing),
    "llamacpp": _part(lambda resources: resources.llamacpp),
    "gateway_metrics": _part(lambda resources: resources.metrics),
    "endpoint_stats": _part(lambda resources: resources.endpoint_stats()),
    "caller": Provide(provide_caller, sync_to_thread=False),
    "api_key": Provide(provide_api_key, sync_to_thread=False),
}
