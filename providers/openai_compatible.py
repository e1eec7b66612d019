"""Adapter for every OpenAI-compatible chat-completions upstream, over one pooled client.

Transport failures become `providers.errors` classes here and nowhere else.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import msgspec

from providers.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamTimeout,
    error_for_status,
)
from providers.provider import Chunk, Completion, UpstreamCall
from providers.usage import normalize_usage

MAX_ERROR_BODY = 64 * 1024
_decode = msgspec.json.decode
_encode = msgspec.json.encode


@contextmanager
def upstream_errors(provider: str, url: str = "") -> Iterator[None]:
    """Turn transport exceptions into `UpstreamError`s; nothing else converts them."""
    try:
        yield
    except UpstreamError:
        raise
    except TimeoutError as exc:
        raise UpstreamTimeout(f"{provider}: upstream timed out") from exc
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamConnectError(f"{provider}: cannot connect to {url or 'upstream'}") from exc
    except (
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientOSError,
        aiohttp.ClientPayloadError,
        ConnectionError,
    ) as exc:
        raise UpstreamReset(f"{provider}: upstream closed the connection") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamProtocolError(
            f"{provider}: bad upstream response ({type(exc).__name__})"
        ) from exc


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


class OpenAICompatibleProvider:
    """Speaks `POST {base_url}/chat/completions`, streaming (SSE) and not."""

    kind = "openai"

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def _headers(self, call: UpstreamCall) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **call.endpoint.headers}
        if call.secret is not None:
            headers["Authorization"] = f"Bearer {call.secret.reveal()}"
        return headers

    def translate(self, call: UpstreamCall) -> dict[str, Any]:
        """The body sent upstream; adapters for dialects override this."""
        return call.body

    async def _raise_for_status(self, call: UpstreamCall, resp: aiohttp.ClientResponse) -> None:
        if resp.status < 400:
            return
        raw = await resp.content.read(MAX_ERROR_BODY)
        message, body = _error_message(raw)
        raise error_for_status(
            resp.status,
            f"{call.endpoint.provider}: upstream {resp.status}: {message}",
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            body=body,
        )

    async def complete(self, call: UpstreamCall) -> Completion:
        provider = call.endpoint.provider
        t = call.timeouts
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect)
        body = _encode(self.translate(call))
        with upstream_errors(provider, call.endpoint.url):
            async with asyncio.timeout(t.first_token):
                resp = await self._session.post(
                    f"{call.endpoint.url}/chat/completions",
                    data=body,
                    headers=self._headers(call),
                    timeout=timeout,
                )
            try:
                ttft = time.monotonic() - started
                await self._raise_for_status(call, resp)
                raw = await resp.read()
            finally:
                resp.release()
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
        t = call.timeouts
        body = dict(self.translate(call))
        body["stream"] = True
        options = body.get("stream_options")
        body["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
        timeout = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect)
        with upstream_errors(provider, call.endpoint.url):
            async with asyncio.timeout(t.first_token):
                resp = await self._session.post(
                    f"{call.endpoint.url}/chat/completions",
                    data=_encode(body),
                    headers=self._headers(call),
                    timeout=timeout,
                )
            try:
                await self._raise_for_status(call, resp)
                done = False
                async for line in resp.content:
                    if not line.startswith(b"data:"):
                        continue  # blank separators, comments, `event:` lines
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        done = True
                        break
                    yield self.parse_chunk(call, data)
                if not done:
                    raise UpstreamReset(f"{provider}: stream ended without [DONE]")
            finally:
                resp.release()

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
