"""A generation event as the rows the ledger stores: one `generations` row, its `attempts`.
Pure; an event that cannot be stored exactly raises `InvalidEvent` before any transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from gateway.db.types import InexactMoney, exact_money
from gateway.ledger.events import GenerationEvent
from gateway.limits import (
    MAX_APP_CHARS,
    MAX_EXPLANATION_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_MODEL_CHARS,
)
from gateway.text import clean_optional, clean_text, clean_tree
from routing.executor import Attempt

MAX_TOKENS = 2**31 - 1  # INTEGER columns


class InvalidEvent(ValueError):
    """An event the ledger cannot store as it is (inexact money, naive time, absurd counts)."""


@dataclass(frozen=True, slots=True)
class LedgerRows:
    generation: dict[str, Any]
    attempts: list[dict[str, Any]]

    @property
    def id(self) -> str:
        generation_id: str = self.generation["id"]
        return generation_id


def app_of(referer: str | None, title: str | None) -> str:
    """The app a generation is attributed to: its `X-Title`, else its `HTTP-Referer`."""
    return title or referer or ""


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None:
        raise InvalidEvent(f"{what} has no timezone")
    return value.astimezone(UTC)


def _money(value: Decimal, what: str) -> Decimal:
    try:
        return exact_money(value)
    except InexactMoney as exc:
        raise InvalidEvent(f"{what}: {exc}") from exc


def _tokens(value: int, what: str) -> int:
    if not 0 <= value <= MAX_TOKENS:
        raise InvalidEvent(f"{what} out of range: {value}")
    return value


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _clip(text: str | None) -> str | None:
    # Postgres text can't hold NUL; an upstream message with one must not cost the row.
    return clean_optional(text, MAX_MESSAGE_CHARS)


def _builtins(tree: dict[str, Any] | None) -> dict[str, Any] | None:
    # JSONB refuses `\u0000`; entries come from the client (`models`) and upstreams.
    if tree is None:
        return None
    plain: dict[str, Any] = clean_tree(
        msgspec.to_builtins(tree, enc_hook=str), MAX_EXPLANATION_CHARS
    )
    return plain


def generation_row(event: GenerationEvent) -> dict[str, Any]:
    usage, cost = event.usage, event.cost
    return {
        "id": event.id,
        "created_at": _utc(event.created_at, "created_at"),
        "api_key_id": event.api_key_id,
        # Bounded again here (the edge already did): a replayed dead letter gets today's bounds.
        "app_referer": clean_optional(event.app_referer, MAX_APP_CHARS),
        "app_title": clean_optional(event.app_title, MAX_APP_CHARS),
        "requested_model": clean_text(event.requested_model, MAX_MODEL_CHARS),
        "model": event.model,
        "provider": event.provider,
        "endpoint_id": event.endpoint_id,
        "price_version": event.price_version,
        "mode": event.mode,
        "status": event.status,
        "http_status": event.http_status,
        "error_message": _clip(event.error_message),
        "finish_reason": event.finish_reason,
        "native_finish_reason": event.native_finish_reason,
        "streamed": event.streamed,
        "cancelled": event.cancelled,
        "prompt_tokens": _tokens(usage.prompt_tokens, "prompt_tokens"),
        "completion_tokens": _tokens(usage.completion_tokens, "completion_tokens"),
        "cached_tokens": _tokens(usage.cached_tokens, "cached_tokens"),
        "cache_write_tokens": _tokens(usage.cache_write_tokens, "cache_write_tokens"),
        "reasoning_tokens": _tokens(usage.reasoning_tokens, "reasoning_tokens"),
        "cost": _money(cost.total, "cost"),
        "prompt_cost": _money(cost.prompt, "prompt_cost"),
        "completion_cost": _money(cost.completion, "completion_cost"),
        "request_cost": _money(cost.request, "request_cost"),
        "cache_discount": _money(cost.cache_discount, "cache_discount"),
        "upstream_cost": (
            None if event.upstream_cost is None else _money(event.upstream_cost, "upstream_cost")
        ),
        "latency_ms": event.latency_s * 1000.0,
        "ttft_ms": _ms(event.ttft_s),
        "generation_ms": _ms(event.generation_s),
        "throughput": event.throughput,
        "attempt_count": len(event.attempts),
        "explanation": _builtins(event.explanation),
        "session_id": _clip(event.session_id),
        "external_user": event.external_user,
        "upstream_id": _clip(event.upstream_id),
    }


def attempt_row(generation: dict[str, Any], seq: int, attempt: Attempt) -> dict[str, Any]:
    started = _utc(attempt.started_at, f"attempt {seq} started_at")
    return {
        "generation_id": generation["id"],
        "seq": seq,
        "created_at": generation["created_at"],
        "endpoint_id": attempt.endpoint_id,
        "provider": attempt.provider,
        "started_at": started,
        "ended_at": started + timedelta(seconds=attempt.latency_s),
        "outcome": attempt.outcome,
        "http_status": attempt.status,
        "error_class": attempt.error_class,
        "error_message": _clip(attempt.message),
        "latency_ms": attempt.latency_s * 1000.0,
        "ttft_ms": _ms(attempt.ttft_s),
    }


def rows_of(event: GenerationEvent) -> LedgerRows:
    """Both tables' rows for one event, or `InvalidEvent` saying what cannot be stored."""
    generation = generation_row(event)
    attempts = [attempt_row(generation, seq, a) for seq, a in enumerate(event.attempts)]
    return LedgerRows(generation, attempts)
