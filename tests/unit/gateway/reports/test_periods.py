"""Report periods: UTC days, `to` exclusive, months that end where monthly key limits reset."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gateway.keys.periods import next_reset, periods_at
from gateway.reports.periods import (
    Period,
    PeriodError,
    activity_period,
    month_of,
    parse_month,
    parse_period,
)


def test_a_month_ends_where_a_monthly_key_limit_resets() -> None:
    for day in (date(2026, 1, 31), date(2026, 2, 1), date(2024, 2, 29), date(2026, 12, 15)):
        month = month_of(day)
        moment = datetime(day.year, day.month, day.day, 23, 59, 59, 999999, tzinfo=UTC)
        reset = next_reset("monthly", moment)
        assert reset is not None and month.bounds()[1] == reset
        assert periods_at(moment).monthly == month.start.strftime("%Y-%m")


def test_months_and_days_parse_strictly() -> None:
    assert parse_month("2026-02") == Period(date(2026, 2, 1), date(2026, 3, 1))
    assert parse_month("2026-12") == Period(date(2026, 12, 1), date(2027, 1, 1))
    for bad in ("2026-13", "2026-2", "202602", "2026-02-01", ""):
        with pytest.raises(PeriodError):
            parse_month(bad)
    with pytest.raises(PeriodError) as refused:
        parse_period("2026-02-30", None, date(2026, 2, 10))
    assert refused.value.parameter == "from"


def test_from_is_inclusive_to_exclusive_and_defaults_to_this_month() -> None:
    today = date(2026, 11, 24)
    assert parse_period(None, None, today) == Period(date(2026, 11, 1), date(2026, 12, 1))
    assert parse_period("2026-11-03", "2026-11-04", today).days == 1
    with pytest.raises(PeriodError) as empty:
        parse_period("2026-11-04", "2026-11-04", today)
    assert empty.value.parameter == "to"
    assert parse_period("2027-01-05", None, today) == Period(date(2027, 1, 5), date(2027, 1, 6))


def test_activity_is_one_day_or_the_last_thirty_completed_days() -> None:
    today = date(2026, 3, 2)
    assert activity_period(None, today) == Period(date(2026, 1, 31), date(2026, 3, 2))
    assert activity_period("2026-03-02", today) == Period(date(2026, 3, 2), date(2026, 3, 3))
