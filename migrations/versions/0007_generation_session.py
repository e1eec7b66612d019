"""Generations: the client's session id, its hashed `user` and the upstream's response id.

Revision ID: 0007_generation_session
Revises: 0002_api_keys
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_generation_session"
down_revision: str | Sequence[str] | None = "0006_stats_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("session_id", "external_user", "upstream_id")


def upgrade() -> None:
    # On Postgres `generations` is partitioned: a column added to the parent reaches every
    # partition, existing and future.
    for name in COLUMNS:
        op.add_column("generations", sa.Column(name, sa.Text()))


def downgrade() -> None:
    for name in reversed(COLUMNS):
        op.drop_column("generations", name)
