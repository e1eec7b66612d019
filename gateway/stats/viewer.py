"""Who reads the stats: the admin (everyone's traffic) or one API key (its own traffic)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from gateway.errors import Forbidden
from gateway.keys.keyring import Keyring


@dataclass(frozen=True, slots=True)
class Viewer:
    api_key_id: str | None  # None: the admin, who sees every key's traffic

    @property
    def admin(self) -> bool:
        return self.api_key_id is None


def provide_viewer(request: Request[Any, Any, Any], keyring: NamedDependency[Keyring]) -> Viewer:
    """The admin token -> everything; an active API key -> its own traffic; else 401/403 as
    the admin API answers (the anonymous caller of an auth-off gateway sees nothing)."""
    authorization = request.headers.get("authorization")
    try:
        keyring.authorize_admin(authorization)
        return Viewer(None)
    except Forbidden:
        key = keyring.authenticate(authorization)
        if key.anonymous:
            raise
        return Viewer(key.id)


def require_admin_viewer(viewer: Viewer) -> None:
    if not viewer.admin:
        raise Forbidden("this stats endpoint needs the admin token; an API key cannot use it")
