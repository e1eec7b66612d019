"""The guards: the admin token for the admin API, a reader (key or admin token) for ledger
status and metrics. Dict lookups against the key cache; no database.

Not the caller of a route (`gateway.keys.caller`).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from gateway.edge import auth_required_of
from gateway.keys.keyring import Keyring
from gateway.resources import resources_in


def keyring_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Keyring:
    """Guards take no dependencies: they reach the keyring through the typed accessor."""
    return resources_in(connection.app.state).keys


def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for the admin API: `Authorization: Bearer <GATEWAY_ADMIN_TOKEN>`."""
    keyring_of(connection).authorize_admin(connection.headers.get("authorization"))


def require_reader(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for ledger status and metrics: they follow GATEWAY_AUTH (a key or the admin token)."""
    required = auth_required_of(connection.scope)
    keyring_of(connection).authorize_reader(connection.headers.get("authorization"), required)
