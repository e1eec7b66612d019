"""Keeps every replica's key cache current: reloads changed keys every fraction of a second,
at once when a Redis pub/sub nudge says a key changed, and in full now and then.

A lifespan background task; the chat path never waits on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from gateway.keys.cache import KeyCache
from gateway.keys.store import KeyStore

log = logging.getLogger("gateway.keys.refresh")

# Rows are re-read this far back, so a write stamped by a slightly slow clock, or committed a
# little after its stamp, is still seen.
OVERLAP = timedelta(seconds=5)
RESUBSCRIBE_S = 1.0


class KeyRefresher:
    def __init__(
        self,
        store: KeyStore,
        cache: KeyCache,
        interval_s: float = 0.25,
        full_every_s: float = 60.0,
    ) -> None:
        self._store = store
        self._cache = cache
        self._interval_s = interval_s
        self._full_every_s = full_every_s
        self._nudged = asyncio.Event()
        self._last_full: float | None = None
        self._since: datetime | None = None
        self._failing = False
        self._reported: dict[str, str] = {}  # unreadable key id -> the reason already logged

    @property
    def change_announced(self) -> bool:
        """A key change was announced (`listen`) and the loop has not reloaded since."""
        return self._nudged.is_set()

    async def refresh(self) -> bool:
        """One reload; False (logged once per outage) when the database did not answer."""
        started, wall = time.monotonic(), datetime.now(UTC)
        full = self._last_full is None or started - self._last_full >= self._full_every_s
        try:
            changed = await self._store.readable_since(None if full else self._since)
        except (SQLAlchemyError, OSError) as exc:
            if not self._failing:
                log.warning("key cache refresh failed; keeping the keys it has: %s", exc)
            self._failing = True
            return False
        if self._failing:
            log.info("key cache refresh recovered")
            self._failing = False
        keys = changed.keys
        self._report(changed.unreadable)
        if full:
            self._cache.replace(keys)
            self._last_full = started
        else:
            self._cache.put(keys)
            self._cache.evict(changed.unreadable)
        self._since = wall - OVERLAP
        return True

    def _report(self, unreadable: dict[str, str]) -> None:
        """One log line per unreadable row (again only when its reason changes)."""
        for key_id, reason in unreadable.items():
            if self._reported.get(key_id) != reason:
                log.error(
                    "key row unreadable; skipped (the key is refused until it is fixed)",
                    extra={"key_id": key_id, "reason": reason[:300]},
                )
                self._reported[key_id] = reason

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._interval_s):
                    await self._nudged.wait()
            except TimeoutError:
                pass
            self._nudged.clear()
            try:
                await self.refresh()
            except Exception:
                # Whatever one reload hits, revocations must keep arriving: log it and go on.
                log.exception("key cache refresh failed unexpectedly; continuing")

    async def listen(self, redis: Redis | RedisCluster, channel: str) -> None:
        """Nudge on every message on `channel`; resubscribe after a Redis outage."""
        while True:
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(channel)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._nudged.set()
            except (RedisError, OSError) as exc:
                log.warning("key change subscription lost: %s", exc)
            await asyncio.sleep(RESUBSCRIBE_S)  # back off before subscribing again


async def announce(redis: Redis | RedisCluster, channel: str) -> None:
    """Tell every replica's refresher that a key changed (best effort: polling catches up)."""
    try:
        await redis.publish(channel, b"changed")
    except (RedisError, OSError) as exc:
        log.warning("could not announce a key change: %s", exc)
