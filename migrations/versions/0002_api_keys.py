"""API keys: hash, visible prefix, limits, routing defaults; soft-deleted.

Revision ID: 0002_api_keys
Revises: 0001_ledger
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from gateway.db.types import Money, UTCDateTime

revision: str = "0002_api_keys"
down_revision: str | Sequence[str] | None = "0001_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("limit_usd", Money()),
        sa.Column("limit_reset", sa.Text(), nullable=False),
        sa.Column("requests_per_minute", sa.Integer()),
        sa.Column("tokens_per_minute", sa.Integer()),
        sa.Column("default_mode", sa.Text()),
        sa.Column("pin_mode", sa.Boolean(), nullable=False),
        sa.Column("provider", sa.JSON().with_variant(JSONB(), "postgresql")),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_updated_at", "api_keys", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_updated_at", table_name="api_keys")
    op.drop_table("api_keys")
