"""Who is calling: the one caller resolver every route uses, from the request's headers and the
edge's auth policy for its address. The chat route calls `resolve_caller` itself; the others
receive the `caller` (or only its `api_key`) as a dependency.

Not the admin token's guards (`gateway.keys.guard`) nor the stats viewer (`gateway.stats.viewer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from gateway.edge import auth_required_of
from gateway.keys.keyring import Keyring
from gateway.keys.record import ANONYMOUS, ApiKey
from gateway.limits import MAX_APP_CHARS
from gateway.text import clean_text


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request: key and app attribution."""

    api_key_id: str | None = None
    app_referer: str | None = None
    app_title: str | None = None
    key: ApiKey = ANONYMOUS  # its limits and routing defaults


def resolve_caller(
    headers: Mapping[str, str], keys: Keyring, required: bool | None = None
) -> Caller:
    """The authenticated caller (401 per the auth policy) and its app attribution."""
    key = keys.authenticate(headers.get("authorization"), required)
    referer = headers.get("http-referer") or headers.get("referer")
    title = headers.get("x-title") or headers.get("x-openrouter-title")
    return Caller(
        api_key_id=key.id,
        app_referer=None if referer is None else clean_text(referer, MAX_APP_CHARS),
        app_title=None if title is None else clean_text(title, MAX_APP_CHARS),
        key=key,
    )


def provide_caller(request: Request[Any, Any, Any], keyring: NamedDependency[Keyring]) -> Caller:
    """The `caller` dependency: `resolve_caller` under the edge's policy for this address."""
    return resolve_caller(request.headers, keyring, auth_required_of(request.scope))


def provide_api_key(caller: NamedDependency[Caller]) -> ApiKey:
    """The `api_key` dependency: the caller's key (anonymous when auth is off and none given)."""
    return caller.key
