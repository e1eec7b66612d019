"""A worker's leases: slices of spend-limited keys' budgets taken from Redis in one script call,
so most requests are admitted here without a round trip. Not the script (`redis_limiter`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from gateway.keys.defaults import LEASE_SHARE, LEASE_TTL_S
from gateway.keys.limiter import Hold, LimiterUnavailable, spend_refused
from gateway.keys.record import ApiKey, LimitReset
from gateway.resp import FailingFast, RespError

log = logging.getLogger("gateway.keys.lease")

ADMIT_WITHIN = 0.8  # admit from a lease only this part of its TTL after it was last renewed
RENEW_AFTER = 1 / 3  # ... and renew it once this part has gone by
RETURN_WAIT_S = 2.0  # shutdown waits this long for the leases' give-back calls


@dataclass(frozen=True, slots=True)
class Grant:
    """One LEASE call's answer: pico added to the lease, or refused (spend and held, pico)."""

    granted: int = 0
    refused: tuple[int, int] | None = None


class LeaseCall(Protocol):
    """Runs the LEASE script for `lease`: give back `give_back`, then take `share` of the
    room (at least `need`, refused below it). Raises `RespError`."""

    async def __call__(self, lease: Lease, give_back: int, need: int, share: float) -> Grant: ...


@dataclass(slots=True, eq=False)
class Lease:
    id: str  # its entry in the key's Redis holds; a new one for every lease
    key_id: str
    limit: Decimal  # the key's limit and period when taken: a change retires the lease
    reset: LimitReset
    free: int = 0  # pico not held by a request
    size: int = 0  # the last grant: topped up in the background below half of it
    renewed: float = 0.0  # monotonic time the last successful call was sent
    deadline: float = 0.0  # no admission from it after this (before Redis can expire it)
    used_at: float = 0.0
    outstanding: int = 0  # requests admitted from it whose settle Redis hasn't answered
    call: asyncio.Task[Grant] | None = None  # at most one call in flight

    def matches(self, key: ApiKey) -> bool:
        return (
            key.limit == self.limit
            and key.limit_reset == self.reset
            and key.active
            and not key.rate_limit.limited
        )


