"""Daily partition names, bounds and which days retention drops."""

from __future__ import annotations

from datetime import date

from gateway.ledger.partitions import (
    create_statement,
    day_of_partition,
    expired,
    partition_name,
    upcoming,
)


def test_names_round_trip() -> None:
    day = date(2025, 3, 14)
    assert partition_name("generations", day) == "generations_p20250314"
    assert day_of_partition("generations", "generations_p20250314") == day
    assert day_of_partition("attempts", "generations_p20250314") is None
    assert day_of_partition("generations", "generations_default") is None


def test_bounds_are_one_utc_day() -> None:
    sql = create_statement("attempts", date(2025, 12, 31))
    assert '"attempts_p20251231" PARTITION OF "attempts"' in sql
    assert "FROM ('2025-12-31T00:00:00+00:00') TO ('2026-01-01T00:00:00+00:00')" in sql


def test_retention_keeps_exactly_the_window() -> None:
    today = date(2025, 3, 14)
    days = {date(2025, 2, 10), date(2025, 2, 11), date(2025, 2, 12), today}
    # Feb 12 is 30 days before Mar 14: its rows are not all past retention yet.
    assert expired(days, today, retention_days=30) == {date(2025, 2, 10), date(2025, 2, 11)}


def test_upcoming_includes_today() -> None:
    assert upcoming(date(2025, 3, 14), 2) == {
        date(2025, 3, 14),
        date(2025, 3, 15),
        date(2025, 3, 16),
    }
