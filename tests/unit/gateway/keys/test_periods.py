"""UTC periods: counter ids and when a limit resets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from gateway.keys.periods import next_reset, periods_at


def test_period_ids_are_utc_day_iso_week_and_month():
    local = datetime(2026, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=3)))  # 2025-12-31 UTC
    periods = periods_at(local)
    assert (periods.daily, periods.weekly, periods.monthly) == ("2025-12-31", "2026-W01", "2025-12")
    assert periods.of("daily") == "d:2025-12-31"
    assert periods.of("weekly") == "w:2026-W01"
    assert periods.of("monthly") == "m:2025-12"
    assert periods.of("none") == "total"
    assert periods.counters() == ("total", "d:2025-12-31", "w:2026-W01", "m:2025-12")


def test_next_reset():
    now = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)  # a Wednesday
    assert next_reset("daily", now) == datetime(2026, 11, 26, tzinfo=UTC)
    assert next_reset("weekly", now) == datetime(2026, 11, 30, tzinfo=UTC)  # Monday
    assert next_reset("monthly", now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert next_reset("monthly", datetime(2026, 12, 31, 23, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    assert next_reset("none", now) is None


def test_period_ids_follow_the_utc_day_from_one_call_to_the_next():
    # The ids are cached per UTC day: consecutive calls across midnight must not reuse them.
    before = periods_at(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC))
    after = periods_at(datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC))
    again = periods_at(datetime(2026, 11, 30, 21, 0, tzinfo=timezone(timedelta(hours=-3))))
    assert (before.daily, before.weekly, before.monthly) == ("2026-11-30", "2026-W49", "2026-11")
    assert (after.daily, after.weekly, after.monthly) == ("2026-12-01", "2026-W49", "2026-12")
    assert again == after  # 21:00 at UTC-3 is already the next UTC day
