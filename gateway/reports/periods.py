"""Report periods: UTC days, `from` inclusive and `to` exclusive, parsed from the edge.

A generation belongs to the day of its creation time; months end where a key's monthly limit
resets (`gateway.keys.periods.next_reset`), so reports and limits share one calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from gateway.keys.periods import next_reset

MAX_PERIOD_DAYS = 1_830  # five years: a bound on what one request may ask to sum
ACTIVITY_DAYS = 30  # `/api/v1/activity` without `date`: the last 30 completed UTC days


class PeriodError(ValueError):
    """A date, month or period that can't be read or is out of bounds; names the parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class Period:
    start: date  # first UTC day in it
    end: date  # first UTC day after it

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def bounds(self) -> tuple[datetime, datetime]:
        """The period as UTC instants: [start 00:00, end 00:00)."""
        return datetime.combine(self.start, time(), UTC), datetime.combine(self.end, time(), UTC)


def parse_day(text: str, parameter: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        message = f"`{parameter}` must be a date YYYY-MM-DD, got {text!r}"
        raise PeriodError(parameter, message) from None


def parse_month(text: str, parameter: str = "month") -> Period:
    try:
        if len(text) != 7:
            raise ValueError(text)
        first = date.fromisoformat(f"{text}-01")
    except ValueError:
        message = f"`{parameter}` must be a month YYYY-MM, got {text!r}"
        raise PeriodError(parameter, message) from None
    return month_of(first)


def month_of(day: date) -> Period:
    """The UTC calendar month `day` is in: where a monthly key limit starts and resets."""
    first = day.replace(day=1)
    reset = next_reset("monthly", datetime.combine(first, time(), UTC))
    assert reset is not None
    return Period(first, reset.date())


def period(start: date, end: date) -> Period:
    if end <= start:
        raise PeriodError("to", f"`to` ({end}) must be after `from` ({start}); `to` is exclusive")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise PeriodError("to", f"a report covers at most {MAX_PERIOD_DAYS} days")
    return Period(start, end)


def parse_period(start: str | None, end: str | None, today: date) -> Period:
    """`from`/`to` of a report; either left out means the current UTC month's bound."""
    month = month_of(today)
    first = parse_day(start, "from") if start else month.start
    last = parse_day(end, "to") if end else (month.end if first < month.end else first)
    if not end and last <= first:
        last = first + timedelta(days=1)
    return period(first, last)


def activity_period(day: str | None, today: date) -> Period:
    """One UTC day, or the last `ACTIVITY_DAYS` completed UTC days (today excluded)."""
    if day:
        one = parse_day(day, "date")
        return Period(one, one + timedelta(days=1))
    return Period(today - timedelta(days=ACTIVITY_DAYS), today)
