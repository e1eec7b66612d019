"""`GET /api/v1/generation?id=gen-...`: a caller sees only its own generations (404 otherwise)."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import BadRequest, NotFound
from gateway.generations.queries import find_generation
from gateway.generations.views import generation_body
from gateway.json_encoding import encode
from gateway.keys.caller import Caller

GENERATION_PATHS = ["/api/v1/generation", "/v1/generation"]


@get(GENERATION_PATHS)
async def get_generation(
    caller: NamedDependency[Caller],
    engine: NamedDependency[AsyncEngine],
    generation_id: Annotated[str | None, QueryParameter(name="id")] = None,
) -> Response[bytes]:
    if not generation_id:
        raise BadRequest("the `id` query parameter is required", metadata={"parameter": "id"})
    record = await find_generation(engine, generation_id, caller.api_key_id)
    if record is None:
        # Another key's generation is reported exactly like one that does not exist.
        raise NotFound(f"generation {generation_id!r} not found", metadata={"id": generation_id})
    return Response(encode(generation_body(record)), media_type="application/json")
