"""The upstream transports the app opens: the lean http1 client for every endpoint, plus an
httpx client when some endpoint of the catalog asks for `transport = "httpx"`, plus one of
its own for an endpoint with its own TLS settings (`ca_bundle`, `client_cert`).

Built from `UpstreamSettings` (TLS, limits, User-Agent); proxies come from the environment.
"""

from __future__ import annotations

import ssl
from contextlib import AsyncExitStack

from gateway.settings import UpstreamSettings
from providers.catalog import Catalog
from providers.http1 import HttpClient
from providers.http1.client import tls_context
from providers.http1.limits import Limits
from providers.httpx_transport import HttpxTransport
from providers.transport import UpstreamTransport


def limits_of(settings: UpstreamSettings) -> Limits:
    return Limits(
        max_header_bytes=settings.max_header_bytes,
        max_decoded_bytes=settings.max_decoded_bytes,
        max_connections=settings.max_connections,
        max_per_origin=settings.max_per_origin,
    )


def tls_of(settings: UpstreamSettings) -> ssl.SSLContext | None:
    """The TLS context the settings ask for; None: the system's defaults."""
    if not (settings.ca_bundle or settings.client_cert):
        return None
    return tls_context(settings.ca_bundle, settings.client_cert, settings.client_key)


async def open_transports(
    settings: UpstreamSettings, catalog: Catalog, stack: AsyncExitStack
) -> tuple[HttpClient, dict[str, UpstreamTransport]]:
    """The default client and the other transports by name; closed with `stack`."""
    limits, tls = limits_of(settings), tls_of(settings)
    http = HttpClient(limits=limits, ssl_context=tls, user_agent=settings.user_agent)
    stack.push_async_callback(http.aclose)
    agent = settings.user_agent
    others: dict[str, UpstreamTransport] = {}
    if any(endpoint.transport == "httpx" for endpoint in catalog.endpoints):
        httpx_transport = HttpxTransport(limits=limits, ssl_context=tls, user_agent=agent)
        stack.push_async_callback(httpx_transport.aclose)
        others["httpx"] = httpx_transport
    for endpoint in catalog.endpoints:  # the catalog's own TLS settings win over the gateway's
        if not (endpoint.ca_bundle or endpoint.client_cert):
            continue
        own_tls = tls_context(
            endpoint.ca_bundle or settings.ca_bundle,
            endpoint.client_cert or settings.client_cert,
            endpoint.client_key if endpoint.client_cert else settings.client_key,
        )
        own: UpstreamTransport
        if endpoint.transport == "httpx":
            own = HttpxTransport(limits=limits, ssl_context=own_tls, user_agent=agent)
        else:
            own = HttpClient(limits=limits, ssl_context=own_tls, user_agent=agent)
        stack.push_async_callback(own.aclose)
        others[endpoint.id] = own
    return http, others
