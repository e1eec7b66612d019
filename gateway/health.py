"""`GET /health` (the process answers) and `GET /ready` (its database and Redis answer)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gateway.resources import Resources

READY_TIMEOUT_S = 2.0


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


async def _check_db(resources: NamedDependency[Resources]) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), resources.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


async def _check_redis(resources: NamedDependency[Resources]) -> str:
    if resources.redis is None:
        return "in-process"
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await resources.redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


@get("/ready")
async def ready(resources: NamedDependency[Resources]) -> Response[dict[str, Any]]:
    db, redis = await asyncio.gather(_check_db(resources), _check_redis(resources))
    ok = db == "ok" and redis in ("ok", "in-process")
    spool = resources.ledger.spool
    spooling = spool is None or spool.accepting
    body: dict[str, Any] = {
        "status": "ready" if ok and spooling else "not ready",
        "database": db,
        "redis": redis,
    }
    if spool is not None:
        body["spool"] = {
            "depth": spool.depth,
            "bytes": spool.size,
            "accepting": spool.accepting,
            "broken": spool.broken,
        }
    return Response(body, status_code=200 if ok and spooling else 503)
