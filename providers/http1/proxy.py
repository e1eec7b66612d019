"""Egress proxies from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`), as curl and
httpx read them: plain http through an http proxy in absolute form, https through a CONNECT
tunnel. Not SOCKS, not a TLS connection to the proxy itself: those need `transport = "httpx"`.
"""

from __future__ import annotations

import base64
import ipaddress
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)  # Proxy-Authorization value

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(
                f"proxy scheme {parts.scheme!r} is not supported by the http1 transport "
                '(only http://host:port); use transport = "httpx" for the endpoint'
            )
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(parts.hostname, parts.port or 80, authorization)


class ProxyRules:
    """Which proxy, if any, serves a scheme and host; read from the environment once."""

    def __init__(
        self, environ: dict[str, str] | None = None, *, bypass_loopback: bool = True
    ) -> None:
        """`environ`: the variables to read (the process's by default); `bypass_loopback`:
        loopback hosts (localhost, 127.0.0.0/8, ::1) are always reached directly."""
        self._bypass_loopback = bypass_loopback
        found = (
            urllib.request.getproxies_environment()
            if environ is None
            else {k[:-6].lower(): v for k, v in environ.items() if k.lower().endswith("_proxy")}
        )
        self._no_proxy = found.get("no", "")
        schemes = [scheme for scheme in ("http", "https") if found.get(scheme)]
        self._proxies = {scheme: Proxy.from_url(found[scheme]) for scheme in schemes}

    def __bool__(self) -> bool:
        return bool(self._proxies)

    def for_target(self, scheme: str, host: str, port: int) -> Proxy | None:
        proxy = self._proxies.get(scheme)
        if proxy is None or self._bypass(host, port):
            return None
        return proxy

    def _bypass(self, host: str, port: int) -> bool:
        if self._bypass_loopback and _loopback(host):  # a local llama.cpp server, say
            return True
        for entry in (e.strip().lower() for e in self._no_proxy.split(",")):
            if not entry:
                continue
            if entry == "*":
                return True
            name, _, only_port = entry.partition(":") if entry.count(":") == 1 else (entry, "", "")
            if only_port and only_port != str(port):
                continue
            name = name.lstrip(".")
            host = host.lower().strip("[]")
            if host == name or host.endswith("." + name):
                return True
        return False


def _loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
