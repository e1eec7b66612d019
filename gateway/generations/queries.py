"""Reading one generation and its attempts back from the ledger, scoped to the caller's key.

Read-only; never on the chat request path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.models import attempts, generations

ID_CLOCK_SLACK = timedelta(days=1)  # ids carry their creation second; allow for clock steps
_PLAUSIBLE_SECONDS = range(1_500_000_000, 5_000_000_000)


@dataclass(frozen=True, slots=True)
class GenerationRecord:
    generation: dict[str, Any]
    attempts: list[dict[str, Any]]


def created_window(generation_id: str) -> tuple[datetime, datetime] | None:
    """The time range an id like `gen-<unix seconds>-<hex>` was created in, so Postgres reads
    only the partitions around it; None for ids of any other shape."""
    parts = generation_id.split("-")
    if len(parts) < 3 or not parts[1].isdigit() or int(parts[1]) not in _PLAUSIBLE_SECONDS:
        return None
    moment = datetime.fromtimestamp(int(parts[1]), UTC)
    return moment - ID_CLOCK_SLACK, moment + ID_CLOCK_SLACK


async def find_generation(
    engine: AsyncEngine, generation_id: str, api_key_id: str | None, *, any_key: bool = False
) -> GenerationRecord | None:
    """The generation if it exists and belongs to `api_key_id` (None: anonymous callers);
    `any_key`: whoever it belongs to (the admin's stats API)."""
    query = select(generations).where(generations.c.id == generation_id)
    if not any_key:
        query = query.where(generations.c.api_key_id.is_not_distinct_from(api_key_id))
    window = created_window(generation_id)
    if window is not None:
        query = query.where(generations.c.created_at.between(*window))
    async with engine.connect() as conn:
        found = (await conn.execute(query.limit(1))).mappings().first()
        if found is None:
            return None
        generation = dict(found)
        rows = await conn.execute(
            select(attempts)
            .where(
                attempts.c.generation_id == generation_id,
                attempts.c.created_at == generation["created_at"],
            )
            .order_by(attempts.c.seq)
        )
        return GenerationRecord(generation, [dict(row) for row in rows.mappings()])
