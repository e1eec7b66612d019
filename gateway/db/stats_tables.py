"""The ops board's rollups: usage per hour and per day by (model, provider), key and app, and
attempt outcomes per hour by endpoint and error class. Schema only: the ledger writer fills them
(`gateway.stats.rollups`), the stats API reads them (`gateway.stats.queries`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import BigInteger, Float, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.models import Base
from gateway.db.types import Money, UTCDateTime


class StatsRollupRow(Base):
    """Generation sums per hour and per day along one dimension at a time, so each stats query
    reads one small slice: `provider` rows are keyed by (model, provider), `key` and `app` rows
    by name. The primary key's order (size, dimension, bucket) serves every range read."""

    __tablename__ = "stats_rollup"

    size: Mapped[str] = mapped_column(Text, primary_key=True)  # hour | day
    dimension: Mapped[str] = mapped_column(Text, primary_key=True)  # provider | key | app
    bucket: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # its start
    model: Mapped[str] = mapped_column(Text, primary_key=True)  # '' unless dimension = provider
    name: Mapped[str] = mapped_column(Text, primary_key=True)  # provider, key id or app
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_tokens: Mapped[int] = mapped_column(BigInteger)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[Decimal] = mapped_column(Money)
    prompt_cost: Mapped[Decimal] = mapped_column(Money)
    completion_cost: Mapped[Decimal] = mapped_column(Money)
    cache_discount: Mapped[Decimal] = mapped_column(Money)
    latency_ms_sum: Mapped[float] = mapped_column(Float)
    ttft_ms_sum: Mapped[float] = mapped_column(Float)
    ttft_count: Mapped[int] = mapped_column(BigInteger)
    throughput_sum: Mapped[float] = mapped_column(Float)
    throughput_count: Mapped[int] = mapped_column(BigInteger)


class AttemptStatsHourlyRow(Base):
    """Attempts per hour by endpoint, outcome and error class ('' for none)."""

    __tablename__ = "attempt_stats_hourly"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(Text, primary_key=True)
    provider: Mapped[str] = mapped_column(Text, primary_key=True)
    outcome: Mapped[str] = mapped_column(Text, primary_key=True)
    error_class: Mapped[str] = mapped_column(Text, primary_key=True)
    attempts: Mapped[int] = mapped_column(BigInteger)
    latency_ms_sum: Mapped[float] = mapped_column(Float)
    ttft_ms_sum: Mapped[float] = mapped_column(Float)
    ttft_count: Mapped[int] = mapped_column(BigInteger)


stats_rollup = cast(Table, StatsRollupRow.__table__)
attempt_stats_hourly = cast(Table, AttemptStatsHourlyRow.__table__)
