"""`GET /api/v1/ledger/status`: the ledger queue's depth and lag and the writer's counters as
JSON (`GET /metrics` shows them as Prometheus text, `gateway.metrics.controller`)."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.di import NamedDependency

from gateway.keys.guard import require_reader
from gateway.ledger.lifecycle import Ledger


@get("/api/v1/ledger/status", guards=[require_reader])
async def ledger_status(ledger: NamedDependency[Ledger]) -> dict[str, Any]:
    return (await ledger.status()).as_dict()
