"""The chat route's ASGI I/O on scripted messages: body limits, disconnects, stream framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.chat.asgi import headers_of, read_body, send_bytes, send_stream
from gateway.errors import BadRequest, PayloadTooLarge


def receiving(*messages: dict[str, Any]) -> Any:
    """A `receive` that plays `messages`, then waits forever (a client that stays)."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for message in messages:
        queue.put_nowait(message)

    async def receive() -> dict[str, Any]:
        return await queue.get()

    receive.queue = queue  # type: ignore[attr-defined]
    return receive


def part(body: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


class Sent:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages[1:]]


def test_headers_by_lowercase_name_first_one_wins() -> None:
    scope: Any = {"headers": [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")]}
    assert headers_of(scope) == {"authorization": "Bearer a"}


async def test_body_in_several_parts_is_joined() -> None:
    receive = receiving(part(b'{"a":', True), part(b"", True), part(b"1}"))
    assert await read_body(receive, {}, 100) == b'{"a":1}'


async def test_announced_body_over_the_limit_is_413_before_reading() -> None:
    receive = receiving()  # reading would wait forever
    with pytest.raises(PayloadTooLarge):
        await read_body(receive, {"content-length": "101"}, 100)


async def test_received_body_over_the_limit_is_413_whatever_was_announced() -> None:
    receive = receiving(part(b"x" * 60, True), part(b"x" * 60))
    with pytest.raises(PayloadTooLarge):
        await read_body(receive, {}, 100)


async def test_malformed_content_length_is_400() -> None:
    with pytest.raises(BadRequest):
        await read_body(receiving(), {"content-length": "12a"}, 100)


async def test_client_gone_while_sending_the_body_is_400() -> None:
    receive = receiving(part(b"{", True), {"type": "http.disconnect"})
    with pytest.raises(BadRequest):
        await read_body(receive, {}, 100)


async def test_bytes_answer_has_length_type_and_headers() -> None:
    send = Sent()
    await send_bytes(send, 200, b"{}", {"X-Generation-Id": "gen-1"})
    assert send.messages[0]["status"] == 200
    assert send.headers == {
        b"content-type": b"application/json",
        b"content-length": b"2",
        b"x-generation-id": b"gen-1",
    }
    assert send.bodies == [b"{}"] and send.messages[-1]["more_body"] is False


async def test_stream_is_sent_chunk_by_chunk_as_event_stream() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        yield b"data: 2\n\n"

    send = Sent()
    await send_stream(send, receiving(), chunks(), {"X-Route-Mode": "balanced"})
    assert send.headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert send.headers[b"cache-control"] == b"no-cache"
    assert send.headers[b"x-route-mode"] == b"balanced"
    assert send.bodies == [b"data: 1\n\n", b"data: 2\n\n", b""]
    assert [m["more_body"] for m in send.messages[1:]] == [True, True, False]


async def test_client_disconnect_stops_the_stream_and_closes_it() -> None:
    closed = asyncio.Event()
    first_sent = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            first_sent.set()
            await asyncio.Event().wait()  # an upstream that never sends the next chunk
            yield b"data: 2\n\n"
        finally:
            closed.set()

    receive = receiving()
    send = Sent()
    relay = asyncio.create_task(send_stream(send, receive, chunks(), {}))
    await asyncio.wait_for(first_sent.wait(), 1)
    receive.queue.put_nowait({"type": "http.disconnect"})
    await asyncio.wait_for(relay, 1)
    assert closed.is_set()
    assert send.bodies == [b"data: 1\n\n"]  # nothing after the client left, not even the end


async def test_client_disconnect_while_a_chunk_is_being_sent_closes_the_stream() -> None:
    closed = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"data: x\n\n"
        finally:
            closed.set()

    stuck = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            stuck.set()
            await asyncio.Event().wait()  # a client that stopped reading

    receive = receiving()
    relay = asyncio.create_task(send_stream(send, receive, chunks(), {}))
    await asyncio.wait_for(stuck.wait(), 1)
    receive.queue.put_nowait({"type": "http.disconnect"})
    await asyncio.wait_for(relay, 1)
    assert closed.is_set()  # closed now, not whenever the garbage collector finds it
