"""The money column type: exact on both dialects, refuses floats and sub-picodollar values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from gateway.db.types import InexactMoney, Money, UTCDateTime

SQLITE, POSTGRES = sqlite.dialect(), postgresql.dialect()


def test_sqlite_stores_decimal_text_that_reads_back_exactly() -> None:
    money = Money()
    stored = money.process_bind_param(Decimal("0.000000075"), SQLITE)
    assert stored == "0.000000075"  # TEXT, never REAL
    assert money.process_result_value(stored, SQLITE) == Decimal("0.000000075")


def test_postgres_gets_the_decimal_itself() -> None:
    assert Money().process_bind_param(Decimal("-1.5"), POSTGRES) == Decimal("-1.5")


@pytest.mark.parametrize("value", [0.1, Decimal("1e-13"), Decimal("1e30"), Decimal("NaN")])
def test_inexact_money_is_refused(value: object) -> None:
    with pytest.raises(InexactMoney):
        Money().process_bind_param(value, POSTGRES)  # type: ignore[arg-type]


def test_times_come_back_as_aware_utc() -> None:
    kind = UTCDateTime()
    local = datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    stored = kind.process_bind_param(local, SQLITE)
    assert stored == datetime(2025, 1, 1, 10)  # naive UTC on SQLite
    assert kind.process_result_value(stored, SQLITE) == datetime(2025, 1, 1, 10, tzinfo=UTC)
