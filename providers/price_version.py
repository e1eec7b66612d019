"""Price versions: a short id for the prices an endpoint bills at, and one for a catalog's
prices. A generation records its endpoint's version so reports keep price changes apart.

Pure; content-addressed (the same prices always get the same id, on any replica or restart).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

from providers.catalog import Catalog, Endpoint, Price

VERSION_HEX = 12  # 48 bits: collisions among an install's few hundred versions are not a concern


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """The five prices a generation is billed at (USD per 1M tokens; `request` per request),
    with the catalog's defaults applied (cache_read and cache_write default to prompt)."""

    prompt: Decimal
    completion: Decimal
    cache_read: Decimal
    cache_write: Decimal
    request: Decimal


def unit_prices(price: Price) -> UnitPrices:
    return UnitPrices(
        prompt=price.prompt,
        completion=price.completion,
        cache_read=price.effective_cache_read(),
        cache_write=price.prompt if price.cache_write is None else price.cache_write,
        request=price.request,
    )


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")  # "0.30" and "0.3" are one price


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:VERSION_HEX]


_versions: dict[tuple[str, Price], str] = {}


def price_version(endpoint: Endpoint) -> str:
    """The version id of `endpoint`'s prices (cached: called once per generation)."""
    key = (endpoint.id, endpoint.price)
    found = _versions.get(key)
    if found is None:
        units = unit_prices(endpoint.price)
        parts = (units.prompt, units.completion, units.cache_read, units.cache_write, units.request)
        found = _digest("\n".join([endpoint.id, *map(_plain, parts)]))
        if len(_versions) < 10_000:  # bounded: catalogs are loaded a handful of times
            _versions[key] = found
    return found


def catalog_version(catalog: Catalog) -> str:
    """The version id of every endpoint's prices in `catalog` (other settings don't count)."""
    return _digest("\n".join(sorted(price_version(ep) for ep in catalog.endpoints)))
