"""A lean pooled HTTP/1.1 client (asyncio + httptools) for upstream calls; see `client`."""

from providers.http1.client import HttpClient
from providers.http1.errors import (
    ConnectFailed,
    ConnectionClosed,
    HttpClientError,
    MalformedResponse,
    Timeout,
    TooLarge,
)
from providers.http1.limits import Limits
from providers.http1.proxy import ProxyRules
from providers.http1.response import Headers, HttpTimeouts, Response

__all__ = [
    "ConnectFailed",
    "ConnectionClosed",
    "Headers",
    "HttpClient",
    "HttpClientError",
    "HttpTimeouts",
    "Limits",
    "MalformedResponse",
    "ProxyRules",
    "Response",
    "Timeout",
    "TooLarge",
]
