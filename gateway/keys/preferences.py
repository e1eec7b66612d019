"""A key's routing defaults applied to a request: its mode, and provider preferences that the
request may narrow but never widen (an allowlist stays an allowlist). Pure."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgspec

from gateway.errors import BadRequest
from gateway.keys.record import ApiKey
from routing.preferences import NO_PREFERENCES, MaxPrice, ProviderPreferences, RouteRequest


def preferences_json(preferences: ProviderPreferences) -> dict[str, Any]:
    """The preferences as JSON builtins, only the fields that differ from the defaults."""
    builtins: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(preferences))
    return {
        name: value
        for name, value in builtins.items()
        if getattr(preferences, name) != getattr(NO_PREFERENCES, name)
    }


def _narrowest(
    asked: tuple[str, ...] | None, allowed: tuple[str, ...] | None
) -> tuple[str, ...] | None:
    """The asked names the key allows (matched as filters match: case-insensitively)."""
    if allowed is None:
        return asked
    if asked is None:
        return allowed
    names = {name.lower() for name in allowed}
    return tuple(name for name in asked if name.lower() in names)


def _refuse_empty(
    field: str, merged: tuple[str, ...] | None, allowed: tuple[str, ...] | None
) -> None:
    """An empty intersection is no endpoint at all, never "no filter"."""
    if merged is not None and not merged and allowed:
        raise BadRequest(
            f"provider.{field} names nothing this key may use",
            metadata={"field": f"provider.{field}", "allowed": list(allowed)},
        )


def _order(asked: ProviderPreferences, key: ProviderPreferences) -> tuple[str, ...] | None:
    """The request's order; within the key's when the key allows nothing else (order with
    allow_fallbacks false), so a request can't name a provider outside it."""
    if not key.order or key.allow_fallbacks:
        return asked.order if asked.order is not None else key.order
    order = _narrowest(asked.order or None, key.order)
    _refuse_empty("order", order, key.order)
    return order


def _lowest(asked: float | None, allowed: float | None) -> float | None:
    if asked is None or allowed is None:
        return allowed if asked is None else asked
    return min(asked, allowed)


def _max_price(asked: MaxPrice | None, allowed: MaxPrice | None) -> MaxPrice | None:
    if asked is None or allowed is None:
        return allowed if asked is None else asked
    return MaxPrice(
        prompt=_lowest(asked.prompt, allowed.prompt),
        completion=_lowest(asked.completion, allowed.completion),
        request=_lowest(asked.request, allowed.request),
        image=_lowest(asked.image, allowed.image),
    )


def merge_preferences(asked: ProviderPreferences, key: ProviderPreferences) -> ProviderPreferences:
    """The request's preferences within the key's: restrictions add up, defaults fill gaps."""
    only = _narrowest(asked.only, key.only)
    _refuse_empty("only", only, key.only)
    quantizations = _narrowest(asked.quantizations or None, key.quantizations or None)
    _refuse_empty("quantizations", quantizations, key.quantizations)
    ignore = tuple(dict.fromkeys((*(key.ignore or ()), *(asked.ignore or ())))) or None
    return msgspec.structs.replace(
        asked,
        only=only,
        ignore=ignore,
        quantizations=quantizations,
        order=_order(asked, key),
        allow_fallbacks=asked.allow_fallbacks and key.allow_fallbacks,
        require_parameters=asked.require_parameters or key.require_parameters,
        data_collection="deny" if key.data_collection == "deny" else asked.data_collection,
        zdr=asked.zdr if key.zdr is None else bool(asked.zdr or key.zdr),
        sort=asked.sort if asked.sort is not None else key.sort,
        max_price=_max_price(asked.max_price, key.max_price),
        preferred_min_throughput=(
            asked.preferred_min_throughput
            if asked.preferred_min_throughput is not None
            else key.preferred_min_throughput
        ),
        preferred_max_latency=(
            asked.preferred_max_latency
            if asked.preferred_max_latency is not None
            else key.preferred_max_latency
        ),
    )


def route_for_key(route: RouteRequest, key: ApiKey) -> RouteRequest:
    """`route` as decoded with the key's default mode, with the key's pins enforced."""
    if key.pin_mode and key.default_mode is not None:
        # A pinned mode wins like a model suffix does: over the request's suffix and its sort.
        route = replace(route, mode=key.default_mode, mode_from_suffix=True)
    if key.provider is None:
        return route
    return replace(route, preferences=merge_preferences(route.preferences, key.provider))
