"""The admin API for keys: create (the secret is shown once), list, read, change, delete.

Guarded by the admin token from settings; a user key gets 403, no credentials 401.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from gateway.errors import BadRequest, NotFound
from gateway.json_encoding import encode
from gateway.keys.guard import require_admin
from gateway.keys.keyring import Keyring
from gateway.keys.limiter import Limiter
from gateway.keys.record import ApiKey
from gateway.keys.schemas import KeyPatch, KeySpec
from gateway.keys.sharing import refuse_unshared_limit
from gateway.keys.views import admin_key, created
from gateway.settings import Settings

_T = TypeVar("_T")


def _decode(raw: bytes, kind: type[_T]) -> _T:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"invalid key request: {exc}") from exc


def _json(body: dict[str, Any], status: int = 200) -> Response[bytes]:
    return Response(encode(body), status_code=status, media_type="application/json")


def _not_found(key_id: str) -> NotFound:
    return NotFound(f"key {key_id!r} not found", metadata={"id": key_id})


async def _view(limiter: Limiter, key: ApiKey) -> dict[str, Any]:
    return admin_key(key, await limiter.usage(key))


class KeysAdminController(Controller):
    path = "/api/v1/keys"
    guards = (require_admin,)

    @post("/", status_code=201)
    async def create_key(
        self,
        request: Request[Any, Any, Any],
        keyring: NamedDependency[Keyring],
        settings: NamedDependency[Settings],
    ) -> Response[bytes]:
        spec = _decode(await request.body(), KeySpec)
        refuse_unshared_limit(settings, spec)
        key, minted = await keyring.store.create(spec)
        await keyring.changed(key)
        usage = await keyring.limiter.usage(key)
        return _json(created(key, usage, minted), status=201)

    @get("/")
    async def list_keys(self, keyring: NamedDependency[Keyring]) -> Response[bytes]:
        listed = await keyring.store.list_keys()
        return _json({"data": [await _view(keyring.limiter, key) for key in listed]})

    @get("/{key_id:str}")
    async def get_key(
        self, key_id: FromPath[str], keyring: NamedDependency[Keyring]
    ) -> Response[bytes]:
        key = await keyring.store.get(key_id)
        if key is None:
            raise _not_found(key_id)
        return _json({"data": await _view(keyring.limiter, key)})

    @patch("/{key_id:str}")
    async def update_key(
        self,
        key_id: FromPath[str],
        request: Request[Any, Any, Any],
        keyring: NamedDependency[Keyring],
        settings: NamedDependency[Settings],
    ) -> Response[bytes]:
        changes = _decode(await request.body(), KeyPatch)
        refuse_unshared_limit(settings, changes)
        try:
            key = await keyring.store.update(key_id, changes)
        except ValueError as exc:
            raise BadRequest(f"invalid key request: {exc}") from exc
        if key is None:
            raise _not_found(key_id)
        await keyring.changed(key)
        return _json({"data": await _view(keyring.limiter, key)})

    @delete("/{key_id:str}", status_code=200)
    async def delete_key(
        self, key_id: FromPath[str], keyring: NamedDependency[Keyring]
    ) -> Response[bytes]:
        key = await keyring.store.delete(key_id)
        if key is None:
            raise _not_found(key_id)
        await keyring.changed(key)
        return _json({"data": {"id": key.id, "deleted": True}})
