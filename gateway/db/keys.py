"""The `api_keys` table: one row per key, soft-deleted so revocations reach every replica.

Schema only; `gateway.keys.store` reads and writes it. The secret itself is never stored.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Boolean, Index, Integer, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.models import JSON_DOCUMENT, Base
from gateway.db.types import Money, UTCDateTime


class ApiKeyRow(Base):
    """A key's identity (hash, visible prefix), limits and routing defaults."""

    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
        Index("ix_api_keys_updated_at", "updated_at"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(Text)  # sha256 hex of the secret
    prefix: Mapped[str] = mapped_column(Text)  # first characters of the secret, for listings
    limit_usd: Mapped[Decimal | None] = mapped_column(Money)
    limit_reset: Mapped[str] = mapped_column(Text)  # daily | weekly | monthly | none
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer)
    default_mode: Mapped[str | None] = mapped_column(Text)
    pin_mode: Mapped[bool] = mapped_column(Boolean)
    provider: Mapped[dict[str, Any] | None] = mapped_column(JSON_DOCUMENT)
    disabled: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)  # +1 per write: orders versions without clocks
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)  # replicas reload what changed
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


api_keys = cast(Table, ApiKeyRow.__table__)
