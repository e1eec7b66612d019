"""The replicas' limiter: every key's rate and spend state in Redis, changed by Lua scripts.

One script call admits a request (rate checks plus an atomic worst-case hold), one settles it,
sent with the ledger event in the end-of-request batch. Both go over the lean `RespClient`.
Money is integer pico-USD; Lua compares it in two parts, so no step goes through a float.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from gateway.keys.limiter import (
    HOLD_TTL_S,
    Hold,
    KeyUsage,
    LimiterUnavailable,
    Settlement,
    rate_headers,
    rate_limited,
    spend_refused,
)
from gateway.keys.periods import KEEP_AFTER_S, Periods, periods_at
from gateway.keys.pico import to_pico
from gateway.keys.record import ApiKey, LimitReset
from gateway.resp import Batch, Commands, RespError

log = logging.getLogger("gateway.keys.limiter")
RESETTLED_KEEP_S = 7 * 86_400  # how long a replayed settlement's marker is kept

# Settle ids are remembered at least this long (a batch is re-sent within a second or two); the
# per-key set is trimmed every ~16 settles, so it holds about a minute of that key's requests.
SETTLED_KEEP_MS = 60_000

_LUA_PRELUDE = """
local window = 60000000
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function int(x) return string.format('%.0f', x) end
local function split(s)
  local neg = string.sub(s, 1, 1) == '-'
  if neg then s = string.sub(s, 2) end
  local n = string.len(s)
  local hi, lo = 0, tonumber(s)
  if n > 9 then
    hi, lo = tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))
  end
  if neg then return -hi, -lo end
  return hi, lo
end
"""

# KEYS: request tat, token tat, spend counter, held total, holds hash, holds expiry zset
# ARGV: rpm, tpm (0: none), limit pico ('': none), amount pico, hold id, hold ttl ms
ADMIT = (
    _LUA_PRELUDE
    + """
local now = clock()
local expired = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', int(now), 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  local amount = redis.call('HGET', KEYS[5], id)
  if amount then
    redis.call('DECRBY', KEYS[4], amount)
    redis.call('HDEL', KEYS[5], id)
  end
  redis.call('ZREM', KEYS[6], id)
end
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local request_tat, remaining, reset = nil, -1, 0
if rpm > 0 then
  local step = math.max(math.floor(window / rpm), 1)
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
  local retry = tat + step - window - now
  if retry > 0 then return {'requests', int(retry), int(now)} end
  request_tat = tat + step
  remaining = math.floor((window - (request_tat - now)) / step)
  reset = request_tat
end
if tpm > 0 then
  local tat = math.max(tonumber(redis.call('GET', KEYS[2]) or now), now)
  local retry = tat - window - now
  if retry >= 0 then return {'tokens', int(math.max(retry, 1)), int(now)} end
end
if ARGV[3] ~= '' then
  local used = redis.call('GET', KEYS[3]) or '0'
  local held = redis.call('GET', KEYS[4]) or '0'
  local h1, l1 = split(used)
  local h2, l2 = split(held)
  local h3, l3 = split(ARGV[4])
  local h4, l4 = split(ARGV[3])
  local hi, lo = h1 + h2 + h3 - h4, l1 + l2 + l3 - l4
  local carry = math.floor(lo / 1e9)
  hi, lo = hi + carry, lo - carry * 1e9
  if hi > 0 or (hi == 0 and lo > 0) then return {'spend', used, held} end
  local ttl = tonumber(ARGV[6])
  redis.call('HSET', KEYS[5], ARGV[5], ARGV[4])
  redis.call('ZADD', KEYS[6], int(now + ttl * 1000), ARGV[5])
  redis.call('INCRBY', KEYS[4], ARGV[4])
  for i = 4, 6 do redis.call('PEXPIRE', KEYS[i], ttl + 60000) end
end
if request_tat then
  redis.call('SET', KEYS[1], int(request_tat), 'PX', math.ceil((request_tat - now) / 1000) + 1000)
