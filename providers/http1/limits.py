"""The HTTP client's bounds on what an upstream may send and how long connections live.

Named defaults in one place; `HttpClient` takes a `Limits` and passes it to its pool and
connections. Not timeouts per request: those are `HttpTimeouts`.
"""

from __future__ import annotations

from typing import NamedTuple

MAX_HEADER_BYTES = 64 * 1024  # status line and headers of one response
MAX_DECODED_BYTES = 64 * 1024 * 1024  # a gzip/deflate body inflated past this is refused
# One origin may hold at most half of all connections: a slow provider can't starve the others,
# and 1,000 streams to one provider still fit.
MAX_CONNECTIONS = 2048  # open connections across all origins
MAX_PER_ORIGIN = 1024  # open connections to one scheme://host:port
KEEPALIVE_S = 4.0  # an idle connection older than this is not reused (servers close at 5-60 s)


class Limits(NamedTuple):
    max_header_bytes: int = MAX_HEADER_BYTES
    max_decoded_bytes: int = MAX_DECODED_BYTES
    max_connections: int = MAX_CONNECTIONS
    max_per_origin: int = MAX_PER_ORIGIN
    keepalive_s: float = KEEPALIVE_S
