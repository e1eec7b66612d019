"""The embedded default's limiter: the same rules as `RedisLimiter`, state in this process.

Atomic because no step awaits; with several worker processes each enforces its own share.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from gateway.keys.defaults import HOLD_TTL_S
from gateway.keys.limiter import (
    Hold,
    KeyUsage,
    rate_headers,
    rate_limited,
    spend_refused,
)
from gateway.keys.periods import periods_at
from gateway.keys.pico import to_pico
from gateway.keys.rates import check_requests, check_tokens, spend_tokens
from gateway.keys.record import ApiKey

if TYPE_CHECKING:
    from gateway.unit_of_work import UnitOfWork


class InProcessLimiter:
    def __init__(
        self, hold_ttl_s: float = HOLD_TTL_S, clock: Callable[[], float] = time.time
    ) -> None:
        self._hold_ttl_us = int(hold_ttl_s * 1_000_000)
        self._clock = clock
        self._request_tat: dict[str, int] = {}
        self._token_tat: dict[str, int] = {}
        self._spend: dict[tuple[str, str], int] = {}  # (key id, counter) -> pico-USD
        self._holds: dict[str, dict[str, tuple[int, int]]] = {}  # id -> hold -> amount, expiry
        self._counters: tuple[str, ...] = ()

    def seed(self, spend: dict[tuple[str, str], int], now: datetime) -> None:
        """Start from spend already settled (`gateway.keys.rebuild`), counted for `now`'s
        periods."""
        self._counters = periods_at(now).counters()
        self._spend.update({k: v for k, v in spend.items() if k[1] in self._counters})

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)

    def _held(self, key_id: str, now_us: int) -> int:
        holds = self._holds.get(key_id, {})
        for hold_id in [h for h, (_, expiry) in holds.items() if expiry <= now_us]:
            del holds[hold_id]
        return sum(amount for amount, _ in holds.values())

    async def admit(self, key: ApiKey, worst_case: Decimal) -> Hold:
        now_us = self._now_us()
        rpm, tpm = key.rate_limit.requests_per_minute, key.rate_limit.tokens_per_minute
        headers: dict[str, str] = {}
        request_tat: int | None = None
        if rpm is not None:
            checked = check_requests(self._request_tat.get(key.id), now_us, rpm)
            if checked.retry_after_us > 0:
                raise rate_limited("requests", rpm, checked.retry_after_us, now_us)
            request_tat = checked.tat_us
            headers = rate_headers(rpm, checked.remaining, checked.reset_us // 1000)
        if tpm is not None:
            tokens = check_tokens(self._token_tat.get(key.id), now_us, tpm)
            if tokens.retry_after_us > 0:
                raise rate_limited("tokens", tpm, tokens.retry_after_us, now_us)
        hold = Hold(key, "", 0, headers, at=datetime.fromtimestamp(now_us / 1e6, UTC))
        if key.limit is not None:
            amount = to_pico(worst_case)
            counter = periods_at(hold.at).of(key.limit_reset)
            used = self._spend.get((key.id, counter), 0)
            held = self._held(key.id, now_us)
            if used + held + amount > to_pico(key.limit):
                raise spend_refused(key, used, held, amount)
            hold.id, hold.amount = os.urandom(8).hex(), amount
            self._holds.setdefault(key.id, {})[hold.id] = (amount, now_us + self._hold_ttl_us)
        if request_tat is not None:
            self._request_tat[key.id] = request_tat
        return hold

    async def settle(self, hold: Hold, cost: Decimal, tokens: int) -> None:
        self._settle(hold, cost, tokens)

    def settle_into(self, work: UnitOfWork, hold: Hold, cost: Decimal, tokens: int) -> None:
        self._settle(hold, cost, tokens)  # nothing here waits: settled now, `work` untouched

    def _settle(self, hold: Hold, cost: Decimal, tokens: int) -> None:
        if hold.settled:
            return
        hold.settled = True
        key = hold.key
        if hold.id:
            self._holds.get(key.id, {}).pop(hold.id, None)
        now_us = self._now_us()
        pico = to_pico(cost)
        if pico:
            current = periods_at(datetime.fromtimestamp(now_us / 1e6, UTC)).counters()
            if current != self._counters:  # a new day: forget the counters of past periods
                self._counters = current
                self._spend = {k: v for k, v in self._spend.items() if k[1] in current}
            # Counted in the periods of the admit time, as the reports count the generation.
            for counter in periods_at(hold.at).counters():
                self._spend[(key.id, counter)] = self._spend.get((key.id, counter), 0) + pico
        tpm = key.rate_limit.tokens_per_minute
        if tpm is not None and tokens > 0:
            tat = spend_tokens(self._token_tat.get(key.id), now_us, tpm, tokens)
            self._token_tat[key.id] = tat

    async def usage(self, key: ApiKey) -> KeyUsage:
        now_us = self._now_us()
        periods = periods_at(datetime.fromtimestamp(now_us / 1e6, UTC))
        total, daily, weekly, monthly = (
            self._spend.get((key.id, counter), 0) for counter in periods.counters()
        )
        return KeyUsage(total, daily, weekly, monthly, self._held(key.id, now_us))
