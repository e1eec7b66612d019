"""The stats API's query parameters: periods, buckets, groupings and windows, checked once.

Bad values are a 400 naming the parameter; every range a caller picks is bounded.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal, cast, get_args

from gateway.errors import BadRequest
from gateway.stats.queries import Bucket, GroupBy, Period

DEFAULT_PERIOD = timedelta(days=1)
MAX_HOUR_BUCKETS = 24 * 31  # hourly series: at most 31 days
MAX_DAY_BUCKETS = 366  # daily series: at most a year
MAX_PERIOD = timedelta(days=MAX_DAY_BUCKETS)
Window = Literal["1h", "1d", "7d", "30d"]
WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
EFFECTIVE_PRICE_WINDOW = "30d"
HOUR = timedelta(hours=1)
WHOLE_DAYS_AFTER = timedelta(days=2)  # longer periods without buckets are read by day


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def _moment(name: str, text: str, end: bool) -> datetime:
    """`YYYY-MM-DD` is a whole UTC day (`to` includes it); a datetime without a zone is UTC."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(
            f"`{name}` must be a date (YYYY-MM-DD) or an ISO 8601 time, got {text!r}",
            metadata={"parameter": name},
        ) from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def floor_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_day(moment: datetime) -> datetime:
    floor = floor_day(moment)
    return floor if floor == moment else floor + timedelta(days=1)


def period_of(
    start: str | None, end: str | None, now: datetime, bucket: Bucket | None = None
) -> Period:
    """[from, to) rounded out to whole hours; to whole UTC days for day buckets, and for
    periods over two days without buckets (they read the daily rollups). Defaults: the last
    day up to now."""
    until = ceil_hour(_moment("to", end, True) if end else now)
    since = floor_hour(_moment("from", start, False) if start else until - DEFAULT_PERIOD)
    if since >= until:
        raise BadRequest("`from` must be before `to`", metadata={"parameter": "from"})
    if bucket == "day" or (bucket is None and until - since > WHOLE_DAYS_AFTER):
        since, until = floor_day(since), ceil_day(until)
    limit = MAX_HOUR_BUCKETS * HOUR if bucket == "hour" else MAX_PERIOD
    if until - since > limit:
        raise BadRequest(
            f"the period is too long for {bucket or 'these'} buckets (at most {limit.days} days)",
            metadata={"parameter": "from", "max_days": limit.days},
        )
    return Period(since, until)


def choice(name: str, value: str | None, allowed: tuple[str, ...], default: str) -> str:
    if value is None or value == "":
        return default
    if value not in allowed:
        raise BadRequest(
            f"`{name}` must be one of {', '.join(allowed)}; got {value!r}",
            metadata={"parameter": name, "allowed": list(allowed)},
        )
    return value


def bucket_of(value: str | None) -> Bucket:
    return cast(Bucket, choice("bucket", value, get_args(Bucket), "hour"))


def group_by_of(value: str | None) -> GroupBy:
    return cast(GroupBy, choice("group_by", value, get_args(GroupBy), "model"))


def window_of(value: str | None) -> Window:
    return cast(Window, choice("window", value, tuple(WINDOWS), "1d"))


def window_period(window: str, now: datetime) -> Period:
    """The rollup hours of a rolling window ending now (the current hour included)."""
    until = floor_hour(now) + HOUR
    return Period(until - WINDOWS[window], until)


def limit_of(value: int | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    if not 1 <= value <= maximum:
        raise BadRequest(
            f"`limit` must be between 1 and {maximum}", metadata={"parameter": "limit"}
        )
    return value
