"""`GET /metrics`: the request metrics (every worker's, summed) and the ledger's gauges, as
Prometheus text."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency

from gateway.keys.guard import require_reader
from gateway.resources import Resources

PROMETHEUS_TEXT = "text/plain; version=0.0.4"  # Litestar appends the charset


@get("/metrics", guards=[require_reader])
async def metrics(resources: NamedDependency[Resources]) -> Response[bytes]:
    status = await resources.ledger.status()
    body = b"" if resources.metrics is None else resources.metrics.render()
    return Response(body + status.prometheus().encode(), media_type=PROMETHEUS_TEXT)
