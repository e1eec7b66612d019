"""The auth policy of a connection and the loopback checks, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.edge import _cross_site, auth_required_for, is_loopback_host
from gateway.settings import ServerSettings


def _scope(server: Any) -> Any:
    return {"type": "http", "server": server, "headers": []}


@pytest.mark.parametrize(
    ("server", "required"),
    [
        (("127.0.0.1", 8000), False),
        (("::1", 8000), False),
        (("192.0.2.2", 8000), True),
        (("0.0.0.0", 8000), True),
        (("/run/gateway.sock", None), False),
        (None, True),
    ],
)
def test_auth_follows_the_local_address(server: Any, required: bool) -> None:
    # GATEWAY_HOST is loopback (the default): the address the request arrived on decides.
    assert auth_required_for(ServerSettings(), _scope(server)) is required


def test_a_non_loopback_gateway_host_requires_keys_from_everyone() -> None:
    wildcard = ServerSettings(host="0.0.0.0")
    assert auth_required_for(wildcard, _scope(("127.0.0.1", 8000))) is True


def test_an_explicit_setting_wins() -> None:
    assert auth_required_for(ServerSettings(auth="off"), _scope(("192.0.2.2", 80))) is False
    assert auth_required_for(ServerSettings(auth="required"), _scope(("127.0.0.1", 80))) is True


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("app.localhost", True),
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("[::1]", True),
        ("LOCALHOST.", True),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("192.0.2.2", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"host": "127.0.0.1:8000"}, False),
        ({"host": "localhost"}, False),
        ({"host": "[::1]:8000", "origin": "http://[::1]:3000"}, False),
        ({"host": "127.0.0.1:8000", "origin": "http://localhost:5173"}, False),
        ({"host": "127.0.0.1:8000", "origin": "https://evil.example"}, True),
        ({"host": "127.0.0.1:8000", "origin": "null"}, True),
        ({"host": "evil.example:8000"}, True),
        ({}, True),
    ],
)
def test_cross_site_requests(headers: dict[str, str], refused: bool) -> None:
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    assert (_cross_site(raw) is not None) is refused


async def test_the_edge_bounds_heads_a_server_did_not() -> None:
    """Under a server other than ours (no `HEAD_CHECKED` in the scope) the edge counts the
    head itself; under ours it trusts the count already made."""
    from gateway.edge import HEAD_CHECKED, EdgeGuard

    called: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(True)

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    server = ServerSettings(max_header_count=8, max_header_bytes=1024)
    guard = EdgeGuard(app, server)  # type: ignore[arg-type]
    many = [(b"x-f%d" % n, b"1") for n in range(9)]
    scope = {"type": "http", "server": ("127.0.0.1", 8000), "headers": many, "raw_path": b"/"}
    await guard(scope, None, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 431 and not called
    big = [(b"host", b"127.0.0.1"), (b"x-title", b"t" * 1100)]
    sent.clear()
    await guard({**scope, "headers": big}, None, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 431 and not called
    sent.clear()
    small = [(b"host", b"127.0.0.1")]
    await guard({**scope, "headers": small, HEAD_CHECKED: True}, None, send)  # type: ignore[arg-type]
    assert called and not sent
