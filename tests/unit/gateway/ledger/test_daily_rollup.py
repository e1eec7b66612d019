"""The daily rollup billing reads: the SQL and Python forms agree, days are UTC days."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from gateway.ledger.daily_rollup import DAILY_KEY_COLUMNS, DAILY_SUM_COLUMNS, daily_rollup
from gateway.ledger.postgres_batch import DAILY_KEYS, DAILY_SUMS, ROLLUP_INPUTS, STATEMENT
from gateway.ledger.rows import rows_of
from providers.pricing import Cost
from tests.unit.gateway.ledger.factories import make_event


def test_the_sql_daily_rollup_has_the_python_columns() -> None:
    assert tuple(DAILY_KEYS) == DAILY_KEY_COLUMNS
    assert tuple(DAILY_SUMS) == DAILY_SUM_COLUMNS
    assert {"endpoint_id", "price_version"} <= set(ROLLUP_INPUTS)
    assert "INSERT INTO usage_daily" in STATEMENT


def test_a_generation_counts_on_the_utc_day_it_was_created() -> None:
    plus_two = timezone(timedelta(hours=2))
    late = datetime(2026, 3, 1, 1, 30, tzinfo=plus_two)  # 2026-02-28 23:30 UTC
    events = [
        make_event(1, created_at=late, price_version="v1"),
        make_event(2, created_at=late + timedelta(hours=1), price_version="v1"),
        make_event(
            3,
            created_at=late,
            price_version="v2",
            status="cancelled",
            cancelled=True,
            cost=Cost(Decimal("0.000000000001"), Decimal(0), Decimal(0), Decimal(0)),
        ),
    ]
    days = daily_rollup(rows_of(e).generation for e in events)
    assert [(k.day.isoformat(), k.price_version) for k in days] == [
        ("2026-02-28", "v1"),
        ("2026-02-28", "v2"),
        ("2026-03-01", "v1"),
    ]
    cancelled = list(days.values())[1]
    assert cancelled.cancelled == 1 and cancelled.cost == Decimal("0.000000000001")
    assert sum((s.cost for s in days.values()), Decimal(0)) == sum(
        (e.cost.total for e in events), Decimal(0)
    )
