"""Events become rows exactly, or are refused before any transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from gateway.ledger.rows import InvalidEvent, app_of, rows_of
from providers.pricing import Cost
from providers.usage import Usage
from tests.unit.gateway.ledger.factories import NOW, make_event


def test_generation_row_carries_tokens_money_and_timing() -> None:
    row = rows_of(make_event()).generation
    assert row["cost"] == Decimal("0.0001644")
    assert row["cache_discount"] == Decimal("0.0000384")
    assert row["cached_tokens"] == 1024 and row["reasoning_tokens"] == 40
    assert row["latency_ms"] == 500.0 and row["ttft_ms"] == 100.0
    assert row["throughput"] == pytest.approx(750.0)  # 300 tokens in 0.4 s
    assert row["attempt_count"] == 2
    assert row["explanation"] == {"scores": {"groq": "0.5"}}


def test_attempt_rows_are_numbered_and_timed() -> None:
    first, second = rows_of(make_event()).attempts
    assert (first["seq"], first["outcome"], first["http_status"]) == (0, "http", 500)
    assert first["error_class"] == "UpstreamServerError"
    assert second["seq"] == 1 and second["outcome"] == "ok"
    assert second["ended_at"] - second["started_at"] == timedelta(seconds=0.45)
    assert first["created_at"] == second["created_at"] == NOW


def test_money_finer_than_a_picodollar_is_refused() -> None:
    cost = Cost(Decimal("1e-13"), Decimal(0), Decimal(0), Decimal(0))
    with pytest.raises(InvalidEvent, match="finer"):
        rows_of(make_event(cost=cost))


def test_float_money_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="Decimal"):
        rows_of(make_event(upstream_cost=0.1))


def test_naive_time_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="timezone"):
        rows_of(make_event(created_at=datetime(2025, 1, 1)))


def test_negative_tokens_are_refused() -> None:
    with pytest.raises(InvalidEvent, match="prompt_tokens"):
        rows_of(make_event(usage=Usage(prompt_tokens=-1)))


def test_app_prefers_the_title() -> None:
    assert app_of("https://a.example", "A") == "A"
    assert app_of("https://a.example", None) == "https://a.example"
    assert app_of(None, None) == ""
