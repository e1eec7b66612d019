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
import contextlib
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any

import msgspec
from litestar.types import Receive, Send

from gateway.chat.asgi import send_stream, stream_start
from gateway.chat.relay import SSE_DONE, error_chunk
from gateway.chat.service import StreamAnswer
from gateway.errors import error_response

KEEPALIVE = b": processing\n\n"


class _Keeper:
    """Commits the 200 and sends a comment every interval while a stream is being opened.
    Armed by a timer: a stream that opens within the interval costs one timer, no task."""

    def __init__(self, send: Send, interval_s: float, headers: Mapping[str, str]) -> None:
        self._send = send
        self._interval_s = interval_s
        self._headers = headers
        self.committed = False  # the 200 went out: the answer is an event stream from here on
        self._task: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = loop.call_later(interval_s, self._start)

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.ensure_future(self._beat())

    async def _beat(self) -> None:
        self.committed = True  # the start is written before `send` first yields
        await self._send(stream_start(self._headers))
        while True:
            await self._send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
            await asyncio.sleep(self._interval_s)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def stream_with_keepalive(
    send: Send,
    receive: Receive,
    opening: Awaitable[StreamAnswer],
    interval_s: float,
    early_headers: Mapping[str, str],
    generation_id: str,
    model: str,
) -> None:
    """Relay the stream `opening` yields; raises its error as usual if it fails in time.

    The opening runs in this task; only a stream still not open after `interval_s` gets a
    second task, which sends the 200 and the comments until it is."""
    keeper = _Keeper(send, interval_s, early_headers)
    try:
        streamed = await opening
    except Exception as exc:
        await keeper.stop()
        if not keeper.committed:
            raise  # an error here still gets its own status code
        await send_stream(send, receive, _failed(exc, generation_id, model), {}, started=True)
        return
    except BaseException:
        await keeper.stop()
        raise
    try:
        await keeper.stop()
    except BaseException:
        await streamed.chunks.aclose()  # type: ignore[attr-defined]  # records it cancelled
        raise
    if keeper.committed:
        await send_stream(send, receive, streamed.chunks, {}, started=True)
    else:
        await send_stream(send, receive, streamed.chunks, streamed.headers)


async def _failed(exc: Exception, generation_id: str, model: str) -> AsyncIterator[bytes]:
    """A committed stream that could not be opened: its one error event."""
    yield error_event(exc, generation_id, model)
    yield SSE_DONE


def error_event(exc: Exception, generation_id: str, model: str) -> bytes:
    """The chunk that ends a committed stream with the error its status would have carried."""
    error: dict[str, Any] = msgspec.json.decode(error_response(exc).content)["error"]
    metadata = dict(error["metadata"])
    reason = metadata.pop("reason")
    return error_chunk(
        generation_id, model, None, error["code"], error["message"], reason, metadata
    )
