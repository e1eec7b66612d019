"""Adapter for every OpenAI-compatible chat-completions upstream, over an `UpstreamTransport`
(the pooled http1 client, or another one named by the endpoint's `transport`).

Transport failures become `providers.errors` classes here and nowhere else. A failure after
any byte of the answer arrived is marked `answered`: the upstream may have generated (and
billed) it, so routing never sends the request to that endpoint again.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import msgspec

from providers.catalog import Endpoint, Secret
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
    HttpClientError,
    HttpTimeouts,
    MalformedResponse,
    Timeout,
)
from providers.provider import (
    Chunk,
    Completion,
    Timeouts,
    UpstreamCall,
    without_output_raisers,
)
from providers.reasoning import (
    estimate_reasoning_tokens,
    map_reasoning,
    translate_reasoning,
    with_reasoning_tokens,
)
from providers.redaction import redact
from providers.sse import SseData, SseError
from providers.transport import UpstreamResponse, UpstreamTransport
from providers.usage import normalize_usage

MAX_ERROR_BODY = 64 * 1024
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # a non-streamed answer past this fails the attempt
MAX_RETRY_AFTER_S = 60.0  # an upstream's Retry-After is honoured up to this (shared breaker)
MAX_MESSAGE_CHARS = 2000  # of an upstream's error message, repeated to the client and ledger
DONE_GRACE_S = 0.05  # how long the end of the body after `[DONE]` may take to keep the connection
_decode = msgspec.json.decode
_encode = msgspec.json.encode


@contextmanager
def upstream_errors(provider: str, url: str = "", secret: Secret | None = None) -> Iterator[None]:
    """Turn transport exceptions into `UpstreamError`s; nothing else converts them. Their text
    is redacted: a parser's error may quote what the upstream sent (h11 quotes a bad header
    line, which an upstream echoing our request fills with the Authorization header)."""
    try:
        yield
    except UpstreamError:
        raise
    except (Timeout, TimeoutError) as exc:
        detail = _redact_text(str(exc), secret)
        raise _answered(UpstreamTimeout(f"{provider}: upstream timed out ({detail})"), exc) from exc
    except ConnectFailed as exc:
        where = _without_credentials(url) if url else "upstream"
        raise UpstreamConnectError(f"{provider}: cannot connect to {where}") from exc
    except (ConnectionClosed, ConnectionError) as exc:
        cut = "cut its answer short" if _received(exc) else "closed the connection"
        raise _answered(UpstreamReset(f"{provider}: upstream {cut}"), exc) from exc
    except SseError as exc:  # only ever raised on a body: the upstream answered
        detail = _redact_text(str(exc), secret)
        error = UpstreamProtocolError(f"{provider}: bad upstream response ({detail})")
        error.answered = True
        raise error from exc
    except MalformedResponse as exc:
        detail = _redact_text(str(exc), secret)
        error = UpstreamProtocolError(f"{provider}: bad upstream response ({detail})")
        raise _answered(error, exc) from exc


def _without_credentials(url: str) -> str:
    """A URL as an error may show it: no user info, no query (either can hold a key)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _received(exc: BaseException) -> bool:
    return isinstance(exc, HttpClientError) and exc.received


def _answered(error: UpstreamError, cause: BaseException) -> UpstreamError:
    """Mark a failure that came after the answer had started: the attempt keeps the status the
    upstream sent (a 200 cut short may have been generated and billed upstream)."""
    if _received(cause):
        assert isinstance(cause, HttpClientError)
        error.answered = True
        error.upstream_status = cause.status or None
        error.message += " after its answer had started; not sent to it again"
        if cause.status:
            error.message += f" (it answered {cause.status}: the upstream may bill it)"
    return error


def http_timeouts(t: Timeouts, streamed: bool = True) -> HttpTimeouts:
    """An attempt's limits as the HTTP client takes them. A non-streamed answer's headers come
    after the whole generation, so they are awaited under the total limit, not the first-token
    one (a long generation would otherwise time out, be re-sent and be paid for again)."""
    headers = t.first_token if streamed else t.total
    return HttpTimeouts(t.connect, headers, t.total, t.idle)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), within
    [0, MAX_RETRY_AFTER_S]: `inf` or a date years ahead must not keep an endpoint out of every
    replica's rotation for years. Unreadable values (`nan`, garbage) count as absent."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


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


