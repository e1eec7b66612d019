"""Admission: breaker and slots as one decision; the one place "busy" is decided. No I/O."""

from __future__ import annotations

import time

import pytest

from providers.errors import UpstreamUnavailable
from routing.admission import Admission
from routing.attempts import Skip
from routing.breaker import Breakers, BreakerState
from routing.retry import RetryPolicy
from tests.unit.routing.fakes import MODEL, FakeSleep, catalog, endpoint

NOW = 1_700_000_000.0


class Gate:
    def __init__(self, *states: BreakerState) -> None:
        self.breakers = Breakers()
        self.breakers.merge({s.endpoint_id: s for s in states})

    def phase(self, endpoint_id: str, now: float):
        state = self.breakers.get(endpoint_id)
        return ("closed", 0.0) if state is None else (state.phase(now), state.until)

    async def claim_probe(self, endpoint_id: str, now: float) -> bool:
        return True


def admission(gate=None, slot_ttl_s: float = 60.0) -> tuple[Admission, FakeSleep]:
    sleep = FakeSleep()
    return Admission(
        gate, RetryPolicy(), slot_ttl_s=slot_ttl_s, sleep=sleep, clock=lambda: NOW
    ), sleep


async def test_an_endpoint_with_every_slot_taken_is_skipped_until_one_is_released() -> None:
    (ep,) = catalog(endpoint("a", max_concurrency=1)).endpoints
    admit, _ = admission()
    skipped: list[Skip] = []
    token = admit.take(ep, time.monotonic())
    assert admit.busy(ep) == 1
    assert not await admit.admit(ep, alone=False, deadline=time.monotonic() + 5, skipped=skipped)
    assert skipped == [Skip(ep.id, "a: every slot is busy", None)]
    admit.release(ep, token)
    assert await admit.admit(ep, alone=False, deadline=time.monotonic() + 5, skipped=skipped)


async def test_a_slot_never_released_expires_with_the_attempts_total_timeout() -> None:
    (ep,) = catalog(endpoint("a", max_concurrency=1)).endpoints
    admit, _ = admission(slot_ttl_s=10.0)
    admit.take(ep, time.monotonic() - 11.0)
    assert admit.busy(ep) == 0


async def test_an_open_breaker_is_skipped_with_when_it_is_back() -> None:
    (ep,) = catalog(endpoint("a")).endpoints
    admit, sleep = admission(Gate(BreakerState(f"{MODEL}@a", open=True, until=NOW + 4)))
    skipped: list[Skip] = []
    assert not await admit.admit(ep, alone=False, deadline=time.monotonic() + 60, skipped=skipped)
    assert skipped[0].retry_after == 4 and sleep.delays == []


async def test_a_pinned_endpoint_is_waited_for_but_never_past_the_deadline() -> None:
    (ep,) = catalog(endpoint("a")).endpoints
    admit, sleep = admission(Gate(BreakerState(f"{MODEL}@a", open=True, until=NOW + 30)))
    with pytest.raises(UpstreamUnavailable) as info:
        await admit.admit(ep, alone=True, deadline=time.monotonic() + 5, skipped=[])
    assert info.value.retry_after == 30 and sleep.delays == []