end
return {'ok', int(remaining), int(reset)}
"""
)

# KEYS: held total, holds hash, holds expiry zset, token tat, spend total, day, week, month,
#       settled zset
# ARGV: hold id ('': none), cost pico, tokens, tpm (0: none), keep ms for day, week, month,
#       settle id, settled keep ms
# Idempotent per settle id (random hex): a batch re-sent after an ambiguous drop doesn't
# charge twice.
SETTLE = (
    _LUA_PRELUDE
    + """
local settled_at = clock()
if redis.call('ZADD', KEYS[9], 'NX', int(settled_at), ARGV[8]) == 0 then return 0 end
if string.sub(ARGV[8], -1) == '0' then  -- ids are random hex: trimmed every ~16 settles
  redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', int(settled_at - tonumber(ARGV[9]) * 1000))
  redis.call('PEXPIRE', KEYS[9], ARGV[9])  -- a key that goes quiet doesn't keep its ids for ever
end
if ARGV[1] ~= '' then
  local amount = redis.call('HGET', KEYS[2], ARGV[1])
  if amount then
    redis.call('DECRBY', KEYS[1], amount)
    redis.call('HDEL', KEYS[2], ARGV[1])
  end
  redis.call('ZREM', KEYS[3], ARGV[1])
end
if ARGV[2] ~= '0' then
  redis.call('INCRBY', KEYS[5], ARGV[2])
  for i = 6, 8 do
    redis.call('INCRBY', KEYS[i], ARGV[2])
    redis.call('PEXPIRE', KEYS[i], ARGV[i - 1])
  end
