"""A stream that waits long for its first token: commit the 200 and send SSE comments meanwhile.

Opening a stream (routing, fallback, the first token) may take seconds; idle proxies and
clients give up on a response that says nothing that long. If the stream is not open after
the keepalive interval, the response starts (200, `text/event-stream`) and a `: processing`
comment goes out every interval until it is; fallback still happens meanwhile, since no
content has been sent. A failure after the headers is one error event and `data: [DONE]`.
Not the relay itself (`gateway.chat.service`) nor the ASGI I/O (`gateway.chat.asgi`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any

import msgspec
from litestar.types import Receive, Send

from gateway.chat.asgi import send_stream
from gateway.chat.relay import SSE_DONE, error_chunk
from gateway.chat.service import StreamAnswer
from gateway.errors import error_response

KEEPALIVE = b": processing\n\n"
_discarding: set[asyncio.Task[None]] = set()  # strong references until each is done


async def stream_with_keepalive(
    send: Send,
    receive: Receive,
    opening: Awaitable[StreamAnswer],
    interval_s: float,
    early_headers: Mapping[str, str],
    generation_id: str,
    model: str,
) -> None:
    """Relay the stream `opening` yields; raises its error as usual if it fails in time."""
    task = asyncio.ensure_future(opening)
    try:
        done, _ = await asyncio.wait({task}, timeout=interval_s)
    except BaseException:
        _abandon(task)
        raise
    if done:
        streamed = task.result()  # an error here still gets its own status code
        await send_stream(send, receive, streamed.chunks, streamed.headers)
        return
    chunks = _after_commit(task, interval_s, generation_id, model)
    await send_stream(send, receive, chunks, early_headers)


async def _after_commit(
    task: asyncio.Future[StreamAnswer], interval_s: float, generation_id: str, model: str
) -> AsyncIterator[bytes]:
    streamed: StreamAnswer | None = None
    try:
        yield KEEPALIVE
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval_s)
            if done:
                break
            yield KEEPALIVE
        try:
            streamed = task.result()
        except Exception as exc:  # every failure becomes the one error event
            yield error_event(exc, generation_id, model)
            yield SSE_DONE
            return
        async for chunk in streamed.chunks:
            yield chunk
    finally:
        if streamed is not None:
            await streamed.chunks.aclose()  # type: ignore[attr-defined]
        else:
            _abandon(task)


def error_event(exc: Exception, generation_id: str, model: str) -> bytes:
    """The chunk that ends a committed stream with the error its status would have carried."""
    error: dict[str, Any] = msgspec.json.decode(error_response(exc).content)["error"]
    metadata = dict(error["metadata"])
    reason = metadata.pop("reason")
    return error_chunk(
        generation_id, model, None, error["code"], error["message"], reason, metadata
    )


def _abandon(task: asyncio.Future[StreamAnswer]) -> None:
    """Stop opening a stream nobody will read; one that opened anyway is closed."""
    if not task.done():
        task.cancel()
    task.add_done_callback(_close_if_opened)


def _close_if_opened(task: asyncio.Future[StreamAnswer]) -> None:
    if task.cancelled() or task.exception() is not None:
        return
    discard = asyncio.ensure_future(_discard(task.result().chunks))
    _discarding.add(discard)
    discard.add_done_callback(_discarding.discard)


async def _discard(chunks: AsyncIterator[bytes]) -> None:
    """Start the relay and close it at once, so it records a cancelled generation."""
    try:
        await anext(chunks)
    except StopAsyncIteration:
        pass
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
