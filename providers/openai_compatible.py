"""Adapter for every OpenAI-compatible chat-completions upstream, over one pooled client.

Transport failures become `providers.errors` classes here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from providers.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamTimeout,
    error_for_status,
)
from providers.http1 import (
    ConnectFailed,
    ConnectionClosed,
    HttpClient,
    HttpClientError,
    HttpTimeouts,
    MalformedResponse,
    Response,
    Timeout,
)
from providers.provider import (
    Chunk,
    Completion,
    Timeouts,
    UpstreamCall,
    without_output_raisers,
)
from providers.sse import SseData, SseError
from providers.usage import normalize_usage

MAX_ERROR_BODY = 64 * 1024
DONE_GRACE_S = 0.05  # how long the end of the body after `[DONE]` may take to keep the connection
_decode = msgspec.json.decode
_encode = msgspec.json.encode


@contextmanager
def upstream_errors(provider: str, url: str = "") -> Iterator[None]:
    """Turn transport exceptions into `UpstreamError`s; nothing else converts them."""
    try:
        yield
    except UpstreamError:
        raise
    except (Timeout, TimeoutError) as exc:
        raise UpstreamTimeout(f"{provider}: upstream timed out ({exc})") from exc
    except ConnectFailed as exc:
        raise UpstreamConnectError(f"{provider}: cannot connect to {url or 'upstream'}") from exc
    except (ConnectionClosed, ConnectionError) as exc:
        raise UpstreamReset(f"{provider}: upstream closed the connection") from exc
    except (MalformedResponse, SseError) as exc:
        raise UpstreamProtocolError(f"{provider}: bad upstream response ({exc})") from exc


def http_timeouts(t: Timeouts) -> HttpTimeouts:
    """An attempt's limits as the HTTP client takes them."""
    return HttpTimeouts(t.connect, t.first_token, t.total)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _error_message(raw: bytes) -> tuple[str, Any]:
    try:
        body = _decode(raw)
    except msgspec.DecodeError:
        return raw[:200].decode("utf-8", "replace"), None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"], body
        if isinstance(err, str):
            return err, body
        if isinstance(body.get("message"), str):
            return body["message"], body
    return "upstream error", body


async def _finish_after_done(resp: Response) -> None:
    """Read the end of the body that follows `[DONE]`, so the connection can be reused; a body
    that doesn't end within DONE_GRACE_S takes its connection down when closed."""
    try:
        with contextlib.suppress(HttpClientError, TimeoutError):
            async with asyncio.timeout(DONE_GRACE_S):
                await resp.read(MAX_ERROR_BODY)
    finally:
        resp.close()


class OpenAICompatibleProvider:
    """Speaks `POST {base_url}/chat/completions`, streaming (SSE) and not."""

    kind = "openai"

    def __init__(self, client: HttpClient) -> None:
        self._client = client
        self._finishing: set[asyncio.Task[None]] = set()  # bodies read on after `[DONE]`

    def _finish_later(self, resp: Response) -> bool:
        """The client's stream ends at `[DONE]`; what the upstream still sends of its body is
        read in the background. False when the body has already ended."""
        if resp.complete:
            return False
        task = asyncio.create_task(_finish_after_done(resp))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        return True

    def _headers(self, call: UpstreamCall) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **call.endpoint.headers}
        if call.secret is not None:
            headers["Authorization"] = f"Bearer {call.secret.reveal()}"
        return headers

    def translate(self, call: UpstreamCall) -> dict[str, Any]:
        """The body sent upstream, without fields that would lift its output cap; adapters for
        dialects override this."""
        return without_output_raisers(call.body)

    async def _raise_for_status(self, call: UpstreamCall, resp: Response) -> None:
        if resp.status < 400:
            return
        raw = await resp.read(MAX_ERROR_BODY)
        message, body = _error_message(raw)
        raise error_for_status(
            resp.status,
            f"{call.endpoint.provider}: upstream {resp.status}: {message}",
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            body=body,
        )

    async def complete(self, call: UpstreamCall) -> Completion:
        provider = call.endpoint.provider
        started = time.monotonic()
        body = _encode(self.translate(call))
        with upstream_errors(provider, call.endpoint.url):
            resp = await self._client.request(
                "POST",
                f"{call.endpoint.url}/chat/completions",
                self._headers(call),
                body,
                http_timeouts(call.timeouts),
            )
            try:
                ttft = time.monotonic() - started
                await self._raise_for_status(call, resp)
                raw = await resp.read()
            finally:
                resp.close()
        latency = time.monotonic() - started
        try:
            payload = _decode(raw)
        except msgspec.DecodeError as exc:
            raise UpstreamProtocolError(f"{provider}: upstream sent invalid JSON") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            raise UpstreamProtocolError(f"{provider}: upstream answer has no choices")
        return self.finish(call, payload, ttft, latency)

    def finish(
        self, call: UpstreamCall, payload: dict[str, Any], ttft: float, latency: float
    ) -> Completion:
        """Normalize a non-streamed answer; dialect adapters add what their upstream reports."""
        return Completion(payload, normalize_usage(payload.get("usage")), ttft, latency)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[Chunk]:
        provider = call.endpoint.provider
        body = dict(self.translate(call))
        body["stream"] = True
        options = body.get("stream_options")
        body["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
        with upstream_errors(provider, call.endpoint.url):
            resp = await self._client.request(
                "POST",
                f"{call.endpoint.url}/chat/completions",
                self._headers(call),
                _encode(body),
                http_timeouts(call.timeouts),
            )
            finishing = False
            try:
                await self._raise_for_status(call, resp)
                events = SseData()  # blank separators, comments and `event:` lines are skipped
                async for raw in resp:
                    for data in events.feed(raw):
                        if data == b"[DONE]":
                            finishing = self._finish_later(resp)
                            return
                        yield self.parse_chunk(call, data)
                for data in events.flush():
                    if data == b"[DONE]":
                        return
                    yield self.parse_chunk(call, data)
                raise UpstreamReset(f"{provider}: stream ended without [DONE]")
            finally:
                if not finishing:
                    resp.close()

    def parse_chunk(self, call: UpstreamCall, data: bytes) -> Chunk:
        provider = call.endpoint.provider
        try:
            chunk = _decode(data)
        except msgspec.DecodeError as exc:
            raise UpstreamProtocolError(f"{provider}: invalid JSON in stream") from exc
        if not isinstance(chunk, dict):
            raise UpstreamProtocolError(f"{provider}: stream chunk is not an object")
        err = chunk.get("error")
        if err is not None:
            message = err.get("message") if isinstance(err, dict) else str(err)
            code = err.get("code") if isinstance(err, dict) else None
            status = code if isinstance(code, int) else 502
            raise error_for_status(
                status if status >= 400 else 502,
                f"{provider}: error in stream: {message}",
                body=chunk,
            )
        usage = chunk.get("usage")
        return Chunk(chunk, normalize_usage(usage) if usage else None)
