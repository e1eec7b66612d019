"""Billing reports: the catalog price version on generations, the daily usage rollup that
reports read (backfilled from usage_hourly), and the price versions' unit prices.

Revision ID: 0005_billing_reports
Revises: 0002_api_keys
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

from gateway.db.types import Money, UTCDateTime

revision: str = "0005_billing_reports"
down_revision: str | Sequence[str] | None = "0004_dead_letters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAILY_KEYS = ("day", "api_key_id", "app", "model", "provider", "endpoint_id", "price_version")
DAILY_COUNTS = (
    "requests",
    "errors",
    "cancelled",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
DAILY_MONEY = ("cost", "cache_discount")


def upgrade() -> None:
    op.add_column("generations", sa.Column("price_version", sa.Text()))
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(name, sa.Text(), nullable=False) for name in DAILY_KEYS[1:]),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in DAILY_COUNTS),
        *(sa.Column(name, Money(), nullable=False) for name in DAILY_MONEY),
        sa.PrimaryKeyConstraint(*DAILY_KEYS, name="pk_usage_daily"),
    )
    op.create_index("ix_usage_daily_api_key_day", "usage_daily", ["api_key_id", "day"])
    op.create_table(
        "price_versions",
        sa.Column("price_version", sa.Text(), nullable=False),
        sa.Column("endpoint_id", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        *(
            sa.Column(name, Money(), nullable=False)
            for name in ("prompt", "completion", "cache_read", "cache_write", "request")
        ),
        sa.Column("catalog_version", sa.Text(), nullable=False),
        sa.Column("first_loaded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("price_version", name="pk_price_versions"),
    )
    _backfill_daily()


def _backfill_daily() -> None:
    """Hours already rolled up become days; their price version is unknown ("")."""
    bind = op.get_bind()
    endpoint = "CASE WHEN provider = '' THEN '' ELSE model || '@' || provider END"
    if bind.dialect.name == "postgresql":
        sums = ", ".join(f"sum({c})" for c in (*DAILY_COUNTS, *DAILY_MONEY))
        op.execute(
            f"""
            INSERT INTO usage_daily ({", ".join((*DAILY_KEYS, *DAILY_COUNTS, *DAILY_MONEY))})
            SELECT (hour AT TIME ZONE 'UTC')::date, api_key_id, app, model, provider,
                   {endpoint}, '', {sums}
            FROM usage_hourly GROUP BY 1, 2, 3, 4, 5, 6
            """
        )
        return
    # SQLite keeps money as decimal text: add it up in Python, never as REAL.
    totals: dict[tuple[Any, ...], list[Any]] = {}
    rows = bind.execute(sa.text("SELECT * FROM usage_hourly")).mappings()
    for row in rows:
        hour = str(row["hour"])
        provider = row["provider"]
        key = (
            hour[:10],
            row["api_key_id"],
            row["app"],
            row["model"],
            provider,
            f"{row['model']}@{provider}" if provider else "",
            "",
        )
        sums = totals.setdefault(key, [0] * len(DAILY_COUNTS) + [Decimal(0)] * len(DAILY_MONEY))
        for i, name in enumerate(DAILY_COUNTS):
            sums[i] += int(row[name])
        for j, name in enumerate(DAILY_MONEY):
            sums[len(DAILY_COUNTS) + j] += Decimal(str(row[name]))
    columns = (*DAILY_KEYS, *DAILY_COUNTS, *DAILY_MONEY)
    insert = sa.text(
        f"INSERT INTO usage_daily ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + c for c in columns)})"
    )
    for key, sums in totals.items():
        values = [*key, *sums[: len(DAILY_COUNTS)], *(format(m, "f") for m in sums[-2:])]
        bind.execute(insert, dict(zip(columns, values, strict=True)))


def downgrade() -> None:
    op.drop_table("price_versions")
    op.drop_index("ix_usage_daily_api_key_day", table_name="usage_daily")
    op.drop_table("usage_daily")
    op.drop_column("generations", "price_version")
