"""The daily usage rollup that billing reports read: newly inserted generations summed exactly
per (UTC day, key, app, model, provider, endpoint, price version). Pure aggregation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, date
from decimal import Decimal
from typing import Any

from gateway.ledger.rollup import row_of, summed, usage_of
from gateway.ledger.rows import app_of

DAILY_KEY_COLUMNS = (
    "day",
    "api_key_id",
    "app",
    "model",
    "provider",
    "endpoint_id",
    "price_version",
)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, order=True)
class DailyKey:
    day: date
    api_key_id: str
    app: str
    model: str
    provider: str
    endpoint_id: str
    price_version: str


@dataclass(slots=True)
class DailySums:
    requests: int = 0
    errors: int = 0
    cancelled: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal = ZERO
    cache_discount: Decimal = ZERO

    def add(self, other: DailySums) -> None:
        # Spelled out: reports add up to tens of thousands of rows per request.
        self.requests += other.requests
        self.errors += other.errors
        self.cancelled += other.cancelled
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.cost += other.cost
        self.cache_discount += other.cache_discount

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


DAILY_SUM_COLUMNS = tuple(f.name for f in fields(DailySums))


def daily_key_of(generation: dict[str, Any]) -> DailyKey:
    return DailyKey(
        day=generation["created_at"].astimezone(UTC).date(),
        api_key_id=generation["api_key_id"] or "",
        app=app_of(generation["app_referer"], generation["app_title"]),
        model=generation["model"],
        provider=generation["provider"] or "",
        endpoint_id=generation["endpoint_id"] or "",
        price_version=generation.get("price_version") or "",
    )


def daily_sums_of(generation: dict[str, Any]) -> DailySums:
    return DailySums(**usage_of(generation))


def daily_rollup(generations: Iterable[dict[str, Any]]) -> dict[DailyKey, DailySums]:
    """Sum generation rows per daily key, in key order (a fixed lock order for upserts)."""
    return summed(generations, daily_key_of, daily_sums_of)


def daily_row(key: DailyKey, sums: DailySums) -> dict[str, Any]:
    return row_of(key, sums, DAILY_KEY_COLUMNS)
