"""Authentication against the key cache: one answer for every bad key, the auth policy, the
admin token, and revocation in the cache."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import msgspec
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.errors import Forbidden, Unauthorized
from gateway.keys.cache import KeyCache
from gateway.keys.hashing import mint_secret
from gateway.keys.keyring import INVALID_KEY, Keyring
from gateway.keys.memory_limiter import InProcessLimiter
from gateway.keys.record import ANONYMOUS, ApiKey
from gateway.keys.refresh import KeyRefresher
from gateway.keys.schemas import KeyPatch, KeySpec
from gateway.keys.store import KeyStore

NOW = datetime(2026, 11, 24, tzinfo=UTC)
ADMIN = "the-admin-token"


def keyring(*keys: ApiKey, required: bool = True, admin: str | None = ADMIN) -> Keyring:
    cache = KeyCache()
    cache.put(keys)
    store = KeyStore(create_async_engine("sqlite+aiosqlite://"))  # never used: no I/O here
    return Keyring(cache, store, InProcessLimiter(), KeyRefresher(store, cache), required, admin)


def new_key(key_id: str = "key-1", **fields) -> tuple[ApiKey, str]:
    minted = mint_secret()
    key = ApiKey(key_id, "k", minted.key_hash, minted.prefix, NOW, NOW, **fields)
    return key, minted.secret


def test_an_active_key_authenticates():
    key, secret = new_key()
    assert keyring(key).authenticate(f"Bearer {secret}") == key


@pytest.mark.parametrize("state", ["missing", "malformed", "unknown", "disabled", "deleted"])
def test_every_bad_key_gets_the_same_401(state: str):
    key, secret = new_key()
    header = {
        "missing": None,
        "malformed": f"Token {secret}",
        "unknown": f"Bearer {secret}x",
        "disabled": f"Bearer {secret}",
        "deleted": f"Bearer {secret}",
    }[state]
    if state == "disabled":
        key = replace(key, disabled=True)
    if state == "deleted":
        key = replace(key, deleted_at=NOW)
    with pytest.raises(Unauthorized) as refused:
        keyring(key).authenticate(header)
    assert refused.value.message == INVALID_KEY and not refused.value.metadata


def test_with_auth_off_anything_but_an_active_key_is_anonymous():
    key, secret = new_key()
    ring = keyring(key, required=False)
    assert ring.authenticate(None) is ANONYMOUS
    assert ring.authenticate("Bearer unused") is ANONYMOUS
    assert ring.authenticate(f"Bearer {secret}") == key


def test_the_admin_api_wants_the_admin_token():
    key, secret = new_key()
    ring = keyring(key)
    ring.authorize_admin(f"Bearer {ADMIN}")
    with pytest.raises(Forbidden):
        ring.authorize_admin(f"Bearer {secret}")
    for header in (None, "Bearer nope", f"Bearer {ADMIN}x"):
        with pytest.raises(Unauthorized):
            ring.authorize_admin(header)
    with pytest.raises(Forbidden) as disabled:
        keyring(key, admin=None).authorize_admin(f"Bearer {ADMIN}")
    assert "GATEWAY_ADMIN_TOKEN" in disabled.value.message


def test_the_cache_drops_revoked_keys_and_ignores_stale_reads():
    key, secret = new_key()
    ring = keyring(key)
    revoked = replace(key, disabled=True, version=2)
    ring.cache.put([revoked])
    with pytest.raises(Unauthorized):
        ring.authenticate(f"Bearer {secret}")
    ring.cache.put([key])  # an older version read late must not revive the key
    with pytest.raises(Unauthorized):
        ring.authenticate(f"Bearer {secret}")
    ring.cache.replace([])
    assert ring.cache.get(key.id) is None


def test_key_specs_are_validated_at_the_edge():
    spec = msgspec.json.decode(
        b'{"name": "ci", "limit": 12.5, "limit_reset": "weekly"}', type=KeySpec
    )
    assert str(spec.limit) == "12.5"
    for bad in (
        b'{"name": ""}',
        b'{"name": "x", "limit": -1}',
        b'{"name": "x", "limit": 1e-13}',
        b'{"name": "x", "limit_reset": "yearly"}',
        b'{"name": "x", "requests_per_minute": 0}',
        b'{"name": "x", "pin_mode": true}',
        b'{"name": "x", "surprise": 1}',
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(bad, type=KeySpec)
    patch = msgspec.json.decode(b'{"limit": null, "disabled": true}', type=KeyPatch)
    assert patch.changes() == {"limit": None, "disabled": True}
