"""Column types that hold money exactly and time as UTC on Postgres and SQLite alike.

Postgres stores money as NUMERIC; SQLite as decimal TEXT, so it never rounds through REAL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

MONEY_PRECISION = 38  # digits in all: sums over billions of generations still fit
MONEY_SCALE = 12  # one pico-dollar: `providers.pricing.USD_QUANTUM`
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)
MONEY_LIMIT = Decimal(10) ** (MONEY_PRECISION - MONEY_SCALE)


class InexactMoney(ValueError):
    """A value that the money column could not store without rounding."""


def exact_money(value: Decimal) -> Decimal:
    """`value` unchanged if the column stores it exactly; else raise `InexactMoney`."""
    if isinstance(value, float) or not isinstance(value, Decimal):
        raise InexactMoney(f"money must be a Decimal, got {type(value).__name__}")
    if not value.is_finite() or abs(value) >= MONEY_LIMIT:
        raise InexactMoney(f"money out of range: {value}")
    if value != value.quantize(MONEY_QUANTUM):
        raise InexactMoney(f"money finer than {MONEY_QUANTUM} USD: {value}")
    return value


class Money(TypeDecorator[Decimal]):
    """USD as an exact decimal: NUMERIC(38, 12) on Postgres, decimal TEXT on SQLite."""

    impl = Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        exact = exact_money(value)
        return format(exact, "f") if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime in, the same out: timestamptz on Postgres, naive UTC text on
    SQLite (which sorts correctly because every value is UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
