"""The control API under `/_control/`: read and patch profiles live, read and reset stats.

JSON in and out; changes apply to the next request, no restart. Not authenticated: bind the
simulator to loopback (the default) or a trusted network.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from providers.simulator import wire
from providers.simulator.profile import ProfileError, profile_to_dict
from providers.simulator.protocol import Exchange, Request
from providers.simulator.provider import SimulatedProvider

PREFIX = "/_control/"


class ControlApi:
    """Routes `/_control/...` requests over the fleet's providers."""

    def __init__(self, providers: Mapping[str, SimulatedProvider]) -> None:
        self._providers = providers

    def handle(self, request: Request, exchange: Exchange) -> None:
        route = request.path[len(PREFIX) :].rstrip("/")
        method = request.method
        if route == "providers":
            if method != "GET":
                return wire.send_not_allowed(exchange, "GET")
            profiles = {
                name: profile_to_dict(provider.profile, redact=True)
                for name, provider in self._providers.items()
            }
            return _ok(exchange, {"providers": profiles})
        if route.startswith("providers/"):
            return self._provider(request, exchange, route[len("providers/") :])
        if route == "stats":
            if method != "GET":
                return wire.send_not_allowed(exchange, "GET")
            stats = {name: provider.stats for name, provider in self._providers.items()}
            return _ok(exchange, {"providers": msgspec.to_builtins(stats)})
        if route == "reset":
            if method != "POST":
                return wire.send_not_allowed(exchange, "POST")
            for provider in self._providers.values():
                provider.reset()
            return _ok(exchange, {"reset": True})
        return wire.send_error(exchange, 404, f"no control route {request.path}", code="not_found")

    def _provider(self, request: Request, exchange: Exchange, name: str) -> None:
        provider = self._providers.get(name)
        if provider is None:
            return wire.send_error(
                exchange, 404, f"unknown provider {name!r}", code="provider_not_found"
            )
        if request.method == "GET":
            return _ok(exchange, profile_to_dict(provider.profile, redact=True))
        if request.method != "PATCH":
            return wire.send_not_allowed(exchange, "GET, PATCH")
        try:
            changes = msgspec.json.decode(request.body)
        except msgspec.DecodeError as exc:
            return wire.send_error(exchange, 400, f"body is not JSON: {exc}", code="invalid_json")
        if not isinstance(changes, dict):
            return wire.send_error(
                exchange, 400, "body must be a JSON object (a partial profile)", code=None
            )
        try:
            updated = provider.update(changes)
        except ProfileError as exc:
            return wire.send_error(
                exchange, 400, f"invalid profile change: {exc}", code="invalid_profile"
            )
        return _ok(exchange, profile_to_dict(updated, redact=True))


def _ok(exchange: Exchange, value: object) -> None:
    exchange.respond(200, wire.json_body(value))
