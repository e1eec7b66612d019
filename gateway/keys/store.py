"""Keys in the database: create, list, change, soft-delete, and what changed since a moment.

The admin API, the CLI and the key cache's refresher use it; the chat path never does.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.keys import api_keys
from gateway.keys.hashing import MintedSecret, mint_secret
from gateway.keys.preferences import preferences_json
from gateway.keys.record import LIMIT_RESETS, ApiKey, LimitReset, RateLimit
from gateway.keys.schemas import KeyPatch, KeySpec
from routing.preferences import MODES, Mode, ProviderPreferences

# KeySpec / KeyPatch field -> column, where the names differ.
_COLUMNS = {"limit": "limit_usd", "mode": "default_mode"}


def _new_id() -> str:
    return f"key-{secrets.token_hex(8)}"


def _now() -> datetime:
    return datetime.now(UTC)


def _column_values(fields: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "limit_reset" and value is None:
            value = "none"
        elif name == "provider" and value is not None:
            value = preferences_json(value)
        values[_COLUMNS.get(name, name)] = value
    return values


def key_of(row: Row[Any]) -> ApiKey:
    """The key a row holds; ValueError (or msgspec's) when this version can't read it."""
    provider = row.provider
    limit_reset: LimitReset = row.limit_reset
    default_mode: Mode | None = row.default_mode
    if limit_reset not in LIMIT_RESETS:
        raise ValueError(f"unknown limit_reset {limit_reset!r}")
    if default_mode is not None and default_mode not in MODES:
        raise ValueError(f"unknown default_mode {default_mode!r}")
    return ApiKey(
        id=row.id,
        name=row.name,
        key_hash=row.key_hash,
        prefix=row.prefix,
        created_at=row.created_at,
        updated_at=row.updated_at,
        limit=row.limit_usd,
        limit_reset=limit_reset,
        rate_limit=RateLimit(row.requests_per_minute, row.tokens_per_minute),
        default_mode=default_mode,
        pin_mode=row.pin_mode,
        provider=None if provider is None else msgspec.convert(provider, ProviderPreferences),
        disabled=row.disabled,
        deleted_at=row.deleted_at,
        version=row.version,
    )


@dataclass(frozen=True, slots=True)
class Changed:
    keys: list[ApiKey]
    unreadable: dict[str, str]  # key id -> why its row could not be read


class KeyStore:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = _now) -> None:
        self._engine = engine
        self._clock = clock

    async def create(self, spec: KeySpec) -> tuple[ApiKey, MintedSecret]:
        """A new key and its secret; the secret is not kept anywhere."""
        minted = mint_secret()
        now = self._clock()
        values = _column_values(msgspec.structs.asdict(spec))
        values.update(
            id=_new_id(),
            key_hash=minted.key_hash,
            prefix=minted.prefix,
            created_at=now,
            updated_at=now,
            deleted_at=None,
            version=1,
        )
        async with self._engine.begin() as conn:
            await conn.execute(insert(api_keys).values(**values))
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == values["id"]))).one()
        return key_of(row), minted

    async def list_keys(self) -> list[ApiKey]:
        query = (
            select(api_keys)
            .where(api_keys.c.deleted_at.is_(None))
            .order_by(api_keys.c.created_at, api_keys.c.id)
        )
        async with self._engine.connect() as conn:
            return [key_of(row) for row in await conn.execute(query)]

    async def get(self, key_id: str) -> ApiKey | None:
        query = select(api_keys).where(api_keys.c.id == key_id, api_keys.c.deleted_at.is_(None))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).one_or_none()
        return None if row is None else key_of(row)

    async def update(self, key_id: str, patch: KeyPatch) -> ApiKey | None:
        """Apply `patch`; None if there is no such (undeleted) key. Raises ValueError when the
        result would pin a mode the key doesn't have."""
        values = _column_values(patch.changes())
        live = (api_keys.c.id == key_id) & api_keys.c.deleted_at.is_(None)
        async with self._engine.begin() as conn:
            row = (await conn.execute(select(api_keys).where(live))).one_or_none()
            if row is None:
                return None
            pinned = values.get("pin_mode", row.pin_mode)
            if pinned and values.get("default_mode", row.default_mode) is None:
                raise ValueError("pin_mode needs a mode")
            values.update(updated_at=self._clock(), version=api_keys.c.version + 1)
            await conn.execute(update(api_keys).where(live).values(**values))
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).one()
        return key_of(row)

    async def delete(self, key_id: str) -> ApiKey | None:
        """Soft-delete, so every replica's cache sees the change; None if no such key."""
        now = self._clock()
        live = (api_keys.c.id == key_id) & api_keys.c.deleted_at.is_(None)
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(api_keys)
                .where(live)
                .values(deleted_at=now, updated_at=now, version=api_keys.c.version + 1)
            )
            if done.rowcount == 0:
                return None
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).one()
        return key_of(row)

    async def readable_since(self, since: datetime | None) -> Changed:
        """Every key (deleted and disabled ones too) changed at or after `since` (all if None),
        with the rows this version can't read set apart (a rolling upgrade, a hand edit):
        id -> why, instead of one bad row failing the whole read."""
        query = select(api_keys)
        if since is not None:
            query = query.where(api_keys.c.updated_at >= since)
        changed = Changed([], {})
        async with self._engine.connect() as conn:
            for row in await conn.execute(query):
                try:
                    changed.keys.append(key_of(row))
                except (msgspec.ValidationError, ValueError, TypeError, KeyError) as exc:
                    changed.unreadable[str(row.id)] = f"{type(exc).__name__}: {exc}"
        return changed
