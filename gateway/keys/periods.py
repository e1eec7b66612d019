"""The UTC calendar periods a key's usage is counted in: day, ISO week (Monday on), month.

Pure: each period has an id that names its counter, so counters reset by starting afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from gateway.keys.record import LimitReset

# How long a period's counter outlives the period: long enough to read it, short enough to go.
KEEP_AFTER_S = {"daily": 2 * 86_400, "weekly": 8 * 86_400, "monthly": 32 * 86_400}


@dataclass(frozen=True, slots=True)
class Periods:
    daily: str  # 2026-11-24
    weekly: str  # 2026-W48
    monthly: str  # 2026-11

    def of(self, reset: LimitReset) -> str:
        """The counter id a limit with this reset is checked against ("total" for none)."""
        if reset == "daily":
            return f"d:{self.daily}"
        if reset == "weekly":
            return f"w:{self.weekly}"
        if reset == "monthly":
            return f"m:{self.monthly}"
        return "total"

    def counters(self) -> tuple[str, str, str, str]:
        """Every counter a settled cost is added to: total, day, week, month."""
        return ("total", self.of("daily"), self.of("weekly"), self.of("monthly"))


def periods_at(now: datetime) -> Periods:
    return _periods_of(now.astimezone(UTC).date())


@lru_cache(maxsize=4)
def _periods_of(day: date) -> Periods:
    # Cached: formatting the ids is ~5 µs, and every limited request asks for them twice.
    year, week, _ = day.isocalendar()
    return Periods(day.isoformat(), f"{year}-W{week:02d}", f"{day.year:04d}-{day.month:02d}")


def next_reset(reset: LimitReset, now: datetime) -> datetime | None:
    """When a limit with this reset starts afresh; None for a limit that never resets."""
    utc = now.astimezone(UTC)
    day = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    if reset == "daily":
        return day + timedelta(days=1)
    if reset == "weekly":
        return day + timedelta(days=7 - utc.weekday())
    if reset == "monthly":
        first = day.replace(day=1)
        return (first + timedelta(days=32)).replace(day=1)
    return None
