"""`GET /health` (the process answers) and `GET /ready` (its database and Redis answer and
its background loops run)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.keys.keyring import Keyring
from gateway.ledger.lifecycle import Ledger
from gateway.redis_topology import BackgroundRedis
from providers.llamacpp_health import LlamaCppMonitor
from routing.runtime import Routing

READY_TIMEOUT_S = 2.0


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


async def _check_db(engine: AsyncEngine) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


async def _check_redis(redis: BackgroundRedis | None) -> str:
    if redis is None:
        return "in-process"
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


def _loops(
    keyring: Keyring, ledger: Ledger, routing: Routing | None, llamacpp: LlamaCppMonitor | None
) -> dict[str, str]:
    """Each background loop of this process by task name: "running", or why it stopped."""
    tasks: list[asyncio.Task[None] | None] = [*keyring.tasks, ledger.upkeep_task]
    if routing is not None:
        tasks.append(routing.live.task)
    if llamacpp is not None:
        tasks.append(llamacpp.task)
    loops: dict[str, str] = {}
    for task in tasks:
        if task is not None:
            loops[task.get_name()] = _state_of(task)
    if ledger.writer_here:
        loops["ledger-writer"] = "running" if ledger.writer.running else "stopped"
    return loops


def _state_of(task: asyncio.Task[None]) -> str:
    if not task.done():
        return "running"
    if task.cancelled():
        return "stopped: cancelled"
    error = task.exception()
    return "stopped" if error is None else f"stopped: {type(error).__name__}"


@get("/ready")
async def ready(
    engine: NamedDependency[AsyncEngine],
    redis: NamedDependency[BackgroundRedis | None],  # a cluster client too (not a msgspec type)
    keyring: NamedDependency[Keyring],
    ledger: NamedDependency[Ledger],
    routing: NamedDependency[Routing | None],
    llamacpp: NamedDependency[LlamaCppMonitor | None],
) -> Response[dict[str, Any]]:
    db, redis_state = await asyncio.gather(_check_db(engine), _check_redis(redis))
    loops = _loops(keyring, ledger, routing, llamacpp)
    stopped = sorted(name for name, state in loops.items() if state != "running")
    spool = ledger.spool
    spooling = spool is None or spool.accepting
    ok = db == "ok" and redis_state in ("ok", "in-process") and not stopped and spooling
    body: dict[str, Any] = {
        "status": "ready" if ok else "not ready",
        "database": db,
        "redis": redis_state,
        "loops": loops,
    }
    if stopped:
        body["stopped"] = stopped
    if spool is not None:
        body["spool"] = {
            "depth": spool.depth,
            "bytes": spool.size,
            "accepting": spool.accepting,
            "broken": spool.broken,
        }
    return Response(body, status_code=200 if ok else 503)
