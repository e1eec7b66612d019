"""The ledger: generations, attempts (daily range partitions on Postgres) and usage_hourly.

Revision ID: 0001_ledger
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from gateway.db.types import Money, UTCDateTime

revision: str = "0001_ledger"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTITION_BY = "RANGE (created_at)"  # partitions are made ahead by gateway.ledger.partitions


def upgrade() -> None:
    op.create_table(
        "generations",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("api_key_id", sa.Text()),
        sa.Column("app_referer", sa.Text()),
        sa.Column("app_title", sa.Text()),
        sa.Column("requested_model", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text()),
        sa.Column("endpoint_id", sa.Text()),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("http_status", sa.SmallInteger(), nullable=False),
        sa.Column("error_message", sa.Text()),
        sa.Column("finish_reason", sa.Text()),
        sa.Column("native_finish_reason", sa.Text()),
        sa.Column("streamed", sa.Boolean(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_write_tokens", sa.Integer(), nullable=False),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=False),
        sa.Column("cost", Money(), nullable=False),
        sa.Column("prompt_cost", Money(), nullable=False),
        sa.Column("completion_cost", Money(), nullable=False),
        sa.Column("request_cost", Money(), nullable=False),
        sa.Column("cache_discount", Money(), nullable=False),
        sa.Column("upstream_cost", Money()),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float()),
        sa.Column("generation_ms", sa.Float()),
        sa.Column("throughput", sa.Float()),
        sa.Column("attempt_count", sa.SmallInteger(), nullable=False),
        sa.Column("explanation", sa.JSON().with_variant(JSONB(), "postgresql")),
        sa.PrimaryKeyConstraint("id", "created_at", name="pk_generations"),
        postgresql_partition_by=PARTITION_BY,
    )
    op.create_index("ix_generations_api_key_created", "generations", ["api_key_id", "created_at"])
    op.create_index("ix_generations_provider_created", "generations", ["provider", "created_at"])
    op.create_index(
        "ix_generations_created_brin", "generations", ["created_at"], postgresql_using="brin"
    )

    op.create_table(
        "attempts",
        sa.Column("generation_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("endpoint_id", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("http_status", sa.SmallInteger()),
        sa.Column("error_class", sa.Text()),
        sa.Column("error_message", sa.Text()),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float()),
        sa.PrimaryKeyConstraint("generation_id", "seq", "created_at", name="pk_attempts"),
        postgresql_partition_by=PARTITION_BY,
    )
    op.create_index("ix_attempts_endpoint_created", "attempts", ["endpoint_id", "created_at"])

    op.create_table(
        "usage_hourly",
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("api_key_id", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("app", sa.Text(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("cancelled", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", Money(), nullable=False),
        sa.Column("cache_discount", Money(), nullable=False),
        sa.Column("upstream_cost", Money(), nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "hour", "api_key_id", "model", "provider", "app", name="pk_usage_hourly"
        ),
    )
    op.create_index("ix_usage_hourly_api_key_hour", "usage_hourly", ["api_key_id", "hour"])


def downgrade() -> None:
    op.drop_table("usage_hourly")
    op.drop_table("attempts")  # on Postgres this drops every partition with it
    op.drop_table("generations")
