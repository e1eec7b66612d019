"""The replicas' limiter: every key's rate and spend state in Redis, changed by Lua scripts.

One script call admits a request (rate checks plus an atomic worst-case hold), one settles it,
sent with the ledger event in the end-of-request batch. Both go over the lean `RespClient`.
A key with only a spend limit is admitted from this worker's lease instead (`gateway.keys.lease`;
the LEASE script grants it). Money is integer pico-USD; Lua compares it in two parts, so no
step goes through a float.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from gateway.keys.defaults import HOLD_TTL_S, LEASE_TTL_S
from gateway.keys.lease import Grant, Lease, Leases
from gateway.keys.limiter import (
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
from gateway.resp import Batch, Commands, RespError, lua_source
from gateway.unit_of_work import UnitOfWork

log = logging.getLogger("gateway.keys.limiter")
RESETTLED_KEEP_S = 7 * 86_400  # how long a replayed settlement's marker is kept

# Settle ids are remembered at least this long (a batch is re-sent within a second or two); the
# per-key set is trimmed every ~16 settles, so it holds about a minute of that key's requests.
SETTLED_KEEP_MS = 60_000

# The scripts' sources (KEYS and ARGV documented in each file), read once at import.
ADMIT = lua_source("gateway.keys", "lua/prelude.lua", "lua/admit.lua")
SETTLE = lua_source("gateway.keys", "lua/prelude.lua", "lua/settle.lua")
LEASE = lua_source("gateway.keys", "lua/prelude.lua", "lua/lease.lua")


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
    """`lease_share` None: every limited request is checked in Redis; else keys with only a
    spend limit are admitted from this worker's leases of that share of their room."""

    def __init__(
        self,
        client: Commands,
        prefix: str,
        hold_ttl_s: float = HOLD_TTL_S,
        *,
        lease_share: float | None = None,
        lease_ttl_s: float = LEASE_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._hold_ttl_ms = int(hold_ttl_s * 1000)
        self._admit = client.script(ADMIT)
        self._settle = client.script(SETTLE)
        self._lease = client.script(LEASE)
        self._keep_ms = [int(KEEP_AFTER_S[p] * 1000) for p in ("daily", "weekly", "monthly")]
        self._clock = clock
        self._lease_ttl_ms = int(lease_ttl_s * 1000)
        self._holds_keep_ms = max(self._hold_ttl_ms, self._lease_ttl_ms) + 60_000
        self.leases: Leases | None = None
        if lease_share is not None:
            self.leases = Leases(self._lease_call, client.connected, lease_share, lease_ttl_s)

    async def admit(self, key: ApiKey, worst_case: Decimal) -> Hold:
        rate = key.rate_limit
        at = datetime.fromtimestamp(self._clock(), UTC)
        leases = self.leases
        if leases is not None and key.limit is not None and not rate.limited:
            amount = to_pico(worst_case)
            return leases.admit(key, amount, at) or await leases.take(key, amount, at)
        rpm, tpm = rate.requests_per_minute or 0, rate.tokens_per_minute or 0
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

    async def _lease_call(self, lease: Lease, give_back: int, need: int, share: float) -> Grant:
        at = datetime.fromtimestamp(self._clock(), UTC)
        keys = _admit_keys(self._prefix, lease.key_id, periods_at(at), lease.reset)[2:]
        limit = _limit_pico(lease.limit)
        ttl, keep = self._lease_ttl_ms, self._holds_keep_ms
        args: list[str | int] = [limit, lease.id, give_back, need, repr(share), ttl, keep]
        reply = await self._lease(keys, args)
        if reply[0] != b"ok":
            return Grant(refused=(int(reply[1]), int(reply[2])))
        return Grant(int(reply[1]))

    def settle_into(self, work: UnitOfWork, hold: Hold, cost: Decimal, tokens: int) -> None:
        if hold.settled:
            return
        hold.settled = True
        command = self._settle.command(*self._settle_call(hold, cost, tokens))
        work.add(self._client, command, lambda reply: self._settled(hold, reply))

    def _settled(self, hold: Hold, reply: Any) -> None:
        if self.leases is not None:
            failed = isinstance(reply, RespError)
            if hold.lease:
                self.leases.settled(hold, failed)
            elif failed:
                self.leases.redis_failed()
        _settled(hold, reply)

    def _settle_call(
        self, hold: Hold, cost: Decimal, tokens: int
    ) -> tuple[tuple[str, ...], list[Any]]:
        key = hold.key
        keys = _settle_keys(self._prefix, key.id, periods_at(hold.at))
        tpm = key.rate_limit.tokens_per_minute or 0
        settle_id = hold.id or os.urandom(8).hex()  # fixed in the command: a resend dedupes
        held, part = (hold.lease, hold.amount) if hold.lease else (hold.id, "")
        args = [held, to_pico(cost), max(tokens, 0), tpm, *self._keep_ms, settle_id]
        return keys, [*args, SETTLED_KEEP_MS, part]

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
        held, part = (s.lease, s.held) if s.lease else (s.hold_id, "")
        args: list[str | int] = [held, s.cost_pico, s.tokens, s.tokens_per_minute]
        await self._settle(keys, [*args, *self._keep_ms, settle_id, SETTLED_KEEP_MS, part])

    async def usage(self, key: ApiKey) -> KeyUsage:
        base = _base(self._prefix, key.id)
        _, day, week, month = periods_at(datetime.fromtimestamp(self._clock(), UTC)).counters()
        names = ("spend:total", f"spend:{day}", f"spend:{week}", f"spend:{month}", "held")
        try:
            values = await self._client.execute("MGET", *(base + name for name in names))
        except RespError as exc:
            raise LimiterUnavailable("the limit store is unreachable; retry shortly") from exc
        total, daily, weekly, monthly, held = (int(_text(v)) if v else 0 for v in values)
        if self.leases is not None:  # what no request holds yet is not "in flight"
            held -= self.leases.free_of(key.id)
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