end
local tpm, tokens = tonumber(ARGV[4]), tonumber(ARGV[3])
if tpm > 0 and tokens > 0 then
  local now = settled_at
  local tat = math.max(tonumber(redis.call('GET', KEYS[4]) or now), now)
  tat = tat + math.ceil(tokens * window / tpm)
  redis.call('SET', KEYS[4], int(tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return 1
"""
)


# Every Redis key of one API key; the `{id}` hash tag keeps them in one cluster slot. The names
# are cached per key and period: formatting them was a measurable part of each request's CPU.
def _base(prefix: str, key_id: str) -> str:
    return f"{prefix}key:{{{key_id}}}:"


@lru_cache(maxsize=4096)
def _admit_keys(prefix: str, key_id: str, periods: Periods, reset: LimitReset) -> tuple[str, ...]:
    base = _base(prefix, key_id)
    names = ("rpm", "tpm", f"spend:{periods.of(reset)}", "held", "holds", "exp")
    return tuple(base + name for name in names)


@lru_cache(maxsize=4096)
def _settle_keys(prefix: str, key_id: str, periods: Periods) -> tuple[str, ...]:
    _, day, week, month = periods.counters()
    names = ("held", "holds", "exp", "tpm", "spend:total", f"spend:{day}")
    last = (f"spend:{week}", f"spend:{month}", "settled")
    return tuple(_base(prefix, key_id) + name for name in (*names, *last))


@lru_cache(maxsize=1024)
def _limit_pico(limit: Decimal) -> str:
    return str(to_pico(limit))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLimiter:
    def __init__(self, client: Commands, prefix: str, hold_ttl_s: float = HOLD_TTL_S) -> None:
        self._client = client
        self._prefix = prefix
        self._hold_ttl_ms = int(hold_ttl_s * 1000)
        self._admit = client.script(ADMIT)
        self._settle = client.script(SETTLE)
        self._keep_ms = [int(KEEP_AFTER_S[p] * 1000) for p in ("daily", "weekly", "monthly")]

    async def admit(self, key: ApiKey, worst_case: Decimal) -> Hold:
        rate = key.rate_limit
        rpm, tpm = rate.requests_per_minute or 0, rate.tokens_per_minute or 0
        at = datetime.now(UTC)
        keys = _admit_keys(self._prefix, key.id, periods_at(at), key.limit_reset)
        if key.limit is None:
            amount, hold_id, limit = 0, "", ""
        else:
            amount, hold_id, limit = (
                to_pico(worst_case),
                os.urandom(8).hex(),
                _limit_pico(key.limit),
            )
        try:
            reply = await self._admit(keys, [rpm, tpm, limit, amount, hold_id, self._hold_ttl_ms])
        except RespError as exc:
            raise LimiterUnavailable("the limit store is unreachable; retry shortly") from exc
        status, first, second = reply  # int() reads the numbers as bytes or str alike
        if status != b"ok":
            status = _text(status)
            if status == "requests":
                raise rate_limited("requests", rpm, int(first), int(second))
            if status == "tokens":
                raise rate_limited("tokens", tpm, int(first), int(second))
            if status == "spend":
                raise spend_refused(key, int(first), int(second), amount)
        headers = rate_headers(rpm, int(first), int(second) // 1000) if rpm else {}
        return Hold(key, hold_id, amount, headers, at=at)

    def settle_into(self, batch: Batch, hold: Hold, cost: Decimal, tokens: int) -> None:
        if hold.settled:
            return
        hold.settled = True
        command = self._settle.command(*self._settle_call(hold, cost, tokens))
        batch.add(self._client, command, lambda reply: _settled(hold, reply))

    def _settle_call(
        self, hold: Hold, cost: Decimal, tokens: int
    ) -> tuple[tuple[str, ...], list[Any]]:
        key = hold.key
        keys = _settle_keys(self._prefix, key.id, periods_at(hold.at))
        tpm = key.rate_limit.tokens_per_minute or 0
        settle_id = hold.id or os.urandom(8).hex()  # fixed in the command: a resend dedupes
        args = [hold.id, to_pico(cost), max(tokens, 0), tpm, *self._keep_ms, settle_id]
        return keys, [*args, SETTLED_KEEP_MS]

    async def settle(self, hold: Hold, cost: Decimal, tokens: int) -> None:
        batch = Batch()
        self.settle_into(batch, hold, cost, tokens)
        await batch.send()

    async def resettle(self, generation_id: str, settlement: Settlement) -> None:
        """A settlement that failed with its end-of-request batch, sent once more on replay.
        At most once per generation (a marker set first), so replaying twice never charges
        twice; raises `RespError` while Redis is away."""
        marker = f"{self._prefix}resettled:{generation_id}"
        if await self._client.execute("SET", marker, "1", "NX", "EX", RESETTLED_KEEP_S) is None:
            return
        at = settlement.at or datetime.now(UTC)
        keys = _settle_keys(self._prefix, settlement.key_id, periods_at(at))
        s = settlement
        # The settle script dedupes by settle id (#16): the original settle's id when it had a
        # hold, so if Redis ran that one after all (a reply lost), this one charges nothing.
        settle_id = s.hold_id or generation_id
        args: list[str | int] = [s.hold_id, s.cost_pico, s.tokens, s.tokens_per_minute]
        await self._settle(keys, [*args, *self._keep_ms, settle_id, SETTLED_KEEP_MS])

    async def usage(self, key: ApiKey) -> KeyUsage:
        base = _base(self._prefix, key.id)
        _, day, week, month = periods_at(datetime.now(UTC)).counters()
        names = ("spend:total", f"spend:{day}", f"spend:{week}", f"spend:{month}", "held")
        try:
            values = await self._client.execute("MGET", *(base + name for name in names))
        except RespError as exc:
            raise LimiterUnavailable("the limit store is unreachable; retry shortly") from exc
        total, daily, weekly, monthly, held = (int(_text(v)) if v else 0 for v in values)
        return KeyUsage(total, daily, weekly, monthly, max(held, 0))


def _settled(hold: Hold, reply: Any) -> None:
    if isinstance(reply, RespError):
        hold.settle_failed = True  # the ledger spool, if the event went there, sends it again
        # The answer is already out and the ledger has the cost; the hold expires by itself.
        log.warning(
            "settling a key's spend failed",
            extra={"api_key_id": hold.key.id, "hold": hold.id},
            exc_info=reply,
        )
