"""Dead letters: ledger events the database refused, kept in `ledger_dead_letters` to be seen
(`/api/v1/ledger/status`, `/metrics`, `gateway ledger dead-letters list`) and replayed.

Not for transient failures: those are retried by the writer and never land here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.dead_letters import dead_letters
from gateway.ledger.codec import EventDecodeError, decode_event, encode_event
from gateway.ledger.events import GenerationEvent
from gateway.ledger.rows import InvalidEvent, rows_of
from gateway.ledger.store import LedgerStore
from gateway.text import clean_text

MAX_REASON_CHARS = 2000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    generation_id: str
    entry_id: str
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Replayed:
    written: list[int]  # dead letter ids now in the ledger (or found there already)
    failed: dict[int, str]  # dead letter id -> why it is still refused


class DeadLetters:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def put(self, entry_id: str, event: GenerationEvent, reason: str) -> None:
        row = {
            "generation_id": clean_text(event.id, 200),
            "entry_id": clean_text(entry_id, 200),
            "reason": clean_text(reason, MAX_REASON_CHARS),
            "event": encode_event(event),
            "created_at": datetime.now(UTC),
        }
        async with self._engine.begin() as conn:
            await conn.execute(dead_letters.insert(), row)

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            found = await conn.scalar(select(func.count()).select_from(dead_letters))
        return int(found or 0)

    async def list(self, limit: int = 100) -> list[DeadLetter]:
        columns = [dead_letters.c[name] for name in DeadLetter.__slots__]
        query = select(*columns).order_by(dead_letters.c.id).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [DeadLetter(*row) for row in rows]

    async def replay(self, store: LedgerStore, ids: Sequence[int] | None = None) -> Replayed:
        """Write dead letters (all, or `ids`) to the ledger one by one with today's code;
        each that lands is removed, each still refused keeps its row with the new reason."""
        query = select(dead_letters.c.id, dead_letters.c.event).order_by(dead_letters.c.id)
        if ids is not None:
            query = query.where(dead_letters.c.id.in_(list(ids)))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        written: list[int] = []
        failed: dict[int, str] = {}
        for letter_id, data in rows:
            try:
                await store.write([rows_of(decode_event(bytes(data)))])
            except (EventDecodeError, InvalidEvent) as exc:
                failed[letter_id] = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # the database refused it again: say why, keep it
                failed[letter_id] = f"{type(exc).__name__}: {getattr(exc, 'orig', exc)}"
            else:
                written.append(letter_id)
        async with self._engine.begin() as conn:
            if written:
                await conn.execute(delete(dead_letters).where(dead_letters.c.id.in_(written)))
            for letter_id, reason in failed.items():
                await conn.execute(
                    update(dead_letters)
                    .where(dead_letters.c.id == letter_id)
                    .values(reason=clean_text(reason, MAX_REASON_CHARS))
                )
        return Replayed(written, failed)
