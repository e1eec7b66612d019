"""A Cluster or Sentinel deployment that can't be reached: the request path's limiter refuses
with 503 at once (the seam's errors), then fails fast (not tried) for a moment instead of
trying again per request."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.keys.limiter import LimiterUnavailable
from gateway.keys.record import ApiKey, RateLimit
from gateway.keys.redis_limiter import RedisLimiter
from gateway.redis_topology import Topology
from gateway.resp import ConnectionFailed, FailingFast
from tests.support.redis_topologies import free_port

NOW = datetime.now(UTC)
KEY = ApiKey("key-u", "u", "0" * 64, "sk-gw-u", NOW, NOW, Decimal(1), "none", RateLimit())


@pytest.mark.parametrize(
    "form", ["redis+cluster://127.0.0.1:{port}/", "redis+sentinel://127.0.0.1:{port}/m/0"]
)
@pytest.mark.parametrize("lease_share", [None, 0.1])
async def test_an_unreachable_deployment_is_a_503_then_fails_fast(
    form: str, lease_share: float | None
) -> None:
    # With leases (the default for a key with only a spend limit) the lease call fails the same
    # way, and the seam reports itself not connected: a lease admits nothing meanwhile.
    commands = Topology.from_url(form.format(port=free_port())).commands()
    limiter = RedisLimiter(commands, "gw:", lease_share=lease_share)
    try:
        with pytest.raises(LimiterUnavailable) as refused:
            await limiter.admit(KEY, Decimal("0.01"))
        assert isinstance(refused.value.__cause__, ConnectionFailed)
        assert not commands.connected()
        with pytest.raises(LimiterUnavailable) as again:
            await limiter.admit(KEY, Decimal("0.01"))
        assert isinstance(again.value.__cause__, FailingFast)
    finally:
        await commands.aclose()
