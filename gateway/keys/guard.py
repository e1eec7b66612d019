"""Who is calling: the authenticated key as a dependency, and the admin-token guard.

Both are dict lookups against the key cache; neither touches the database.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from gateway.edge import auth_required_of
from gateway.keys.keyring import Keyring
from gateway.keys.record import ApiKey


def keyring_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Keyring:
    keyring: Keyring = connection.app.state.resources.keys
    return keyring


def provide_api_key(request: Request[Any, Any, Any]) -> ApiKey:
    """The `api_key` dependency: the caller's key (anonymous when auth is off and none given)."""
    required = auth_required_of(request.scope)
    return keyring_of(request).authenticate(request.headers.get("authorization"), required)


def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for the admin API: `Authorization: Bearer <GATEWAY_ADMIN_TOKEN>`."""
    keyring_of(connection).authorize_admin(connection.headers.get("authorization"))


def require_reader(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for ledger status and metrics: they follow GATEWAY_AUTH (a key or the admin token)."""
    required = auth_required_of(connection.scope)
    keyring_of(connection).authorize_reader(connection.headers.get("authorization"), required)
