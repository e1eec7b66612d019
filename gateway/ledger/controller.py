"""`GET /api/v1/ledger/status` (JSON) and `GET /metrics` (Prometheus text): the ledger queue's
depth and lag and the writer's counters."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from gateway.keys.guard import require_reader
from gateway.resources import Resources

PROMETHEUS_TEXT = "text/plain; version=0.0.4"  # Litestar appends the charset


@get("/api/v1/ledger/status", guards=[require_reader])
async def ledger_status(resources: NamedDependency[Resources]) -> dict[str, Any]:
    return (await resources.ledger.status()).as_dict()


@get("/metrics", guards=[require_reader])
async def metrics(resources: NamedDependency[Resources]) -> Response[str]:
    status = await resources.ledger.status()
    return Response(status.prometheus(), media_type=PROMETHEUS_TEXT)
