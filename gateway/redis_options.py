"""The redis-py clients of the background (ledger writer, key refresh, stats, CLI): bounded so a
stalled or black-holed Redis fails their calls in seconds instead of blocking them for hours.

Options given in REDIS_URL's query win over these defaults (redis-py reads them from the URL).
The request path uses the lean RESP client (`gateway.resp`) with its own ~1 s timeouts.
"""

from __future__ import annotations

from typing import Any

from gateway.redis_topology import BackgroundRedis, Topology

# Above the ledger writer's longest blocking XREADGROUP (1 s) with room for a slow reply.
SOCKET_TIMEOUT_S = 10.0
SOCKET_CONNECT_TIMEOUT_S = 2.0
HEALTH_CHECK_INTERVAL_S = 30  # a connection idle this long is PINGed before it is used

BACKGROUND_OPTIONS: dict[str, Any] = {
    "socket_timeout": SOCKET_TIMEOUT_S,
    "socket_connect_timeout": SOCKET_CONNECT_TIMEOUT_S,
    "socket_keepalive": True,
    "health_check_interval": HEALTH_CHECK_INTERVAL_S,
}


def background_redis(url: str) -> BackgroundRedis:
    """A redis-py client for background work, with the bounds above (a cluster or Sentinel
    client for those REDIS_URL forms)."""
    return Topology.from_url(url).background(**BACKGROUND_OPTIONS)
