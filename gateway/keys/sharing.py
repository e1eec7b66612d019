"""Whether several worker processes can enforce key limits: only when they share counters
(Redis). Without Redis each worker counts alone, so N workers would allow N times every limit;
`gateway serve` refuses that at start rather than doing it silently."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.errors import BadRequest
from gateway.keys.store import KeyStore
from gateway.settings import Settings

LIMIT_FIELDS = ("limit", "requests_per_minute", "tokens_per_minute")


async def limited_key_names(database_url: str) -> list[str]:
    """Names (or ids) of the keys that carry a spend or rate limit."""
    engine = create_async_engine(database_url)
    try:
        keys = await KeyStore(engine).list_keys()
    finally:
        await engine.dispose()
    return [key.name or key.id for key in keys if key.limited]


def unshared_limits_reason(workers: int, redis_url: str | None, limited: list[str]) -> str | None:
    """The one-line reason not to start, or None when the limits hold."""
    if workers <= 1 or redis_url or not limited:
        return None
    shown = ", ".join(limited[:5]) + (", ..." if len(limited) > 5 else "")
    return (
        f"--workers {workers} without REDIS_URL would let every worker count key limits on its "
        f"own ({workers}x each limit) and {len(limited)} key(s) have limits ({shown}); "
        "set REDIS_URL or serve with one worker"
    )


def refuse_unshared_limit(settings: Settings, spec: Any) -> None:
    """400 for a key write that sets a limit these workers could only count one by one."""
    workers = settings.server.workers
    if workers <= 1 or settings.redis.redis_url:
        return
    if any(getattr(spec, name, None) not in (None, msgspec.UNSET) for name in LIMIT_FIELDS):
        raise BadRequest(
            f"this gateway runs {workers} workers without REDIS_URL: each would count a key "
            f"limit on its own ({workers}x the limit); set REDIS_URL or serve with one worker",
            metadata={"workers": workers},
        )
