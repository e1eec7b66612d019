"""Where Redis is and how to talk to it: a `redis://`, `rediss://` or `unix://` URL parsed for
the lean RESP client (`gateway.resp`), accepting the query options redis-py accepts.

Options that change what the RESP client does are applied; options that only tune redis-py's
own pool are accepted and ignored here (redis-py still reads them from the same URL); anything
else is refused in one line naming the option.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from gateway.resp.command import Command

CONNECT_TIMEOUT_S = 1.0  # a connect (and its AUTH/SELECT) slower than this fails
REPLY_TIMEOUT_S = 1.0  # a reply slower than this fails the whole connection

_TRUE = frozenset({"1", "true", "yes", "on", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "n"})
# redis-py's pool and retry knobs: meaningful to the redis-py clients reading the same URL; the
# RESP client multiplexes a few connections and never retries on its own, so they change nothing.
_IGNORED = frozenset(
    {
        "health_check_interval",
        "max_connections",
        "retry_on_timeout",
        "retry_on_error",
        "timeout",
        "encoding",
        "encoding_errors",
        "single_connection_client",
        "socket_keepalive_options",
    }
)
_APPLIED = frozenset(
    {
        "db",
        "username",
        "password",
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "client_name",
        "protocol",
        "decode_responses",
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_check_hostname",
    }
)


def _flag(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"Redis URL option {name}={value!r}: not a boolean")


def _seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"Redis URL option {name}={value!r}: not a number of seconds") from None
    if not seconds > 0:
        raise ValueError(f"Redis URL option {name}={value!r}: must be above 0")
    return seconds


def _tls(query: dict[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=query.get("ssl_ca_certs"), capath=query.get("ssl_ca_path")
    )
    if query.get("ssl_certfile"):
        context.load_cert_chain(query["ssl_certfile"], query.get("ssl_keyfile"))
    reqs = query.get("ssl_cert_reqs", "required").lower()
    if reqs not in ("none", "optional", "required"):
        raise ValueError(f"Redis URL option ssl_cert_reqs={reqs!r}: none, optional or required")
    check = _flag("ssl_check_hostname", query.get("ssl_check_hostname", "true"))
    if reqs == "none":
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    else:
        context.check_hostname = check
        context.verify_mode = ssl.CERT_OPTIONAL if reqs == "optional" else ssl.CERT_REQUIRED
    return context


@dataclass(frozen=True, slots=True)
class Address:
    """The parsed URL: where, who, and the timeouts and socket options for the RESP client."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # a unix socket instead of host and port
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: ssl.SSLContext | None = None
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    reply_timeout_s: float = REPLY_TIMEOUT_S
    keepalive: bool = True
    client_name: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Address:
        parts = urlsplit(url)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}: not redis(s), unix")
        for name in sorted(query):
            if name not in _APPLIED and name not in _IGNORED:
                raise ValueError(f"unsupported Redis URL option {name!r}")
        if query.get("protocol", "2") != "2":
            raise ValueError("Redis URL option protocol: only 2 (RESP2) is supported")
        if _flag("decode_responses", query.get("decode_responses", "false")):
            raise ValueError("Redis URL option decode_responses: the gateway reads raw bytes")
        options: dict[str, Any] = {}
        if "socket_timeout" in query:
            options["reply_timeout_s"] = _seconds("socket_timeout", query["socket_timeout"])
        if "socket_connect_timeout" in query:
            value = query["socket_connect_timeout"]
            options["connect_timeout_s"] = _seconds("socket_connect_timeout", value)
        if "socket_keepalive" in query:
            options["keepalive"] = _flag("socket_keepalive", query["socket_keepalive"])
        db_path = parts.path.strip("/") if parts.scheme != "unix" else ""
        username = query.get("username") or (unquote(parts.username) if parts.username else None)
        password = query.get("password") or (unquote(parts.password) if parts.password else None)
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or 6379,
            path=parts.path if parts.scheme == "unix" else None,
            db=int(query.get("db") or db_path or 0),
            username=username,
            password=password,
            tls=_tls(query) if parts.scheme == "rediss" else None,
            client_name=query.get("client_name") or None,
            **options,
        )

    def __str__(self) -> str:
        return self.path or f"{self.host}:{self.port}"

    def greeting(self) -> list[Command]:
        """What a new connection sends first: AUTH, SELECT and CLIENT SETNAME, as needed."""
        commands: list[Command] = []
        if self.password is not None:
            user = () if self.username is None else (self.username,)
            commands.append(("AUTH", *user, self.password))
        if self.db:
            commands.append(("SELECT", self.db))
        if self.client_name:
            commands.append(("CLIENT", "SETNAME", self.client_name))
        return commands
