"""`GET /metrics`: the request metrics (every worker's, summed) and the ledger's gauges, as
Prometheus text."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency

from gateway.keys.guard import require_reader
from gateway.ledger.lifecycle import Ledger
from gateway.metrics.prometheus import GatewayMetrics

PROMETHEUS_TEXT = "text/plain; version=0.0.4"  # Litestar appends the charset


@get("/metrics", guards=[require_reader])
async def metrics(
    ledger: NamedDependency[Ledger], gateway_metrics: NamedDependency[GatewayMetrics | None]
) -> Response[bytes]:
    status = await ledger.status()
    body = b"" if gateway_metrics is None else gateway_metrics.render()
    return Response(body + status.prometheus().encode(), media_type=PROMETHEUS_TEXT)
