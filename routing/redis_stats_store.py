"""Stats buckets and breaker states shared by every replica through Redis.

Attempts are tallied in memory and flushed with one pipeline (HINCRBY per counter, PEXPIRE per
bucket); a read fetches only buckets not yet settled, so the background refresh stays cheap.
Every bucket and the breakers share the `{stats}` hash tag: on a Redis Cluster a flush or a read
is one node's pipeline, applied or failed as a whole (a flush split over nodes and retried after
one node failed would count the others' share twice).
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from routing import defaults
from routing.breaker import BreakerState
from routing.buckets import BucketKey, Layout, Observation, merge_into, needed, tally
from routing.stats_store import StoreView

log = logging.getLogger("routing.stats")
BREAKERS_TTL_S = 31 * 86_400  # a breaker record outlives any window, not the deployment


class RedisStatsStore:
    """`StatsStore` over Redis. Keys: `{prefix}{stats}:{width_ms}:{index}` hashes of counters,
    `{prefix}{stats}:breakers` (endpoint id -> JSON state), `{prefix}probe:{endpoint}:{until}`.
    """

    def __init__(
        self,
        redis: Redis | RedisCluster,
        prefix: str,
        layout: Layout,
        *,
        settle_s: float = defaults.STATS_SETTLE_S,
    ) -> None:
        self.layout = layout
        self._redis = redis
        self._prefix = prefix
        self._settle_ms = round(settle_s * 1000)
        self._retention = {t.width_ms: t.retention_ms for t in layout.tiers}
        self._pending: dict[BucketKey, dict[str, int]] = {}
        self._pending_breakers: dict[str, BreakerState] = {}
        self._settled: dict[BucketKey, dict[str, int]] = {}  # closed buckets, read once

    def _key(self, key: BucketKey) -> str:
        return f"{self._prefix}{{stats}}:{key[0]}:{key[1]}"

    @property
    def _breakers_key(self) -> str:
        return f"{self._prefix}{{stats}}:breakers"

    async def adopt_legacy(self, now: float) -> int:
        """Merge what a version before the `{stats}` hash tag wrote (`{prefix}stats:...`,
        `{prefix}breakers`) into the current keys, once per old key (a script: two replicas
        starting together don't both add it); the number of keys merged. One Redis only: a
        cluster never had the old names (the old client refused it)."""
        if isinstance(self._redis, RedisCluster):
            return 0
        pairs = [
            (f"{self._prefix}stats:{k[0]}:{k[1]}", self._key(k))
            for k in needed(self.layout, int(now * 1000))
        ]
        pairs.append((f"{self._prefix}breakers", self._breakers_key))
        merged = 0
        for old, new in pairs:
            merged += int(await self._redis.eval(_ADOPT, 2, old, new))
        return merged

    def record(self, observation: Observation) -> None:
        tally(observation, self.layout, self._pending)

    def share_breaker(self, state: BreakerState) -> None:
        self._pending_breakers[state.endpoint_id] = state

    async def flush(self) -> None:
        if not self._pending and not self._pending_breakers:
            return
        pending, self._pending = self._pending, {}
        breakers, self._pending_breakers = self._pending_breakers, {}
        pipe = self._redis.pipeline(transaction=False)
        for key, fields in pending.items():
            name = self._key(key)
            for field, count in fields.items():
                pipe.hincrby(name, field, count)
            pipe.pexpire(name, self._retention.get(key[0], 0) or 1)
        if breakers:
            name = self._breakers_key
            pipe.hset(name, mapping={k: v.to_json() for k, v in breakers.items()})
            pipe.expire(name, BREAKERS_TTL_S)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            # Keep what could not be written for the next flush; a Redis outage costs
            # freshness, never the request path.
            log.warning("stats flush failed", extra={"error": type(exc).__name__})
            merge_into(self._pending, pending)
            for endpoint_id, state in breakers.items():
                self._pending_breakers.setdefault(endpoint_id, state)

    async def read(self, now: float) -> StoreView:
        now_ms = int(now * 1000)
        keys = needed(self.layout, now_ms)
        settled = self._settled
        for key in [k for k in settled if k not in keys]:
            del settled[key]
        fetch = [k for k in keys if k not in settled]
        pipe = self._redis.pipeline(transaction=False)
        for key in fetch:
            pipe.hgetall(self._key(key))
        pipe.hgetall(self._breakers_key)
        results: list[Any] = await pipe.execute()
        buckets: dict[BucketKey, dict[str, int]] = dict(settled)
        for key, raw in zip(fetch, results, strict=False):
            fields = _counts(self._key(key), raw)
            buckets[key] = fields
            if (key[1] + 1) * key[0] + self._settle_ms < now_ms:
                settled[key] = fields
        breakers: dict[str, BreakerState] = {}
        for k, v in results[-1].items():
            try:
                breakers[_text(k)] = BreakerState.from_json(v)
            except ValueError:
                log.warning("unreadable breaker state", extra={"endpoint": _text(k)})
        return StoreView(buckets, breakers)

    async def claim_probe(self, endpoint_id: str, until: float, ttl_s: float) -> bool:
        key = f"{self._prefix}probe:{endpoint_id}:{int(until * 1000)}"
        try:
            won = await self._redis.set(key, b"1", nx=True, px=max(int(ttl_s * 1000), 1))
        except (RedisError, OSError):
            return False
        return bool(won)

    async def aclose(self) -> None:
        await self.flush()


# KEYS: old name, new name. Counters are added; a breaker state already under the new name wins.
_ADOPT = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i + 1], 1, 1) == '{' then
    redis.call('HSETNX', KEYS[2], fields[i], fields[i + 1])
  else
    redis.call('HINCRBY', KEYS[2], fields[i], fields[i + 1])
  end
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('DEL', KEYS[1])
return 1
"""


def _counts(key: str, raw: dict[Any, Any]) -> dict[str, int]:
    """A bucket's counters; a field that isn't an integer is skipped and named in the log."""
    fields: dict[str, int] = {}
    for name, value in raw.items():
        try:
            fields[_text(name)] = int(value)
        except (TypeError, ValueError):
            log.warning("unreadable stats field skipped", extra={"key": key, "field": _text(name)})
    return fields


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
