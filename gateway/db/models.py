"""The ledger's tables: generations, attempts (both daily range partitions on Postgres), the
hourly and daily usage rollups. Schema only: migrations create it, `gateway.ledger` writes it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gateway.db.types import Money, UTCDateTime

PARTITION_BY = "RANGE (created_at)"
JSON_DOCUMENT = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={"pk": "pk_%(table_name)s"})


class GenerationRow(Base):
    """One client request as billed: served endpoint, tokens, exact money, timing, routing."""

    __tablename__ = "generations"
    __table_args__ = (
        Index("ix_generations_api_key_created", "api_key_id", "created_at"),
        Index("ix_generations_provider_created", "provider", "created_at"),
        Index("ix_generations_created_brin", "created_at", postgresql_using="brin"),
        {"postgresql_partition_by": PARTITION_BY},
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    api_key_id: Mapped[str | None] = mapped_column(Text)
    app_referer: Mapped[str | None] = mapped_column(Text)
    app_title: Mapped[str | None] = mapped_column(Text)
    requested_model: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(Text)
    endpoint_id: Mapped[str | None] = mapped_column(Text)
    price_version: Mapped[str | None] = mapped_column(Text)  # the endpoint's catalog price
    mode: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)  # ok | error | cancelled
    http_status: Mapped[int] = mapped_column(SmallInteger)
    error_message: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(Text)
    native_finish_reason: Mapped[str | None] = mapped_column(Text)
    streamed: Mapped[bool] = mapped_column(Boolean)
    cancelled: Mapped[bool] = mapped_column(Boolean)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    cache_write_tokens: Mapped[int] = mapped_column(Integer)
    reasoning_tokens: Mapped[int] = mapped_column(Integer)
    cost: Mapped[Decimal] = mapped_column(Money)
    prompt_cost: Mapped[Decimal] = mapped_column(Money)
    completion_cost: Mapped[Decimal] = mapped_column(Money)
    request_cost: Mapped[Decimal] = mapped_column(Money)
    cache_discount: Mapped[Decimal] = mapped_column(Money)
    upstream_cost: Mapped[Decimal | None] = mapped_column(Money)
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    generation_ms: Mapped[float | None] = mapped_column(Float)
    throughput: Mapped[float | None] = mapped_column(Float)  # completion tokens per second
    attempt_count: Mapped[int] = mapped_column(SmallInteger)
    explanation: Mapped[dict[str, Any] | None] = mapped_column(JSON_DOCUMENT)
    session_id: Mapped[str | None] = mapped_column(Text)  # `session_id` / `x-session-id`
    external_user: Mapped[str | None] = mapped_column(Text)  # the client's `user`, hashed
    upstream_id: Mapped[str | None] = mapped_column(Text)  # the serving upstream's response id


class AttemptRow(Base):
    """One upstream call of a generation; `created_at` is the generation's, for partitioning."""

    __tablename__ = "attempts"
    __table_args__ = (
        Index("ix_attempts_endpoint_created", "endpoint_id", "created_at"),
        {"postgresql_partition_by": PARTITION_BY},
    )

    generation_id: Mapped[str] = mapped_column(Text, primary_key=True)
    seq: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # 0 = first attempt
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(Text)  # ok, http, timeout, reset, connect, mid-stream...
    http_status: Mapped[int | None] = mapped_column(SmallInteger)
    error_class: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)


class UsageSums:
    """The token and cost sums both usage rollups keep, after their own columns."""

    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[Decimal] = mapped_column(Money)
    cache_discount: Mapped[Decimal] = mapped_column(Money)


class UsageHourlyRow(UsageSums, Base):
    """Sums per (hour, key, model, provider, app): what dashboards and billing read.

    Empty string, not NULL, stands for "none" in key columns so they can form the primary key.
    """

    __tablename__ = "usage_hourly"
    __table_args__ = (Index("ix_usage_hourly_api_key_hour", "api_key_id", "hour"),)

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    api_key_id: Mapped[str] = mapped_column(Text, primary_key=True)
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    provider: Mapped[str] = mapped_column(Text, primary_key=True)
    app: Mapped[str] = mapped_column(Text, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    cancelled: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(BigInteger)
    # After the shared sums (`UsageSums`), as the migration created them.
    upstream_cost: Mapped[Decimal] = mapped_column(Money, sort_order=1)
    latency_ms_sum: Mapped[float] = mapped_column(Float, sort_order=1)


class UsageDailyRow(UsageSums, Base):
    """Exact sums per (UTC day, key, app, model, provider, endpoint, price version): what the
    billing reports and activity read, so they never scan generations.

    Empty string, not NULL, stands for "none" in key columns so they can form the primary key.
    """

    __tablename__ = "usage_daily"
    __table_args__ = (Index("ix_usage_daily_api_key_day", "api_key_id", "day"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    api_key_id: Mapped[str] = mapped_column(Text, primary_key=True)
    app: Mapped[str] = mapped_column(Text, primary_key=True)
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    provider: Mapped[str] = mapped_column(Text, primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(Text, primary_key=True)
    price_version: Mapped[str] = mapped_column(Text, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    cancelled: Mapped[int] = mapped_column(BigInteger)


class PriceVersionRow(Base):
    """One endpoint's catalog prices under a version id (a hash of them), and when a gateway
    first loaded them: reports show the unit prices each line was billed at."""

    __tablename__ = "price_versions"

    price_version: Mapped[str] = mapped_column(Text, primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(Text)
    prompt: Mapped[Decimal] = mapped_column(Money)
    completion: Mapped[Decimal] = mapped_column(Money)
    cache_read: Mapped[Decimal] = mapped_column(Money)
    cache_write: Mapped[Decimal] = mapped_column(Money)
    request: Mapped[Decimal] = mapped_column(Money)
    catalog_version: Mapped[str] = mapped_column(Text)  # the catalog it was first loaded with
    first_loaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


metadata = Base.metadata
generations = cast(Table, GenerationRow.__table__)
attempts = cast(Table, AttemptRow.__table__)
usage_hourly = cast(Table, UsageHourlyRow.__table__)
usage_daily = cast(Table, UsageDailyRow.__table__)
price_versions = cast(Table, PriceVersionRow.__table__)
