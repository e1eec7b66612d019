"""The stats API's pure parts: periods are rounded and bounded as documented, money and paid
prices are exact strings, and uptime history counts what the live stats count."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import BadRequest
from gateway.stats import params, views

NOW = datetime(2026, 12, 5, 9, 41, 7, tzinfo=UTC)


def test_default_period_is_the_last_day_in_whole_hours() -> None:
    period = params.period_of(None, None, NOW, "hour")
    assert period.since == datetime(2026, 12, 4, 10, tzinfo=UTC)
    assert period.until == datetime(2026, 12, 5, 10, tzinfo=UTC)


def test_dates_are_whole_days_and_to_is_included() -> None:
    period = params.period_of("2026-11-01", "2026-11-30", NOW, "day")
    assert period.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert period.until == datetime(2026, 12, 1, tzinfo=UTC)
    assert period.whole_days


def test_day_buckets_and_long_periods_round_out_to_days() -> None:
    day = params.period_of("2026-11-20T13:30:00Z", None, NOW, "day")
    assert (day.since, day.until) == (
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(2026, 12, 6, tzinfo=UTC),
    )
    short = params.period_of("2026-12-04T13:30:00", None, NOW)  # no zone: UTC
    assert short.since == datetime(2026, 12, 4, 13, tzinfo=UTC) and not short.whole_days
    long = params.period_of("2026-11-04T13:30:00", None, NOW)
    assert long.whole_days


@pytest.mark.parametrize(
    ("start", "end", "bucket"),
    [
        ("yesterday", None, "hour"),
        ("2026-12-05", "2026-12-01", "hour"),
        ("2026-10-01", None, "hour"),  # 65 days of hours
        ("2024-01-01", None, "day"),  # more than a year of days
    ],
)
def test_bad_or_unbounded_periods_are_a_400(start: str, end: str | None, bucket: str) -> None:
    with pytest.raises(BadRequest) as refused:
        params.period_of(start, end, NOW, bucket)  # type: ignore[arg-type]
    assert refused.value.metadata["parameter"] in {"from", "to"}


def test_choices_name_the_parameter() -> None:
    assert params.group_by_of(None) == "model"
    assert params.window_of("30d") == "30d"
    with pytest.raises(BadRequest) as refused:
        params.bucket_of("minute")
    assert refused.value.metadata == {"parameter": "bucket", "allowed": ["hour", "day"]}
    with pytest.raises(BadRequest):
        params.limit_of(0, 20, 500)


@given(
    cost=st.decimals(min_value=0, max_value=10**6, places=12, allow_nan=False),
    tokens=st.integers(min_value=1, max_value=10**12),
)
def test_paid_price_is_the_exact_quotient_to_18_places(cost: Decimal, tokens: int) -> None:
    text = views.per_token(cost, tokens)
    assert text is not None and "E" not in text and "e" not in text
    assert abs(Decimal(text) - cost / tokens) <= Decimal("0.5e-18")


def test_money_is_a_plain_decimal_string() -> None:
    assert views.money(Decimal("0.000123000000")) == "0.000123"
    assert views.money(Decimal("12.000000000000")) == "12"
    assert views.money(Decimal(0)) == "0"
    assert views.per_token(Decimal(1), 0) is None


def test_uptime_counts_what_the_live_stats_count() -> None:
    assert views.uptime_class("ok", "") == "ok"
    assert views.uptime_class("http", "UpstreamServerError") == "error"
    assert views.uptime_class("http", "UpstreamRateLimited") is None  # rate limiting
    assert views.uptime_class("http", "UpstreamBadRequest") is None  # the client's fault
    assert views.uptime_class("unavailable", "UpstreamUnavailable") is None
    assert views.uptime_class("error_finish", "") == "error"
    assert views.uptime_class("cancelled", "") is None


def test_history_rows_join_usage_and_attempt_outcomes() -> None:
    hour = datetime(2026, 12, 5, 9, tzinfo=UTC)
    usage = [
        {
            "bucket": hour,
            "provider": "groq",
            "requests": 4,
            "errors": 1,
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "latency_ms_sum": 400.0,
            "ttft_ms_sum": 90.0,
            "ttft_count": 3,
            "throughput_sum": 300.0,
            "throughput_count": 3,
        }
    ]
    outcomes = [
        {"bucket": hour, "provider": "groq", "outcome": "ok", "error_class": "", "attempts": 3},
        {
            "bucket": hour,
            "provider": "groq",
            "outcome": "http",
            "error_class": "UpstreamServerError",
            "attempts": 1,
        },
        {
            "bucket": hour,
            "provider": "groq",
            "outcome": "http",
            "error_class": "UpstreamRateLimited",
            "attempts": 5,
        },
    ]
    (row,) = views.history_rows(usage, outcomes)
    assert row["uptime"] == 75.0 and row["latency_ms"] == 100.0 and row["ttft_ms"] == 30.0
    assert row["throughput"] == 100.0 and row["tokens"] == 15
