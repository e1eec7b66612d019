"""`POST /v1/chat/completions` (and `/api/v1/...`): the OpenAI-compatible entry point.

A Litestar ASGI route that reads headers and body and sends its answer itself: Litestar's
request/response machinery cost 35-65 µs of CPU a request on the hottest route
(benchmarks/NOTES.md). Errors are raised as everywhere else and mapped by `gateway.errors`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

from litestar import asgi
from litestar.exceptions import MethodNotAllowedException
from litestar.types import HTTPScope, Receive, Scope, Send

from gateway.chat.asgi import headers_of, is_json, read_body, send_bytes, send_no_content
from gateway.chat.keepalive import stream_with_keepalive
from gateway.chat.request import decode_chat_request
from gateway.edge import auth_required_of
from gateway.errors import UnsupportedMediaType
from gateway.keys.caller import resolve_caller
from gateway.keys.preferences import route_for_key
from gateway.resources import resources_in

CHAT_PATHS = ["/v1/chat/completions", "/api/v1/chat/completions"]
# The Allow headers Litestar sends for a POST-only route: on a 405, and on OPTIONS (sorted).
NOT_ALLOWED = {"Allow": "POST, OPTIONS"}
OPTIONS = {"Allow": "OPTIONS, POST"}


@asgi(CHAT_PATHS, copy_scope=False)
async def chat_completions(scope: Scope, receive: Receive, send: Send) -> None:
    http = cast("HTTPScope", scope)
    method = http["method"]
    if method == "OPTIONS":
        await send_no_content(send, OPTIONS)
        return
    if method != "POST":
        raise MethodNotAllowedException(headers=NOT_ALLOWED)
    resources = resources_in(http["litestar_app"].state)
    headers = headers_of(http)
    required = auth_required_of(http)
    caller = resolve_caller(headers, resources.keys, required)
    if required is False and not is_json(headers.get("content-type")):
        # Without auth, a body a browser may send cross-site without asking (text/plain,
        # forms) is never parsed: only JSON, which needs a CORS preflight.
        raise UnsupportedMediaType("chat requests need Content-Type: application/json")
    explain = headers.get("x-route-explain", "") in ("1", "true")
    mode = caller.key.default_mode or "balanced"
    raw = await read_body(receive, headers, resources.settings.server.max_body_bytes)
    chat_request = decode_chat_request(
        raw, mode, explain_header=explain, session_header=headers.get("x-session-id")
    )
    route = route_for_key(chat_request.route, caller.key)
    if route is not chat_request.route:
        chat_request = replace(chat_request, route=route)
    if route.stream:
        await stream_with_keepalive(
            send,
            receive,
            resources.chat.stream(chat_request, caller),
            resources.settings.server.stream_keepalive_s,
            {"X-Generation-Id": chat_request.generation_id},
            chat_request.generation_id,
            route.model,
        )
        return
    answer = await resources.chat.complete(chat_request, caller)
    await send_bytes(send, 200, answer.body, answer.headers)
