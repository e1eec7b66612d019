"""The hourly usage rollup: newly inserted generations summed exactly (Decimal) per
(hour, key, model, provider, app). Pure aggregation; `gateway.ledger.store` applies it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

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


def sums_of(generation: dict[str, Any]) -> RollupSums:
    return RollupSums(
        requests=1,
        errors=int(generation["status"] == "error"),
        cancelled=int(bool(generation["cancelled"])),
        attempts=generation["attempt_count"],
        prompt_tokens=generation["prompt_tokens"],
        completion_tokens=generation["completion_tokens"],
        cached_tokens=generation["cached_tokens"],
        cache_write_tokens=generation["cache_write_tokens"],
        reasoning_tokens=generation["reasoning_tokens"],
        cost=generation["cost"],
        cache_discount=generation["cache_discount"],
        upstream_cost=generation["upstream_cost"] or ZERO,
        latency_ms_sum=generation["latency_ms"],
    )


def rollup(generations: Iterable[dict[str, Any]]) -> dict[RollupKey, RollupSums]:
    """Sum generation rows per rollup key, in key order (a fixed lock order for upserts)."""
    totals: dict[RollupKey, RollupSums] = {}
    for generation in generations:
        totals.setdefault(key_of(generation), RollupSums()).add(sums_of(generation))
    return dict(sorted(totals.items()))


def rollup_row(key: RollupKey, sums: RollupSums) -> dict[str, Any]:
    return {name: getattr(key, name) for name in KEY_COLUMNS} | sums.as_dict()
