"""The limiter's contract: admit a request against its key's limits, settle it when it ends.

Two implementations share it: `RedisLimiter` (replicas) and `InProcessLimiter` (embedded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from gateway.errors import GatewayError, PaymentRequired, RateLimited
from gateway.keys.periods import next_reset
from gateway.keys.pico import from_pico, to_pico
from gateway.keys.record import ApiKey

if TYPE_CHECKING:
    from gateway.unit_of_work import UnitOfWork

WINDOW_S = 60.0  # rate limits are per minute


class LimiterUnavailable(GatewayError):
    """The shared limit state (Redis) did not answer: refuse rather than run unmetered."""

    client_status = 503
    code = "limiter_unavailable"


@dataclass(slots=True)
class Hold:
    """What `admit` reserved for one request; `settle` consumes it exactly once."""

    key: ApiKey
    id: str  # "" when nothing was reserved
    amount: int  # pico-USD reserved against the key's limit
    headers: dict[str, str] = field(default_factory=dict)  # X-RateLimit-* for the response
    settled: bool = False
    settle_failed: bool = False  # the settlement never reached the limit store
    # When it was admitted: the generation's created_at, and the periods (day, week, month)
    # its cost counts in when settled, as the billing reports count it (not the settle time).
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    lease: str = ""  # the worker's lease `amount` was held out of (`gateway.keys.lease`)


@dataclass(frozen=True, slots=True)
class Settlement:
    """A settlement to send again (spooled while Redis was away), as plain values."""

    key_id: str
    hold_id: str
    cost_pico: int
    tokens: int
    tokens_per_minute: int  # the key's, 0 for none
    at: datetime | None = None  # the hold's admit time (None in spools older than it: now)
    lease: str = ""  # admitted from this lease: `held` pico of it are given back
    held: int = 0

    @classmethod
    def of(cls, hold: Hold, cost: Decimal, tokens: int) -> Settlement:
        tpm = hold.key.rate_limit.tokens_per_minute or 0
        tokens = max(tokens, 0)
        return cls(
            hold.key.id, hold.id, to_pico(cost), tokens, tpm, hold.at, hold.lease, hold.amount
        )


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """Settled spend (pico-USD) per counter, plus what in-flight requests hold (and other
    workers' leases: `RedisLimiter` leaves out only its own unused slice)."""

    total: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    held: int = 0

    def of(self, reset: str) -> int:
        counts = {"daily": self.daily, "weekly": self.weekly, "monthly": self.monthly}
        return counts.get(reset, self.total)


class Limiter(Protocol):
    async def admit(self, key: ApiKey, worst_case: Decimal) -> Hold:
        """Check rate limits and reserve `worst_case` USD; raises `RateLimited` (429) or
        `PaymentRequired` (402) and reserves nothing when refused."""
        ...

    async def settle(self, hold: Hold, cost: Decimal, tokens: int) -> None:
        """Release the hold, add the real cost and tokens; a second call does nothing."""
        ...

    def settle_into(self, work: UnitOfWork, hold: Hold, cost: Decimal, tokens: int) -> None:
        """`settle`, as a write in the end-of-request unit of work (or at once, if it needs no
        I/O). A failure is logged, never raised: the answer is complete and the ledger has the
        cost."""
        ...

    async def usage(self, key: ApiKey) -> KeyUsage: ...


def rate_headers(limit: int, remaining: int, reset_ms: int) -> dict[str, str]:
    """OpenRouter's rate-limit headers; the reset is a unix time in milliseconds."""
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(remaining, 0)),
        "X-RateLimit-Reset": str(reset_ms),
    }


def rate_limited(kind: str, limit: int, retry_after_us: int, now_us: int) -> RateLimited:
    """The 429 for a request- or token-rate limit, with the wait rounded up to whole seconds."""
    retry_s = max(math.ceil(retry_after_us / 1_000_000), 1)
    unit = "requests" if kind == "requests" else "tokens"
    headers = {
        "Retry-After": str(retry_s),
        **rate_headers(limit, 0, math.ceil((now_us + retry_after_us) / 1000)),
    }
    return RateLimited(
        f"rate limit exceeded: {limit} {unit} per minute for this key; retry in {retry_s} s",
        metadata={"limit": limit, "unit": f"{unit}/min", "retry_after_s": retry_s},
        headers=headers,
    )


def spend_refused(key: ApiKey, used: int, held: int, amount: int) -> PaymentRequired:
    """The 402 when a request's worst case does not fit in what is left of the key's limit."""
    limit = key.limit if key.limit is not None else Decimal(0)
    remaining = max(limit - from_pico(used), Decimal(0))
    required = from_pico(amount)
    period = "" if key.limit_reset == "none" else f" {key.limit_reset}"
    resets = next_reset(key.limit_reset, datetime.now(UTC))
    return PaymentRequired(
        f"this key's{period} spend limit is exhausted: the request may cost up to "
        f"${required.normalize():f} and ${remaining.normalize():f} of ${limit.normalize():f} "
        "is left (requests in flight hold part of it); lower max_tokens or raise the limit",
        metadata={
            "limit": str(limit),
            "limit_remaining": str(remaining.normalize()),
            "limit_reset": key.limit_reset,
            "held": str(from_pico(held).normalize()),
            "required": str(required.normalize()),
            "resets_at": None if resets is None else resets.isoformat(),
        },
    )
