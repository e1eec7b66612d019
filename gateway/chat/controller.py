"""`POST /v1/chat/completions` (and `/api/v1/...`): the OpenAI-compatible entry point."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.response import Stream

from gateway.chat.request import decode_chat_request
from gateway.chat.service import Caller
from gateway.resources import Resources

CHAT_PATHS = ["/v1/chat/completions", "/api/v1/chat/completions"]


def caller_of(request: Request[Any, Any, Any]) -> Caller:
    headers = request.headers
    return Caller(
        api_key_id=None,
        app_referer=headers.get("http-referer") or headers.get("referer"),
        app_title=headers.get("x-title") or headers.get("x-openrouter-title"),
    )


@post(CHAT_PATHS, status_code=200)
async def chat_completions(
    request: Request[Any, Any, Any], resources: NamedDependency[Resources]
) -> Response[bytes] | Stream:
    explain = request.headers.get("x-route-explain", "") in ("1", "true")
    chat_request = decode_chat_request(await request.body(), explain_header=explain)
    caller = caller_of(request)
    if chat_request.route.stream:
        streamed = await resources.chat.stream(chat_request, caller)
        headers = {**streamed.headers, "Cache-Control": "no-cache"}
        return Stream(streamed.chunks, media_type="text/event-stream", headers=headers)
    answer = await resources.chat.complete(chat_request, caller)
    return Response(answer.body, media_type="application/json", headers=answer.headers)
