"""The API key as the gateway holds it in memory: identity, limits, routing defaults.

Plain data; storing it is `gateway.keys.store`, enforcing its limits `gateway.keys.limiter`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from routing.preferences import Mode, ProviderPreferences

LimitReset = Literal["daily", "weekly", "monthly", "none"]
LIMIT_RESETS: tuple[LimitReset, ...] = ("daily", "weekly", "monthly", "none")
ANONYMOUS_ID = "anonymous"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Per-key rate limits per minute; None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    @property
    def limited(self) -> bool:
        return self.requests_per_minute is not None or self.tokens_per_minute is not None


NO_RATE_LIMIT = RateLimit()


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    key_hash: str  # sha256 hex of the secret; empty for the anonymous key
    prefix: str
    created_at: datetime
    updated_at: datetime
    limit: Decimal | None = None  # USD per `limit_reset` period; None: unlimited
    limit_reset: LimitReset = "none"
    rate_limit: RateLimit = NO_RATE_LIMIT
    default_mode: Mode | None = None  # used when the request names no mode
    pin_mode: bool = False  # the key's mode wins over the request's
    provider: ProviderPreferences | None = None  # enforced under the request's preferences
    disabled: bool = False
    deleted_at: datetime | None = None
    version: int = 1  # grows with every write; the cache keeps the highest it has seen

    @property
    def active(self) -> bool:
        return not self.disabled and self.deleted_at is None

    @property
    def anonymous(self) -> bool:
        return self.id == ANONYMOUS_ID

    @property
    def limited(self) -> bool:
        """Whether a request needs the limiter before it runs."""
        return self.limit is not None or self.rate_limit.limited


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ANONYMOUS = ApiKey(
    id=ANONYMOUS_ID, name="anonymous", key_hash="", prefix="", created_at=_EPOCH, updated_at=_EPOCH
)
