"""The lease book's rules with an in-memory twin of the LEASE script: admit here until half the
slice is gone, top up once in the background, retire on a changed key or an expired lease,
keep what never left the worker, and free what a departed requester asked for."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.errors import PaymentRequired
from gateway.keys.lease import Grant, Lease, Leases
from gateway.keys.limiter import LimiterUnavailable
from gateway.keys.record import ApiKey, RateLimit
from gateway.resp import FailingFast

AT = datetime(2026, 12, 5, tzinfo=UTC)
KEY = ApiKey(
    id="k", name="k", key_hash="0" * 64, prefix="sk", created_at=AT, updated_at=AT,
    limit=Decimal("1"),
)  # fmt: skip


class Script:
    """What the LEASE script does to one key's room (pico), calls counted, optionally held."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.calls: list[tuple[int, int, float]] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def __call__(self, lease: Lease, give_back: int, need: int, share: float) -> Grant:
        self.calls.append((give_back, need, share))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.room += give_back
        if self.room < need:
            return Grant(refused=(0, 0))
        grant = min(max(need, int(self.room * share)), self.room)
        self.room -= grant
        return Grant(grant)


def book(script: Script, clock: list[float] | None = None, up: bool = True) -> Leases:
    now = clock if clock is not None else [0.0]
    return Leases(script, lambda: up, share=0.1, ttl_s=10.0, clock=lambda: now[0])


async def settle_calls() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_admits_locally_and_tops_up_once_below_half_the_slice():
    script = Script(room=1000)
    leases = book(script)
    first = await leases.take(KEY, 10, AT)  # the first lease: 10 % of 1000
    assert first.lease and len(script.calls) == 1
    holds = [leases.admit(KEY, 10, AT) for _ in range(4)]  # 100 - 10 - 40 = 50: not below half
    assert all(holds) and len(script.calls) == 1
    assert leases.admit(KEY, 10, AT) is not None  # 40 < 50: one top-up starts
    assert leases.admit(KEY, 10, AT) is not None  # ... and only one
    await settle_calls()
    assert len(script.calls) == 2 and script.calls[1] == (0, 0, 0.1)
    assert leases.free_of(KEY.id) == 30 + 90  # 10 % of the 900 left
    assert leases.topped_up == 1 and leases.waited == 1


async def test_a_changed_limit_retires_the_lease_and_gives_its_free_part_back():
    script = Script(room=1000)
    leases = book(script)
    await leases.take(KEY, 10, AT)
    lowered = dataclasses.replace(KEY, limit=Decimal("0.5"), version=2)
    assert leases.admit(lowered, 10, AT) is None  # never from a slice of the old limit
    await settle_calls()
    assert script.calls[-1] == (90, 0, 0.0) and script.room == 990
    assert leases.free_of(KEY.id) == 0


@pytest.mark.parametrize(
    "changed",
    [
        dataclasses.replace(KEY, disabled=True),
        dataclasses.replace(KEY, limit_reset="daily"),
        dataclasses.replace(KEY, rate_limit=RateLimit(requests_per_minute=5)),
        None,  # deleted
    ],
)
async def test_the_loop_retires_leases_of_changed_or_revoked_keys(changed: ApiKey | None):
    script = Script(room=1000)
    leases = book(script)
    await leases.take(KEY, 10, AT)
    leases.tend(lambda _: changed)
    await settle_calls()
    assert script.room == 990 and leases.free_of(KEY.id) == 0


async def test_a_lease_admits_nothing_past_its_deadline():
    script, clock = Script(room=1000), [0.0]
    leases = book(script, clock)
    await leases.take(KEY, 10, AT)
    clock[0] = 7.9
    assert leases.admit(KEY, 10, AT) is not None  # within 80 % of the TTL
    leases.tend(lambda _: KEY)  # a third of the TTL has gone by: renewed
    await settle_calls()
    assert script.calls[-1] == (0, 0, 0.0)
    clock[0] = 7.9 + 8.0  # renewed at 7.9: its deadline is 15.9
    assert leases.admit(KEY, 10, AT) is None  # retired: its free part goes back
    await settle_calls()
    assert script.room == 1000 - 20


async def test_an_idle_lease_is_given_back():
    script, clock = Script(room=1000), [0.0]
    leases = book(script, clock)
    hold = await leases.take(KEY, 10, AT)
    leases.settled(hold, failed=False)
    for now in (4.0, 8.0):  # renewed on each turn a third of the TTL after the last
        clock[0] = now
        leases.tend(lambda _: KEY)
        await settle_calls()
    assert leases.free_of(KEY.id) == 90 and len(script.calls) == 3  # used lately: kept
    clock[0] = 10.5  # within the deadline (8 + 8), unused for longer than the TTL
    leases.tend(lambda _: KEY)  # back to the key
    await settle_calls()
    assert leases.free_of(KEY.id) == 0 and script.room == 990


async def test_nothing_is_admitted_here_while_redis_is_down():
    script = Script(room=1000)
    leases = book(script, up=False)
    with pytest.raises(LimiterUnavailable):
        script.fail = FailingFast("down")
        await leases.take(KEY, 10, AT)
    assert leases.admit(KEY, 10, AT) is None


async def test_a_give_back_that_never_left_the_worker_is_kept_to_try_again():
    script = Script(room=1000)
    leases = book(script)
    await leases.take(KEY, 10, AT)
    script.fail = FailingFast("down")
    leases.redis_failed()  # as a failed settle reports it: retired, nothing sent
    leases.tend(lambda _: KEY)  # the give-back fails fast: not sent
    await settle_calls()
    assert leases.free_of(KEY.id) == 90
    script.fail = None
    leases.tend(lambda _: KEY)
    await settle_calls()
    assert leases.free_of(KEY.id) == 0 and script.room == 990


async def test_a_refusal_gives_the_free_part_back_first():
    script = Script(room=15)
    leases = book(script)
    await leases.take(KEY, 10, AT)  # all of it: 10 for the request, 0 more (10 % of 5 is 0)
    with pytest.raises(PaymentRequired):
        await leases.take(KEY, 6, AT)
    assert script.room == 5 and leases.free_of(KEY.id) == 0


async def test_a_requester_that_leaves_before_its_slice_arrives_frees_its_part():
    script = Script(room=1000)
    leases = book(script)
    script.gate = asyncio.Event()
    asking = asyncio.create_task(leases.take(KEY, 10, AT))
    await settle_calls()
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    script.gate.set()
    await settle_calls()
    assert leases.free_of(KEY.id) == 100  # the whole slice, the leaver's part included
    assert leases.admit(KEY, 100, AT) is not None