class Leases:
    """This worker's leases, one per key in use, kept by `run` and returned by `aclose`.

    A lease is a hold in the key's Redis holds: each request admitted from it holds its worst
    case out of the lease's free part here, and its settle gives that part back in Redis. So
    Redis's held total always covers every admitted worst case, whichever worker admitted it.
    """

    def __init__(
        self,
        call: LeaseCall,
        up: Callable[[], bool],
        share: float = LEASE_SHARE,
        ttl_s: float = LEASE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`up`: whether Redis is reachable as far as known without I/O (a lease admits
        nothing while it isn't, so a Redis outage refuses requests as it does without leases)."""
        self._call = call
        self._up = up
        self._share = share
        self.ttl_s = ttl_s
        self._clock = clock
        self._current: dict[str, Lease] = {}  # key id -> the lease requests are admitted from
        self._retiring: list[Lease] = []  # giving back their free part, waiting for settles
        self._worker = os.urandom(6).hex()
        self._taken = 0
        self.waited = 0  # admissions that waited for Redis (the first, a dry lease, a refusal)
        self.topped_up = 0  # background top-ups started before a lease ran dry

    def admit(self, key: ApiKey, amount: int, at: datetime) -> Hold | None:
        """A hold of `amount` out of the key's lease, or None when that needs Redis. No I/O."""
        lease = self._current.get(key.id)
        if lease is None or not self._up():
            return None
        now = self._clock()
        if now >= lease.deadline or not lease.matches(key):
            self._retire(lease)
            return None
        if lease.free < amount:
            return None
        lease.free -= amount
        lease.outstanding += 1
        lease.used_at = now
        if lease.free < lease.size // 2 and lease.call is None:
            self.topped_up += 1
            self._start(lease, 0, 0, self._share)
        return Hold(key, os.urandom(8).hex(), amount, at=at, lease=lease.id)

    async def take(self, key: ApiKey, amount: int, at: datetime) -> Hold:
        """Admit through Redis: wait for a call in flight, else give the free part back and
        take a new slice of at least `amount`. Raises `PaymentRequired` (402) when the key's
        room is smaller, `LimiterUnavailable` (503) when Redis doesn't answer."""
        self.waited += 1
        while (lease := self._current.get(key.id)) is not None and lease.call is not None:
            await asyncio.wait([lease.call])  # its outcome is the call's own to handle
            hold = self.admit(key, amount, at)
            if hold is not None:
                return hold
        if lease is None or self._clock() >= lease.deadline or not lease.matches(key):
            if lease is not None:
                self._retire(lease)
            lease = self._open(key)
        give_back, lease.free = lease.free, 0
        lease.outstanding += 1  # this request's, held as soon as the grant arrives
        call = self._start(lease, give_back, amount, self._share, unsent=give_back)
        try:
            grant = await asyncio.shield(call)
        except asyncio.CancelledError:
            call.add_done_callback(lambda done: self._left(lease, amount, done))
            raise
        except RespError as exc:
            lease.outstanding -= 1
            raise LimiterUnavailable("the limit store is unreachable; retry shortly") from exc
        if grant.refused is not None:
            lease.outstanding -= 1
            raise spend_refused(key, *grant.refused, amount)
        lease.used_at = self._clock()
        return Hold(key, os.urandom(8).hex(), amount, at=at, lease=lease.id)

    def settled(self, hold: Hold, failed: bool) -> None:
        """A request admitted from a lease was settled in Redis (or failed to be)."""
        lease = self._current.get(hold.key.id)
        if lease is None or lease.id != hold.lease:
            lease = next((r for r in self._retiring if r.id == hold.lease), None)
        if lease is not None:
            lease.outstanding -= 1
        if failed:
            self.redis_failed()

    def redis_failed(self) -> None:
        """Redis failed a call: admit nothing more from what it may no longer hold."""
        for lease in list(self._current.values()):
            self._retire(lease, give_back=False)

    def free_of(self, key_id: str) -> int:
        """Pico this worker's leases hold for `key_id` that no request holds."""
        leases = [*self._retiring, self._current.get(key_id)]
        return sum(lease.free for lease in leases if lease is not None and lease.key_id == key_id)

    async def run(self, current: Callable[[str], ApiKey | None]) -> None:
        """Every second (or quarter TTL): retire leases of changed, revoked or idle keys, renew
        the rest, give back what retired ones hold. `current`: the key cache's lookup."""
        while True:
            await asyncio.sleep(min(1.0, self.ttl_s / 4))
            self.tend(current)

    def tend(self, current: Callable[[str], ApiKey | None]) -> None:
        now = self._clock()
        for lease in list(self._current.values()):
            key = current(lease.key_id)
            if key is None or not lease.matches(key) or now >= lease.deadline:
                self._retire(lease)
            elif lease.outstanding == 0 and now - lease.used_at > self.ttl_s:
                self._retire(lease)  # idle: its slice is better used by other workers
            elif lease.call is None and now - lease.renewed > self.ttl_s * RENEW_AFTER:
                self._start(lease, 0, 0, 0.0)
        for lease in list(self._retiring):
            if lease.call is not None:
                continue
            if lease.free:
                self._give_back(lease)
            elif lease.outstanding <= 0:
                self._retiring.remove(lease)
            elif now - lease.renewed > self.ttl_s * RENEW_AFTER:
                self._start(lease, 0, 0, 0.0)  # its requests' worst cases stay held

    async def aclose(self) -> None:
        """Give every lease's free part back (shutdown); what requests still hold expires."""
        for lease in list(self._current.values()):
            self._retire(lease, give_back=False)
        calls = [lease.call for lease in self._retiring if lease.call is not None]
        if calls:
            await asyncio.wait(calls, timeout=RETURN_WAIT_S)
        calls = [self._give_back(lease) for lease in self._retiring if lease.free]
        if calls:
            await asyncio.wait(calls, timeout=RETURN_WAIT_S)

    def _open(self, key: ApiKey) -> Lease:
        assert key.limit is not None
        self._taken += 1
        lease = Lease(f"lease:{self._worker}:{self._taken}", key.id, key.limit, key.limit_reset)
        lease.deadline = self._clock() + self.ttl_s * ADMIT_WITHIN
        self._current[key.id] = lease
        return lease

    def _retire(self, lease: Lease, give_back: bool = True) -> None:
        if self._current.get(lease.key_id) is lease:
            del self._current[lease.key_id]
            self._retiring.append(lease)
        if give_back and lease.free and lease.call is None:
            self._give_back(lease)

    def _give_back(self, lease: Lease) -> asyncio.Task[Grant]:
        # Never sent twice: a call lost after Redis ran it would give back requests' parts.
        free, lease.free = lease.free, 0
        return self._start(lease, free, 0, 0.0, unsent=free)

    def _start(
        self, lease: Lease, give_back: int, need: int, share: float, unsent: int = 0
    ) -> asyncio.Task[Grant]:
        call = asyncio.create_task(self._send(lease, give_back, need, share, unsent))
        call.add_done_callback(_logged)
        lease.call = call
        return call

    async def _send(
        self, lease: Lease, give_back: int, need: int, share: float, unsent: int
    ) -> Grant:
        sent = self._clock()
        try:
            grant = await self._call(lease, give_back, need, share)
        except RespError as exc:
            if isinstance(exc, FailingFast):
                lease.free += unsent  # never left this worker: still ours to give back
            self.redis_failed()
            raise
        finally:
            lease.call = None
        lease.renewed, lease.deadline = sent, sent + self.ttl_s * ADMIT_WITHIN
        if grant.refused is None:
            lease.free += grant.granted - need  # `need` is the caller's, held at once
            lease.size = grant.granted
        return grant

    def _left(self, lease: Lease, amount: int, call: asyncio.Task[Grant]) -> None:
        """The request that asked for a slice left before it came: its part is free again."""
        lease.outstanding -= 1
        if not call.cancelled() and call.exception() is None and call.result().refused is None:
            lease.free += amount


def _logged(call: asyncio.Task[Grant]) -> None:
    if not call.cancelled() and call.exception() is not None:
        log.warning("a key lease call to Redis failed: %s", call.exception())
