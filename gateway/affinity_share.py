"""Prompt-cache affinity shared by the replicas through Redis: `{prefix}affinity:{conversation}`
-> "endpoint id, prompt tokens, expiry", kept as long as the endpoint's cache stays warm.

Written behind (a pipeline every `FLUSH_S`, by a lifespan task); read by the request path only
for a continuing conversation this replica doesn't know (`AffinityMemory.recall_shared`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.resp import Command, Commands, RespError
from providers.background import stop_task
from routing.affinity import Warm

log = logging.getLogger("gateway.affinity")

FLUSH_S = 0.2  # how far behind the other replicas learn a conversation's endpoint
MAX_PENDING = 10_000  # conversations queued between flushes; the oldest are dropped past it
MAX_VALUE_BYTES = 512  # a stored value longer than this is not ours: ignored


class RedisAffinityShare:
    """`AffinityShare` over the request path's Redis client (the lean one, or redis-py's
    cluster/sentinel client): one GET to read, pipelined SET PX to write."""

    def __init__(self, client: Commands, prefix: str, *, flush_s: float = FLUSH_S) -> None:
        self._client = client
        self._prefix = f"{prefix}affinity:"
        self._flush_s = flush_s
        self._pending: dict[str, Warm] = {}
        self._task: asyncio.Task[None] | None = None

    def publish(self, key: str, warm: Warm) -> None:
        pending = self._pending
        pending.pop(key, None)  # re-inserted last: the oldest is the first dropped
        pending[key] = warm
        if len(pending) > MAX_PENDING:
            del pending[next(iter(pending))]

    async def fetch(self, key: str) -> Warm | None:
        try:
            raw = await self._client.execute("GET", self._prefix + key)
        except RespError as exc:  # affinity is an optimisation: route without it
            log.debug("shared affinity unreadable: %s", exc)
            return None
        return _decode(raw)

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        now = time.time()
        commands: list[Command] = []
        for key, warm in pending.items():
            ttl_ms = math.ceil((warm.expires_at - now) * 1000)
            if ttl_ms > 0:
                value = f"{warm.endpoint_id}\n{warm.prompt_tokens}\n{warm.expires_at:.3f}"
                commands.append(("SET", self._prefix + key, value, "PX", ttl_ms))
        if not commands:
            return
        try:
            replies = await self._client.pipeline(commands)
        except RespError as exc:  # not retried: the next turn publishes again
            log.warning("shared affinity not written: %s", exc)
            return
        failed = [reply for reply in replies if isinstance(reply, RespError)]
        if failed:
            log.warning("shared affinity partly written: %s", failed[0])

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            try:
                await self.flush()
            except Exception:  # the loop must outlive anything one flush meets
                log.exception("shared affinity flush failed unexpectedly; continuing")

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="affinity-share")

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def aclose(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self.flush()


def _decode(raw: object) -> Warm | None:
    if not isinstance(raw, bytes | str) or len(raw) > MAX_VALUE_BYTES:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    parts = text.split("\n")
    if len(parts) != 3:
        return None
    endpoint_id, tokens, expires = parts
    try:
        warm = Warm(endpoint_id, int(tokens), float(expires))
    except ValueError:
        return None
    if not endpoint_id or warm.prompt_tokens < 0 or not math.isfinite(warm.expires_at):
        return None
    return warm


@asynccontextmanager
async def open_affinity_share(client: Commands, prefix: str) -> AsyncIterator[RedisAffinityShare]:
    share = RedisAffinityShare(client, prefix)
    share.start()
    try:
        yield share
    finally:
        await share.aclose()
