"""An `UpstreamTransport` over httpx, chosen per endpoint with `transport = "httpx"`: HTTP/2
(with the `h2` package), SOCKS proxies (`socksio`) and whatever else httpx speaks that the lean
`http1` client doesn't. Slower per call (benchmarks/NOTES.md), so never the default.

httpx's exceptions become the `providers.http1.errors` classes here, `received` included.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
from collections.abc import AsyncIterator, Mapping
from types import TracebackType

import httpx

from providers.http1.client import USER_AGENT
from providers.http1.errors import (
    ConnectFailed,
    ConnectionClosed,
    HttpClientError,
    MalformedResponse,
    Timeout,
    TooLarge,
)
from providers.http1.limits import Limits
from providers.http1.response import HttpTimeouts

DEFAULT_TIMEOUTS = HttpTimeouts()


def _hung_up(exc: Exception) -> bool:
    """h11 reports a peer that closed early as a protocol error; it is a closed connection."""
    text = str(exc).lower()
    return "disconnect" in text or "closed" in text


def _error(exc: Exception, received: bool, t: HttpTimeouts, status: int = 0) -> HttpClientError:
    """The http1 class of one httpx failure."""
    error: HttpClientError
    if isinstance(exc, httpx.ConnectTimeout):
        error = Timeout("connect", t.connect)
    elif isinstance(exc, httpx.PoolTimeout):
        error = Timeout("pool", t.headers)
    elif isinstance(exc, httpx.TimeoutException):
        error = Timeout("idle", t.idle)
    elif isinstance(exc, httpx.ConnectError | httpx.ProxyError | httpx.UnsupportedProtocol):
        error = ConnectFailed(f"cannot connect: {exc}")
    elif isinstance(exc, httpx.DecodingError):
        error = MalformedResponse(f"undecodable body: {exc}")
    elif isinstance(exc, httpx.RemoteProtocolError) and not _hung_up(exc):
        error = MalformedResponse(f"malformed HTTP response: {exc}")
    else:
        error = ConnectionClosed(f"connection closed before the response ended: {exc}")
    error.received, error.status = received, status
    return error


class HttpxResponse:
    def __init__(
        self,
        response: httpx.Response,
        timeouts: HttpTimeouts,
        total_at: float,
        max_decoded: int,
    ) -> None:
        self._response = response
        self.status = response.status_code
        self._timeouts = timeouts
        self._total_at = total_at
        self._max_decoded = max_decoded
        self._done = False
        self._iterator: AsyncIterator[bytes] | None = None

    @property
    def headers(self) -> httpx.Headers:
        return self._response.headers

    @property
    def complete(self) -> bool:
        return self._done

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        t = self._timeouts
        loop = asyncio.get_running_loop()
        pieces = self._response.aiter_bytes().__aiter__()
        decoded = 0
        while True:
            now = loop.time()
            deadline = min(now + t.idle, self._total_at)
            try:
                async with asyncio.timeout_at(deadline):
                    piece = await anext(pieces)
            except StopAsyncIteration:
                self._done = True
                return
            except TimeoutError as exc:
                await self.aclose()
                late = Timeout("total", t.total) if deadline >= self._total_at else None
                error = late or Timeout("idle", t.idle)
                error.received, error.status = True, self.status
                raise error from exc
            except httpx.HTTPError as exc:
                await self.aclose()
                raise _error(exc, True, t, self.status) from exc
            decoded += len(piece)
            if decoded > self._max_decoded:
                await self.aclose()
                too_large = TooLarge(f"decoded body larger than {self._max_decoded} bytes")
                too_large.received, too_large.status = True, self.status
                raise too_large
            yield piece

    async def read(self, limit: int | None = None) -> bytes:
        pieces: list[bytes] = []
        size = 0
        async for piece in self.aiter_bytes():
            pieces.append(piece)
            size += len(piece)
            if limit is not None and size >= limit:
                break
        if not self._done:
            await self.aclose()
        data = b"".join(pieces)
        return data if limit is None else data[:limit]

    async def aclose(self) -> None:
        await self._response.aclose()

    async def __aenter__(self) -> HttpxResponse:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class HttpxTransport:
    """One `httpx.AsyncClient` (environment proxies honoured, no redirects, HTTP/2 when `h2` is
    installed), with the same limits and timeouts as the http1 client."""

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        limits: Limits | None = None,
        timeouts: HttpTimeouts = DEFAULT_TIMEOUTS,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.limits = limits or Limits()
        self.timeouts = timeouts
        self._client = client or httpx.AsyncClient(
            http2=importlib.util.find_spec("h2") is not None,
            verify=ssl_context if ssl_context is not None else True,
            trust_env=True,
            follow_redirects=False,
            headers={"User-Agent": user_agent},
            limits=httpx.Limits(
                max_connections=self.limits.max_connections,
                max_keepalive_connections=self.limits.max_per_origin,
                keepalive_expiry=self.limits.keepalive_s,
            ),
        )

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        timeouts: HttpTimeouts | None = None,
        keepalive_s: float | None = None,
    ) -> HttpxResponse:
        t = timeouts or self.timeouts
        loop = asyncio.get_running_loop()
        total_at = loop.time() + t.total
        timeout = httpx.Timeout(connect=t.connect, read=None, write=t.connect, pool=t.headers)
        request = self._client.build_request(
            method, url, headers=dict(headers or {}), content=body or None, timeout=timeout
        )
        headers_s = min(t.headers, t.total)
        try:
            async with asyncio.timeout(headers_s):
                response = await self._client.send(request, stream=True)
        except TimeoutError as exc:
            phase = "headers" if t.headers < t.total else "total"
            raise Timeout(phase, headers_s) from exc  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise _error(exc, False, t) from exc
        return HttpxResponse(response, t, total_at, self.limits.max_decoded_bytes)

    async def aclose(self) -> None:
        await self._client.aclose()
