"""Stats rollups for the ops board: usage per hour and per day by (model, provider), key and app,
attempt outcomes per hour by endpoint and error class, and an index of failed attempts.

Revision ID: 0006_stats_rollups
Revises: 0002_api_keys
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.db.types import Money, UTCDateTime

revision: str = "0006_stats_rollups"
down_revision: str | Sequence[str] | None = "0005_billing_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Existing ledgers start with their history rolled up (Postgres: NUMERIC sums are exact).
BACKFILL_STATS = """
INSERT INTO stats_rollup
SELECT z.size, d.dimension, date_trunc(z.size, g.created_at, 'UTC'), d.dim_model, d.name,
       count(*), count(*) FILTER (WHERE g.status = 'error'), sum(g.prompt_tokens),
       sum(g.completion_tokens), sum(g.cached_tokens), sum(g.reasoning_tokens), sum(g.cost),
       sum(g.prompt_cost), sum(g.completion_cost), sum(g.cache_discount), sum(g.latency_ms),
       coalesce(sum(g.ttft_ms), 0), count(g.ttft_ms), coalesce(sum(g.throughput), 0),
       count(g.throughput)
FROM generations g
CROSS JOIN (VALUES ('hour'), ('day')) AS z (size)
CROSS JOIN LATERAL (VALUES
    ('provider', g.model, coalesce(g.provider, '')),
    ('key', '', coalesce(g.api_key_id, '')),
    ('app', '', coalesce(nullif(g.app_title, ''), nullif(g.app_referer, ''), ''))
) AS d (dimension, dim_model, name)
GROUP BY 1, 2, 3, 4, 5
"""
BACKFILL_ATTEMPTS = """
INSERT INTO attempt_stats_hourly
SELECT date_trunc('hour', created_at, 'UTC'), endpoint_id, provider, outcome,
       coalesce(error_class, ''), count(*), sum(latency_ms), coalesce(sum(ttft_ms), 0),
       count(ttft_ms)
FROM attempts GROUP BY 1, 2, 3, 4, 5
"""


def upgrade() -> None:
    op.create_table(
        "stats_rollup",
        sa.Column("size", sa.Text(), nullable=False),  # hour | day
        sa.Column("dimension", sa.Text(), nullable=False),  # provider | key | app
        sa.Column("bucket", UTCDateTime(), nullable=False),  # the hour's or the day's start
        sa.Column("model", sa.Text(), nullable=False),  # '' unless dimension = provider
        sa.Column("name", sa.Text(), nullable=False),  # the provider, key id or app
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", Money(), nullable=False),
        sa.Column("prompt_cost", Money(), nullable=False),
        sa.Column("completion_cost", Money(), nullable=False),
        sa.Column("cache_discount", Money(), nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), nullable=False),
        sa.Column("ttft_ms_sum", sa.Float(), nullable=False),
        sa.Column("ttft_count", sa.BigInteger(), nullable=False),
        sa.Column("throughput_sum", sa.Float(), nullable=False),
        sa.Column("throughput_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "size", "dimension", "bucket", "model", "name", name="pk_stats_rollup"
        ),
    )
    op.create_table(
        "attempt_stats_hourly",
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("endpoint_id", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("error_class", sa.Text(), nullable=False),  # '' for none
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), nullable=False),
        sa.Column("ttft_ms_sum", sa.Float(), nullable=False),
        sa.Column("ttft_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "hour",
            "endpoint_id",
            "provider",
            "outcome",
            "error_class",
            name="pk_attempt_stats_hourly",
        ),
    )
    # Recent failures read the newest failed attempts without scanning the successful ones.
    op.create_index(
        "ix_attempts_failed_created",
        "attempts",
        ["created_at"],
        postgresql_where=sa.text("outcome <> 'ok'"),
        sqlite_where=sa.text("outcome <> 'ok'"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(BACKFILL_STATS)
        op.execute(BACKFILL_ATTEMPTS)


def downgrade() -> None:
    op.drop_index("ix_attempts_failed_created", table_name="attempts")
    op.drop_table("attempt_stats_hourly")
    op.drop_table("stats_rollup")
