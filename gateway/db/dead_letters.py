"""The `ledger_dead_letters` table: ledger events the database refused, kept for a human.

Schema only; `gateway.ledger.dead_letters` writes, lists and replays it. The event is stored as
its wire bytes (`gateway.ledger.codec`), so nothing in it can be refused a second time.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Integer, LargeBinary, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.models import Base
from gateway.db.types import UTCDateTime

ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


class DeadLetterRow(Base):
    """One event set aside: why, when, and the event itself."""

    __tablename__ = "ledger_dead_letters"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True, autoincrement=True)
    generation_id: Mapped[str] = mapped_column(Text)
    entry_id: Mapped[str] = mapped_column(Text)  # the queue's id of the entry
    reason: Mapped[str] = mapped_column(Text)
    event: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


dead_letters = cast(Table, DeadLetterRow.__table__)
