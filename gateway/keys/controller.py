"""`GET /api/v1/key` and `GET /api/v1/credits`: the caller's own key, its limit, usage and rate
limit (OpenRouter's shapes).

A key sees only itself; other keys are the admin API's (`gateway.keys.admin`).
"""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency

from gateway.json_encoding import encode
from gateway.keys.keyring import Keyring
from gateway.keys.record import ApiKey
from gateway.keys.views import credits, current_key

KEY_PATHS = ["/api/v1/key", "/v1/key"]
CREDITS_PATHS = ["/api/v1/credits", "/v1/credits"]


@get(KEY_PATHS)
async def get_current_key(
    api_key: NamedDependency[ApiKey], keyring: NamedDependency[Keyring]
) -> Response[bytes]:
    usage = await keyring.limiter.usage(api_key)
    return Response(encode(current_key(api_key, usage)), media_type="application/json")


@get(CREDITS_PATHS)
async def get_credits(
    api_key: NamedDependency[ApiKey], keyring: NamedDependency[Keyring]
) -> Response[bytes]:
    """OpenRouter's credits for the caller's key: its limit as `total_credits`, its usage."""
    usage = await keyring.limiter.usage(api_key)
    return Response(encode(credits(api_key, usage)), media_type="application/json")
