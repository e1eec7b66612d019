"""The keyring: the key cache, its refresher, the store and the limiter, plus the auth policy.

`open_keyring` is the lifespan's; `authenticate` and `authorize_admin` are pure lookups.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import Forbidden, Unauthorized
from gateway.keys.cache import KeyCache
from gateway.keys.hashing import bearer_token, hash_secret, same_secret
from gateway.keys.limiter import Limiter
from gateway.keys.memory_limiter import InProcessLimiter
from gateway.keys.rebuild import spend_from_ledger
from gateway.keys.record import ANONYMOUS, ApiKey
from gateway.keys.redis_limiter import RedisLimiter
from gateway.keys.refresh import KeyRefresher, announce
from gateway.keys.store import KeyStore
from gateway.redis_topology import BackgroundRedis
from gateway.resp import Commands
from gateway.settings import Settings
from providers.background import stop_task

# One message for every way a key can fail, so a response never hints that a key exists.
INVALID_KEY = "missing or invalid API key"
ADMIN_DISABLED = "the admin API is disabled: set GATEWAY_ADMIN_TOKEN to enable it"
ADMIN_ONLY = "this endpoint needs the admin token; an API key cannot use it"


def changes_channel(redis_prefix: str) -> str:
    return f"{redis_prefix}keys:changed"


@dataclass
class Keyring:
    cache: KeyCache
    store: KeyStore
    limiter: Limiter
    refresher: KeyRefresher
    auth_required: bool
    admin_token: str | None
    redis: BackgroundRedis | None = None
    channel: str = ""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)  # its background loops

    def _active(self, token: str | None) -> ApiKey | None:
        if token is None:
            return None
        key_hash = hash_secret(token)
        key = self.cache.find(key_hash)
        if key is None or not same_secret(key.key_hash, key_hash):
            return None
        return key

    def authenticate(self, authorization: str | None, required: bool | None = None) -> ApiKey:
        """The caller's key. With auth off, anything but an active key is the anonymous key.

        `required`: the request's own policy (`gateway.edge`); None: the settings' default."""
        key = self._active(bearer_token(authorization))
        if key is not None:
            return key
        if self.auth_required if required is None else required:
            raise Unauthorized(INVALID_KEY)
        return ANONYMOUS

    def authorize_reader(self, authorization: str | None, required: bool | None = None) -> None:
        """Ledger status and metrics: with auth on, the admin token or any active key."""
        if not (self.auth_required if required is None else required):
            return
        token = bearer_token(authorization)
        if token is not None and self.admin_token and same_secret(token, self.admin_token):
            return
        if self._active(token) is None:
            raise Unauthorized(INVALID_KEY)

    def authorize_admin(self, authorization: str | None) -> None:
        """Admin token -> pass; an active user key -> 403; anything else -> 401."""
        if not self.admin_token:
            raise Forbidden(ADMIN_DISABLED)
        token = bearer_token(authorization)
        if token is not None and same_secret(token, self.admin_token):
            return
        if self._active(token) is not None:
            raise Forbidden(ADMIN_ONLY)
        raise Unauthorized(INVALID_KEY)

    async def changed(self, key: ApiKey) -> None:
        """A key was written here: serve the new version at once and tell the other replicas."""
        self.cache.put([key])
        if self.redis is not None:
            await announce(self.redis, self.channel)


@asynccontextmanager
async def open_keyring(
    settings: Settings, engine: AsyncEngine, redis: BackgroundRedis | None, resp: Commands | None
) -> AsyncIterator[Keyring]:
    """Load the keys, then keep them current in the background until the app stops.

    `redis` carries the revocation broadcast; `resp`, the limiter's calls on the request path.
    """
    keys = settings.keys
    cache, store = KeyCache(), KeyStore(engine)
    refresher = KeyRefresher(store, cache, keys.refresh_interval_s, keys.full_reload_s)
    limiter: Limiter
    channel = changes_channel(settings.redis.redis_prefix)
    if resp is not None:
        limiter = RedisLimiter(
            resp,
            settings.redis.redis_prefix,
            keys.hold_ttl_s,
            lease_share=keys.lease_share if keys.lease else None,
            lease_ttl_s=keys.lease_ttl_s,
        )
    else:
        limiter = InProcessLimiter(keys.hold_ttl_s)
    keyring = Keyring(
        cache,
        store,
        limiter,
        refresher,
        auth_required=settings.server.auth_required,
        admin_token=settings.server.admin_token,
        redis=redis,
        channel=channel,
    )
    await refresher.refresh()
    if isinstance(limiter, InProcessLimiter):
        # No shared counters: start from what the ledger says each key has spent.
        now = datetime.now(UTC)
        limiter.seed(await spend_from_ledger(engine, now), now)
    async with AsyncExitStack() as stack:
        tasks = [asyncio.create_task(refresher.run(), name="keys-refresh")]
        leases = limiter.leases if isinstance(limiter, RedisLimiter) else None
        if leases is not None:
            stack.push_async_callback(leases.aclose)  # after its loop stops: returns them
            tasks.append(asyncio.create_task(leases.run(cache.get), name="keys-leases"))
        if redis is not None:
            tasks.append(asyncio.create_task(refresher.listen(redis, channel), name="keys-listen"))
        for task in tasks:
            stack.push_async_callback(_stop, task)
        keyring.tasks = tasks
        yield keyring


async def _stop(task: asyncio.Task[None]) -> None:
    await stop_task(task)