def _redacted(call: UpstreamCall, message: str) -> str:
    """Upstream text as the gateway may repeat it: no credential (an upstream that echoes the
    Authorization header must not leak it to the client, the ledger or a log)."""
    return _redact_text(message, call.secret)


def _redact_text(message: str, secret: Secret | None) -> str:
    # Redacted before it is cut: a cut through the secret would leave a piece of it.
    return redact(message, (None if secret is None else secret.reveal(),))[:MAX_MESSAGE_CHARS]


async def _finish_after_done(resp: UpstreamResponse) -> None:
    """Read the end of the body that follows `[DONE]`, so the connection can be reused; a body
    that doesn't end within DONE_GRACE_S takes its connection down when closed."""
    try:
        with contextlib.suppress(HttpClientError, TimeoutError):
            async with asyncio.timeout(DONE_GRACE_S):
                await resp.read(MAX_ERROR_BODY)
    finally:
        await resp.aclose()


class OpenAICompatibleProvider:
    """Speaks `POST {base_url}/chat/completions`, streaming (SSE) and not.

    `client` is the default transport (`transport = "http1"`); `transports` holds the others an
    endpoint may name, and under an endpoint's id one made for it alone (its own TLS settings).
    """

    kind = "openai"

    def __init__(
        self,
        client: UpstreamTransport,
        transports: Mapping[str, UpstreamTransport] | None = None,
    ) -> None:
        self._client = client
        self._transports = dict(transports or {})
        self._finishing: set[asyncio.Task[None]] = set()  # bodies read on after `[DONE]`

    def _transport(self, endpoint: Endpoint) -> UpstreamTransport:
        own = self._transports.get(endpoint.id)  # one with the endpoint's own TLS settings
        if own is not None:
            return own
        name = endpoint.transport
        if name == "http1":
            return self._client
        found = self._transports.get(name)
        if found is None:
            raise UpstreamConnectError(f"{endpoint.provider}: transport {name!r} is not set up")
        return found

    async def _post(self, call: UpstreamCall, body: bytes, streamed: bool) -> UpstreamResponse:
        endpoint = call.endpoint
        return await self._transport(endpoint).request(
            "POST",
            f"{endpoint.url}/chat/completions",
            self.request_headers(call),
            body,
            http_timeouts(call.timeouts, streamed),
            endpoint.keepalive_s,
        )

    def _finish_later(self, resp: UpstreamResponse) -> bool:
        """The client's stream ends at `[DONE]`; what the upstream still sends of its body is
        read in the background. False when the body has already ended."""
        if resp.complete:
            return False
        task = asyncio.create_task(_finish_after_done(resp))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        return True

    def request_headers(self, call: UpstreamCall) -> dict[str, str]:
        """The headers sent upstream (with the endpoint's secret); adapters may add to them."""
        headers = {"Content-Type": "application/json", **call.endpoint.headers}
        if call.secret is not None:
            headers["Authorization"] = f"Bearer {call.secret.reveal()}"
        return headers

    def translate(self, call: UpstreamCall) -> dict[str, Any]:
        """The body sent upstream, without fields that would lift its output cap and with
        OpenRouter's `reasoning` in the host's terms; adapters for dialects override this."""
        return translate_reasoning(without_output_raisers(call.body), call.requested_max_tokens)

    def map_reasoning(self, call: UpstreamCall, payload: dict[str, Any], key: str) -> int:
        """The host's reasoning output as OpenRouter's `reasoning` in each choice's `key`
        (`message` or `delta`); returns how many characters of reasoning there were."""
        choices = payload.get("choices")
        if not isinstance(choices, list):
            return 0
        exclude: bool | None = None  # read from the request only for a part with reasoning
        found = 0
        for choice in choices:
            part = choice.get(key) if isinstance(choice, dict) else None
            if isinstance(part, dict) and ("reasoning_content" in part or "reasoning" in part):
                if exclude is None:
                    exclude = _excluded(call.body)
                found += len(map_reasoning(part, exclude))
        return found

    async def _raise_for_status(self, call: UpstreamCall, resp: UpstreamResponse) -> None:
        if resp.status < 400:
            return
        try:
            raw = await resp.read(MAX_ERROR_BODY)
        except HttpClientError:  # the status is the verdict; a cut error body doesn't change it
            raw = b""
        message, body = _error_message(raw)
        raise error_for_status(
            resp.status,
            f"{call.endpoint.provider}: upstream {resp.status}: {_redacted(call, message)}",
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            body=body,
        )

    async def complete(self, call: UpstreamCall) -> Completion:
        provider = call.endpoint.provider
        started = time.monotonic()
        body = _encode(self.translate(call))
        with upstream_errors(provider, call.endpoint.url, call.secret):
            resp = await self._post(call, body, streamed=False)
            try:
                ttft = time.monotonic() - started
                await self._raise_for_status(call, resp)
                raw = await resp.read(MAX_RESPONSE_BYTES + 1)
            finally:
                await resp.aclose()
        latency = time.monotonic() - started
        if len(raw) > MAX_RESPONSE_BYTES:
            raise UpstreamProtocolError(
                f"{provider}: upstream answer is larger than {MAX_RESPONSE_BYTES} bytes"
            )
        try:
            payload = _decode(raw)
        except msgspec.DecodeError as exc:
            error = UpstreamProtocolError(f"{provider}: upstream sent invalid JSON")
            error.answered = True  # a 200 with a body: whatever it was, it may be billed
            error.upstream_status = resp.status
            raise error from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            error = UpstreamProtocolError(f"{provider}: upstream answer has no choices")
            error.answered, error.upstream_status = True, resp.status
            raise error
        return self.finish(call, payload, ttft, latency)

    def finish(
        self, call: UpstreamCall, payload: dict[str, Any], ttft: float, latency: float
    ) -> Completion:
        """Normalize a non-streamed answer; dialect adapters add what their upstream reports."""
        usage = normalize_usage(payload.get("usage"))
        reasoning = self.map_reasoning(call, payload, "message")
        if reasoning and not usage.reasoning_tokens:
            usage = with_reasoning_tokens(
                usage,
                estimate_reasoning_tokens(usage.completion_tokens, reasoning, _content(payload)),
            )
        return Completion(payload, usage, ttft, latency)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[Chunk]:
        provider = call.endpoint.provider
        body = dict(self.translate(call))
        body["stream"] = True
        options = body.get("stream_options")
        body["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
        with upstream_errors(provider, call.endpoint.url, call.secret):
            resp = await self._post(call, _encode(body), streamed=True)
            finishing = False
            try:
                await self._raise_for_status(call, resp)
                events = SseData()  # blank separators, comments and `event:` lines are skipped
                async for raw in resp.aiter_bytes():
                    for data in events.feed(raw):
                        if data == b"[DONE]":
                            finishing = self._finish_later(resp)
                            return
                        yield self.parse_chunk(call, data)
                for data in events.flush():
                    if data == b"[DONE]":
                        return
                    yield self.parse_chunk(call, data)
                ended = UpstreamReset(f"{provider}: stream ended without [DONE]")
                ended.answered, ended.upstream_status = True, resp.status
                raise ended
            finally:
                if not finishing:
                    await resp.aclose()

    def parse_chunk(self, call: UpstreamCall, data: bytes) -> Chunk:
        provider = call.endpoint.provider
        try:
            chunk = _decode(data)
        except msgspec.DecodeError as exc:
            error = UpstreamProtocolError(f"{provider}: invalid JSON in stream")
            error.answered = True
            raise error from exc
        if not isinstance(chunk, dict):
            error = UpstreamProtocolError(f"{provider}: stream chunk is not an object")
            error.answered = True
            raise error
        err = chunk.get("error")
        if err is not None:
            message = err.get("message") if isinstance(err, dict) else str(err)
            code = err.get("code") if isinstance(err, dict) else None
            status = code if isinstance(code, int) else 502
            raise error_for_status(
                status if status >= 400 else 502,
                f"{provider}: error in stream: {_redacted(call, str(message))}",
                body=chunk,
            )
        usage = chunk.get("usage")
        if self.kind == "openai":  # dialect adapters map their own reasoning output
            self.map_reasoning(call, chunk, "delta")
        return Chunk(chunk, normalize_usage(usage) if usage else None)


def _excluded(body: dict[str, Any]) -> bool:
    reasoning = body.get("reasoning")
    return (isinstance(reasoning, dict) and reasoning.get("exclude") is True) or body.get(
        "include_reasoning"
    ) is False


def _content(payload: dict[str, Any]) -> int:
    size = 0
    for choice in payload.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        size += len(content) if isinstance(content, str) else 0
    return size
