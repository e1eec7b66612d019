"""The benchmarks' own upstream: a raw uvloop + httptools protocol, so it is never the bottleneck.

`POST .../chat/completions` answers a fixed OpenAI-shaped body, or, when the body says
`"stream":true`, an SSE stream of `x_chunks` chunks (default 8) spaced `x_interval_ms` apart
(default 0: all at once), the last one carrying usage. Not a simulator: no failures, no timing
other than that spacing. Run: `python -m benchmarks.harness.upstream --port P`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import cast

import httptools
import msgspec
import uvloop

HOST = "127.0.0.1"
PATH = "/v1/chat/completions"
COMPLETIONS_SUFFIX = b"/chat/completions"
REQUEST_BODY = (
    b'{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
)
UPSTREAM_BODY = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,'
    b'"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hello! How can I help you today?"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}'
)
STREAM_MARKER = b'"stream":true'
DEFAULT_CHUNKS = 8

_CHUNK = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"bench-model","choices":[{"index":0,"delta":{"content":"tok "},'
    b'"finish_reason":null}]}\n\n'
)
_LAST_CHUNK = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"bench-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":%d,"total_tokens":%d}}\n\n'
)
_DONE = b"data: [DONE]\n\n"


class StreamShape(msgspec.Struct):
    """The two body fields that shape a streamed answer; the gateway passes them through."""

    x_chunks: int = DEFAULT_CHUNKS
    x_interval_ms: float = 0.0


_decode_shape = msgspec.json.Decoder(StreamShape).decode


def http_response(status: bytes, body: bytes, *, close: bool) -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
        status,
        len(body),
    )
    return head + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
CONTENT_EVENT = _http_chunk(_CHUNK)
STREAM_END = _http_chunk(_DONE) + b"0\r\n\r\n"


def last_event(chunks: int) -> bytes:
    return _http_chunk(_LAST_CHUNK % (chunks, chunks + 12))


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection answering `POST .../chat/completions`."""

    OK = http_response(b"200 OK", UPSTREAM_BODY, close=False)
    OK_CLOSE = http_response(b"200 OK", UPSTREAM_BODY, close=True)
    NOT_FOUND = http_response(b"404 Not Found", b'{"error":"not found"}', close=True)

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._close()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        url, self._url = self._url, b""
        body, self._body = self._body, b""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._parser.get_method() != b"POST" or not url.endswith(COMPLETIONS_SUFFIX):
            transport.write(self.NOT_FOUND)
            self._close()
        elif STREAM_MARKER in body:
            self._stream(body)
        elif self._parser.should_keep_alive():
            transport.write(self.OK)
        else:
            transport.write(self.OK_CLOSE)
            self._close()

    def _stream(self, body: bytes) -> None:
        try:
            shape = _decode_shape(body)
        except msgspec.DecodeError:
            shape = StreamShape()
        chunks = max(shape.x_chunks, 1)
        assert self._transport is not None
        if shape.x_interval_ms <= 0:
            self._transport.write(
                STREAM_HEAD + CONTENT_EVENT * (chunks - 1) + last_event(chunks) + STREAM_END
            )
            return
        if chunks == 1:
            self._transport.write(STREAM_HEAD + last_event(1) + STREAM_END)
            return
        self._transport.write(STREAM_HEAD + CONTENT_EVENT)
        self._schedule(chunks, 1, shape.x_interval_ms / 1000)

    def _schedule(self, chunks: int, sent: int, interval_s: float) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(interval_s, self._paced, chunks, sent, interval_s)

    def _paced(self, chunks: int, sent: int, interval_s: float) -> None:
        """The next event of a paced stream; `sent` events went out before it."""
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if sent >= chunks - 1:
            transport.write(last_event(chunks) + STREAM_END)
            return
        transport.write(CONTENT_EVENT)
        self._schedule(chunks, sent + 1, interval_s)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def serve_upstream(port: int, host: str = HOST) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness.upstream")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvloop.run(serve_upstream(args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
