"""The chat route's own ASGI I/O: request headers and body in, bytes or an SSE stream out.

Not a framework: errors are raised, and Litestar's exception handling maps them as elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping

import anyio
from litestar.types import HTTPResponseStartEvent, HTTPScope, Receive, Send

from gateway.errors import BadRequest, PayloadTooLarge

JSON = b"application/json"
EVENT_STREAM = b"text/event-stream; charset=utf-8"
BODY_TOO_LARGE = "request body is larger than the configured limit"


def is_json(content_type: str | None) -> bool:
    """`application/json` or a `+json` type, any parameters."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def headers_of(scope: HTTPScope) -> dict[str, str]:
    """The request headers by lowercase name; the first of repeated headers wins."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """The whole request body; 413 past `limit` bytes, announced or received."""
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(f"invalid content-length: {declared!r}")
        if int(declared) > limit:
            raise PayloadTooLarge(BODY_TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BadRequest("the client disconnected before the whole body arrived")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(BODY_TOO_LARGE)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _encoded(headers: Mapping[str, str]) -> Iterable[tuple[bytes, bytes]]:
    return (
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    )


async def send_bytes(
    send: Send, status: int, body: bytes, headers: Mapping[str, str], content_type: bytes = JSON
) -> None:
    start = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    start.extend(_encoded(headers))
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_no_content(send: Send, headers: Mapping[str, str]) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": list(_encoded(headers))})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def stream_start(headers: Mapping[str, str]) -> HTTPResponseStartEvent:
    """The start of a 200 `text/event-stream` answer."""
    start = [(b"content-type", EVENT_STREAM), (b"cache-control", b"no-cache")]
    start.extend(_encoded(headers))
    return {"type": "http.response.start", "status": 200, "headers": start}


async def send_stream(
    send: Send,
    receive: Receive,
    chunks: AsyncIterator[bytes],
    headers: Mapping[str, str],
    *,
    started: bool = False,
) -> None:
    """Relay `chunks` as they come as `text/event-stream`; a client that leaves stops it.
    `started`: the 200 went out already (`headers` unused).

    The stream is closed in every case, so its own cleanup (recording a cancelled
    generation) runs now rather than whenever the garbage collector finds it.
    """
    try:
        if not started:
            await send(stream_start(headers))
        async with anyio.create_task_group() as group:
            group.start_soon(_pump, send, chunks, group.cancel_scope)
            await _wait_for_disconnect(receive)
            group.cancel_scope.cancel()
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def _pump(send: Send, chunks: AsyncIterator[bytes], scope: anyio.CancelScope) -> None:
    async for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    scope.cancel()  # done: stop waiting for a disconnect


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
