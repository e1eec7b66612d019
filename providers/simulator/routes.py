"""Maps request paths to the fleet: `/{provider}/v1/...` to a simulated provider, the rest to
the control API or a 404 in OpenAI error shape.
"""

from __future__ import annotations

from collections.abc import Mapping

from providers.simulator import wire
from providers.simulator.control import PREFIX, ControlApi
from providers.simulator.protocol import Exchange, Request
from providers.simulator.provider import SimulatedProvider, Work


class FleetRoutes:
    """The request handler of the simulator's HTTP server."""

    def __init__(self, providers: Mapping[str, SimulatedProvider]) -> None:
        self._providers = providers
        self._control = ControlApi(providers)

    def __call__(self, request: Request, exchange: Exchange) -> Work:
        path = request.path
        if path.startswith(PREFIX):
            self._control.handle(request, exchange)
            return None
        name, _, route = path[1:].partition("/")
        provider = self._providers.get(name)
        if provider is not None and route == "v1/chat/completions":
            if request.method == "POST":
                return provider.chat(request, exchange)
            wire.send_not_allowed(exchange, "POST")
        elif provider is not None and route == "v1/models":
            if request.method == "GET":
                provider.models(request, exchange)
            else:
                wire.send_not_allowed(exchange, "GET")
        elif provider is None:
            message = f"unknown provider {name!r} in {path}"
            wire.send_error(exchange, 404, message, code="unknown_url")
        else:
            message = f"no route {request.method} {path}"
            wire.send_error(exchange, 404, message, code="unknown_url")
        return None
