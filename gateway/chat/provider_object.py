"""OpenRouter's `provider` object (and `route`) read leniently into `ProviderPreferences`.

OpenRouter clients send numbers as numeric strings, `null` for "not set", and fields this
gateway doesn't act on; all of that is accepted. Fields without effect here are returned as
`ignored` (field -> why) for the routing explanation, never forwarded upstream. A value of
the wrong type or outside its set is a 400 naming the field. Not for routing decisions.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from gateway.errors import BadRequest
from routing.preferences import ProviderPreferences

LISTS = ("order", "only", "ignore", "quantizations")
FLAGS = ("allow_fallbacks", "require_parameters", "zdr")
SORTS = ("price", "throughput", "latency", "exacto")
PARTITIONS = ("model", "none")
PERCENTILES = ("p50", "p75", "p90", "p99")
PRICES = ("prompt", "completion", "request")
# OpenRouter's `route`: "fallback" keeps fallback models behind the requested one, "sort"
# sorts every endpoint of every model together (= `provider.sort.partition`).
ROUTES = {"fallback": "model", "sort": "none"}
# Documented fields the gateway accepts but has nothing to act on.
WITHOUT_EFFECT = {
    "enforce_distillable_text": "the catalog records no distillation policy per model",
    "max_price.image": "the catalog's models take text only",
    "max_price.audio": "the catalog's models take text only",
}
UNKNOWN = "not a field of OpenRouter's provider preferences"


def decode_provider(
    raw: Any, route: Any = None
) -> tuple[ProviderPreferences | None, dict[str, str]]:
    """The preferences (None when nothing is set) and the fields ignored, with why."""
    ignored: dict[str, str] = {}
    partition = _route(route)
    if raw is None and partition is None:
        return None, ignored
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _bad("provider", "must be an object")
    fields: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue  # null means absent, as in OpenRouter's schema
        if name in LISTS:
            fields[name] = _names(f"provider.{name}", value)
        elif name in FLAGS:
            fields[name] = _flag(f"provider.{name}", value)
        elif name == "data_collection":
            fields[name] = _choice("provider.data_collection", value, ("allow", "deny"))
        elif name == "sort":
            fields[name] = _sort(value)
        elif name == "max_price":
            fields[name] = _max_price(value, ignored)
        elif name in ("preferred_min_throughput", "preferred_max_latency"):
            fields[name] = _threshold(f"provider.{name}", value)
        elif name in WITHOUT_EFFECT:
            _flag(f"provider.{name}", value)
            ignored[f"provider.{name}"] = WITHOUT_EFFECT[name]
        else:
            ignored[f"provider.{name}"] = UNKNOWN
    if partition is not None:
        fields["sort"] = _with_partition(fields.get("sort"), partition)
    return msgspec.convert(fields, ProviderPreferences), ignored


def _bad(field: str, why: str) -> BadRequest:
    return BadRequest(f"invalid request: `{field}` {why}", metadata={"field": field})


def _route(value: Any) -> str | None:
    if value is None:
        return None
    if value not in ROUTES:
        raise _bad("route", f"must be one of {', '.join(map(repr, ROUTES))}")
    return ROUTES[value]


def _names(field: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise _bad(field, "must be a list of strings")


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(field, "must be true, false or null")
    return value


def _choice(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _bad(field, f"must be one of {', '.join(map(repr, allowed))}")
    return str(value)


def number(field: str, value: Any) -> float:
    """A JSON number or a numeric string, finite and not negative."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _bad(field, "must be a number or a numeric string")
    if isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:
            raise _bad(field, f"is not a number: {value[:40]!r}") from None
        if not parsed.is_finite():
            raise _bad(field, "must be finite")
        value = float(parsed)
    if not math.isfinite(value):
        raise _bad(field, "must be finite")
    if value < 0:
        raise _bad(field, "must not be negative")
    return float(value)


def _sort(value: Any) -> Any:
    if isinstance(value, str):
        return _choice("provider.sort", value, SORTS)
    if not isinstance(value, dict):
        raise _bad("provider.sort", f"must be one of {', '.join(map(repr, SORTS))} or an object")
    sort: dict[str, str] = {}
    by, partition = value.get("by"), value.get("partition")
    if by is not None:
        sort["by"] = _choice("provider.sort.by", by, SORTS)
    if partition is not None:
        sort["partition"] = _choice("provider.sort.partition", partition, PARTITIONS)
    unknown = set(value) - {"by", "partition"}
    if unknown:
        raise _bad(f"provider.sort.{sorted(unknown)[0]}", "is not a field of provider.sort")
    return sort


def _with_partition(sort: Any, partition: str) -> Any:
    """`route` sets the partition unless `provider.sort` names one itself."""
    if sort is None:
        return {"partition": partition}
    if isinstance(sort, str):
        return {"by": sort, "partition": partition}
    return {"partition": partition, **sort}


def _max_price(value: Any, ignored: dict[str, str]) -> dict[str, float]:
    if not isinstance(value, dict):
        raise _bad("provider.max_price", "must be an object")
    prices: dict[str, float] = {}
    for name, price in value.items():
        field = f"provider.max_price.{name}"
        if price is None:
            continue
        if name in PRICES:
            prices[name] = number(field, price)
        elif f"max_price.{name}" in WITHOUT_EFFECT:
            number(field, price)
            ignored[field] = WITHOUT_EFFECT[f"max_price.{name}"]
        else:
            ignored[field] = UNKNOWN
    return prices


def _threshold(field: str, value: Any) -> float | dict[str, float]:
    if not isinstance(value, dict):
        return number(field, value)
    cutoffs: dict[str, float] = {}
    for name, cutoff in value.items():
        if name not in PERCENTILES:
            raise _bad(f"{field}.{name}", "is not one of p50, p75, p90, p99")
        if cutoff is not None:
            cutoffs[name] = number(f"{field}.{name}", cutoff)
    return cutoffs
