"""`POST /v1/chat/completions` (and `/api/v1/...`): the OpenAI-compatible entry point."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from litestar import Request, Response, post
from litestar.response import Stream

from gateway.chat.request import decode_chat_request
from gateway.chat.service import Caller
from gateway.keys.preferences import route_for_key
from gateway.resources import Resources

CHAT_PATHS = ["/v1/chat/completions", "/api/v1/chat/completions"]


def caller_of(request: Request[Any, Any, Any]) -> Caller:
    """The authenticated caller (401 per the auth policy) and its app attribution."""
    headers = request.headers
    resources: Resources = request.app.state.resources
    key = resources.keys.authenticate(headers.get("authorization"))
    return Caller(
        api_key_id=key.id,
        app_referer=headers.get("http-referer") or headers.get("referer"),
        app_title=headers.get("x-title") or headers.get("x-openrouter-title"),
        key=key,
    )


@post(CHAT_PATHS, status_code=200)
async def chat_completions(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
    # Resources come from app state, not the `resources` dependency: Litestar's dependency
    # resolution costs ~16 µs a request (benchmarks/NOTES.md), on the hottest route.
    resources: Resources = request.app.state.resources
    caller = caller_of(request)
    explain = request.headers.get("x-route-explain", "") in ("1", "true")
    mode = caller.key.default_mode or "balanced"
    chat_request = decode_chat_request(await request.body(), mode, explain_header=explain)
    chat_request = replace(chat_request, route=route_for_key(chat_request.route, caller.key))
    if chat_request.route.stream:
        streamed = await resources.chat.stream(chat_request, caller)
        headers = {**streamed.headers, "Cache-Control": "no-cache"}
        return Stream(streamed.chunks, media_type="text/event-stream", headers=headers)
    answer = await resources.chat.complete(chat_request, caller)
    return Response(answer.body, media_type="application/json", headers=answer.headers)
