"""The hourly usage rollup: newly inserted generations summed exactly (Decimal) per
(hour, key, model, provider, app). Pure aggregation; `gateway.ledger.store` applies it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from gateway.ledger.rows import app_of

KEY_COLUMNS = ("hour", "api_key_id", "model", "provider", "app")
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, order=True)
class RollupKey:
    hour: datetime
    api_key_id: str
    model: str
    provider: str
    app: str


@dataclass(slots=True)
class RollupSums:
    requests: int = 0
    errors: int = 0
    cancelled: int = 0
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal = ZERO
    cache_discount: Decimal = ZERO
    upstream_cost: Decimal = ZERO
    latency_ms_sum: float = 0.0

    def add(self, other: RollupSums) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


SUM_COLUMNS = tuple(f.name for f in fields(RollupSums))


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def key_of(generation: dict[str, Any]) -> RollupKey:
    return RollupKey(
        hour=hour_of(generation["created_at"]),
        api_key_id=generation["api_key_id"] or "",
        model=generation["model"],
        provider=generation["provider"] or "",
        app=app_of(generation["app_referer"], generation["app_title"]),
    )


def usage_of(generation: dict[str, Any]) -> dict[str, Any]:
    """What every usage rollup (hourly here, daily for billing) counts of one generation."""
    return {
        "requests": 1,
        "errors": int(generation["status"] == "error"),
        "cancelled": int(bool(generation["cancelled"])),
        "prompt_tokens": generation["prompt_tokens"],
        "completion_tokens": generation["completion_tokens"],
        "cached_tokens": generation["cached_tokens"],
        "cache_write_tokens": generation["cache_write_tokens"],
        "reasoning_tokens": generation["reasoning_tokens"],
        "cost": generation["cost"],
        "cache_discount": generation["cache_discount"],
    }


def sums_of(generation: dict[str, Any]) -> RollupSums:
    return RollupSums(
        **usage_of(generation),
        attempts=generation["attempt_count"],
        upstream_cost=generation["upstream_cost"] or ZERO,
        latency_ms_sum=generation["latency_ms"],
    )


class Sums(Protocol):
    def add(self, other: Any, /) -> None: ...

    def as_dict(self) -> dict[str, Any]: ...


K = TypeVar("K")
S = TypeVar("S", bound=Sums)


def summed(
    generations: Iterable[dict[str, Any]],
    key: Callable[[dict[str, Any]], K],
    sums: Callable[[dict[str, Any]], S],
) -> dict[K, S]:
    """Generation rows summed per key, in key order (a fixed lock order for upserts)."""
    totals: dict[K, S] = {}
    for generation in generations:
        found = totals.get(k := key(generation))
        if found is None:
            totals[k] = sums(generation)
        else:
            found.add(sums(generation))
    return dict(sorted(totals.items()))


def row_of(key: object, sums: Sums, key_columns: Iterable[str]) -> dict[str, Any]:
    """One upsert row: the key's columns, then the sums."""
    return {name: getattr(key, name) for name in key_columns} | sums.as_dict()


def rollup(generations: Iterable[dict[str, Any]]) -> dict[RollupKey, RollupSums]:
    """Sum generation rows per rollup key, in key order (a fixed lock order for upserts)."""
    return summed(generations, key_of, sums_of)


def rollup_row(key: RollupKey, sums: RollupSums) -> dict[str, Any]:
    return row_of(key, sums, KEY_COLUMNS)
