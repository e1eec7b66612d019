"""The admin API for keys: create (the secret is shown once), list, read, change, delete.

Guarded by the admin token from settings; a user key gets 403, no credentials 401.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from gateway.chat.relay import encode
from gateway.errors import BadRequest, NotFound
from gateway.keys.guard import require_admin
from gateway.keys.record import ApiKey
from gateway.keys.schemas import KeyPatch, KeySpec
from gateway.keys.sharing import refuse_unshared_limit
from gateway.keys.views import admin_key, created
from gateway.resources import Resources

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


async def _view(resources: Resources, key: ApiKey) -> dict[str, Any]:
    return admin_key(key, await resources.keys.limiter.usage(key))


class KeysAdminController(Controller):
    path = "/api/v1/keys"
    guards = (require_admin,)

    @post("/", status_code=201)
    async def create_key(
        self, request: Request[Any, Any, Any], resources: NamedDependency[Resources]
    ) -> Response[bytes]:
        spec = _decode(await request.body(), KeySpec)
        refuse_unshared_limit(resources.settings, spec)
        keys = resources.keys
        key, minted = await keys.store.create(spec)
        await keys.changed(key)
        usage = await keys.limiter.usage(key)
        return _json(created(key, usage, minted), status=201)

    @get("/")
    async def list_keys(self, resources: NamedDependency[Resources]) -> Response[bytes]:
        listed = await resources.keys.store.list_keys()
        return _json({"data": [await _view(resources, key) for key in listed]})

    @get("/{key_id:str}")
    async def get_key(
        self, key_id: FromPath[str], resources: NamedDependency[Resources]
    ) -> Response[bytes]:
        key = await resources.keys.store.get(key_id)
        if key is None:
            raise _not_found(key_id)
        return _json({"data": await _view(resources, key)})

    @patch("/{key_id:str}")
    async def update_key(
        self,
        key_id: FromPath[str],
        request: Request[Any, Any, Any],
        resources: NamedDependency[Resources],
    ) -> Response[bytes]:
        changes = _decode(await request.body(), KeyPatch)
        refuse_unshared_limit(resources.settings, changes)
        keys = resources.keys
        try:
            key = await keys.store.update(key_id, changes)
        except ValueError as exc:
            raise BadRequest(f"invalid key request: {exc}") from exc
        if key is None:
            raise _not_found(key_id)
        await keys.changed(key)
        return _json({"data": await _view(resources, key)})

    @delete("/{key_id:str}", status_code=200)
    async def delete_key(
        self, key_id: FromPath[str], resources: NamedDependency[Resources]
    ) -> Response[bytes]:
        keys = resources.keys
        key = await keys.store.delete(key_id)
        if key is None:
            raise _not_found(key_id)
        await keys.changed(key)
        return _json({"data": {"id": key.id, "deleted": True}})
