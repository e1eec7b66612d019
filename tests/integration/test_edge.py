"""The edge against a real server: auth decided by the address a request arrives on, Host and
Origin checks with auth off, JSON-only chat bodies, header limits, the concurrency cap."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.embedded import serve_in_loop
from gateway.ledger.migrate import upgrade_to_head_async
from gateway.settings import (
    CatalogSettings,
    DatabaseSettings,
    LedgerSettings,
    ServerSettings,
    Settings,
)
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from tests.support.gateway import RunningGateway, free_port, run_gateway, write_catalog
from tests.support.polling import eventually

MODEL = "openai/gpt-oss-20b"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet({"a": Profile(completion_tokens=3)})
    yield fleet
    await fleet.close()


async def _settings(tmp_path: Path, fleet: Fleet, **server: Any) -> Settings:
    database = f"sqlite+aiosqlite:///{tmp_path}/gw.sqlite3"
    await upgrade_to_head_async(database)
    return Settings(
        server=ServerSettings(**server),
        catalog=CatalogSettings(
            catalog=write_catalog(tmp_path / "c.toml", {"a": fleet.url_for("a")})
        ),
        database=DatabaseSettings(database_url=database),
        ledger=LedgerSettings(flush_interval_s=0.05),
    )


@pytest.fixture
async def gateway(tmp_path: Path, fleet: Fleet) -> AsyncIterator[RunningGateway]:
    async with run_gateway(await _settings(tmp_path, fleet)) as running:
        yield running


def assert_openai_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "metadata"}


async def test_a_cross_origin_text_plain_post_is_refused_with_auth_off(
    gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        csrf = await client.post(
            f"{gateway.v1}/chat/completions",
            content=json.dumps(BODY),
            headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
        )
        assert_openai_error(csrf, 403)
        # Same origin but not JSON: still not parsed.
        plain = await client.post(
            f"{gateway.v1}/chat/completions",
            content=json.dumps(BODY),
            headers={"Content-Type": "text/plain"},
        )
        assert_openai_error(plain, 415)
        # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host.
        rebound = await client.post(
            f"{gateway.v1}/chat/completions", json=BODY, headers={"Host": "evil.example:8000"}
        )
        assert_openai_error(rebound, 403)
        models = await client.get(f"{gateway.v1}/models", headers={"Host": "evil.example"})
        assert_openai_error(models, 403)
        # The local page of a local tool, and a plain SDK call, still work.
        local = await client.post(
            f"{gateway.v1}/chat/completions", json=BODY, headers={"Origin": "http://localhost:3000"}
        )
        assert local.status_code == 200, local.text
        sdk = await client.post(f"{gateway.v1}/chat/completions", json=BODY)
        assert sdk.status_code == 200


async def test_oversized_or_too_many_headers_are_431(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        big = await client.post(
            f"{gateway.v1}/chat/completions", json=BODY, headers={"X-Title": "t" * 20_000}
        )
        assert_openai_error(big, 431)
        many = await client.post(
            f"{gateway.v1}/chat/completions",
            json=BODY,
            headers={f"X-Filler-{n}": "x" for n in range(150)},
        )
        assert_openai_error(many, 431)


def _own_address() -> str | None:
    """A non-loopback address of this machine (traffic to it never leaves the host)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))  # no packet is sent: this only picks a route
            address: str = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


async def test_auth_follows_the_address_a_request_arrives_on(tmp_path: Path, fleet: Fleet) -> None:
    address = _own_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    port = free_port()
    # GATEWAY_HOST says loopback (the default), but the socket is bound to every address, as
    # `uvicorn --factory gateway.app:app_from_env --host 0.0.0.0` would.
    settings = await _settings(tmp_path, fleet)
    app = create_app(settings)
    async with serve_in_loop(app, "0.0.0.0", port), httpx.AsyncClient(timeout=10) as client:
        remote = await client.post(f"http://{address}:{port}/v1/chat/completions", json=BODY)
        assert_openai_error(remote, 401)
        status = await client.get(f"http://{address}:{port}/api/v1/ledger/status")
        assert_openai_error(status, 401)
        local = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY)
        assert local.status_code == 200
        generation_id = local.headers["x-generation-id"]
        here = f"http://127.0.0.1:{port}/api/v1/generation?id={generation_id}"

        async def recorded() -> bool:
            return (await client.get(here)).status_code == 200

        await eventually(recorded, 10, what="the loopback caller's generation")
        # The billing reports (#14) and the generation lookup follow the same per-address
        # rule: a caller without a key from another address reads nothing of the anonymous key.
        for path in (
            "/api/v1/reports/billing",
            "/api/v1/reports/statement?month=2026-12",
            "/api/v1/activity",
            f"/api/v1/generation?id={generation_id}",
        ):
            report = await client.get(f"http://{address}:{port}{path}")
            assert_openai_error(report, 401)
        mine = await client.get(f"http://127.0.0.1:{port}/api/v1/reports/billing")
        assert mine.status_code == 200, mine.text


async def test_metrics_and_ledger_status_follow_gateway_auth(tmp_path: Path, fleet: Fleet) -> None:
    token = "admin-token-edge-tests-0123456789"
    settings = await _settings(tmp_path, fleet, auth="required", admin_token=token)
    async with run_gateway(settings) as gw, httpx.AsyncClient(timeout=10) as client:
        for path in ("/metrics", "/api/v1/ledger/status"):
            assert_openai_error(await client.get(gw.url + path), 401)
            scraped = await client.get(gw.url + path, headers={"Authorization": f"Bearer {token}"})
            assert scraped.status_code == 200
        assert (await client.get(gw.url + "/health")).status_code == 200


async def test_the_concurrency_cap_answers_503_in_the_error_shape(
    tmp_path: Path, fleet: Fleet
) -> None:
    settings = await _settings(tmp_path, fleet, max_concurrent_requests=1)
    stream = {**BODY, "stream": True, "max_tokens": 50}
    await fleet_speed(fleet, tokens_per_s=5, completion_tokens=50)
    async with run_gateway(settings) as gw, httpx.AsyncClient(timeout=10) as client:
        async with client.stream("POST", f"{gw.v1}/chat/completions", json=stream) as first:
            assert first.status_code == 200
            second = await client.post(f"{gw.v1}/chat/completions", json=BODY)
            assert_openai_error(second, 503)
        await fleet_speed(fleet, tokens_per_s=1000, completion_tokens=3)

        async def admitted_again() -> bool:
            after = await client.post(f"{gw.v1}/chat/completions", json=BODY)
            return after.status_code == 200

        # The stream's slot frees once the server has finished with it (right after the close).
        await eventually(admitted_again, timeout_s=10, what="a request admitted after the stream")


async def fleet_speed(fleet: Fleet, **profile: float) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        changed = await client.patch(f"{fleet.base_url}/_control/providers/a", json=profile)
        assert changed.status_code == 200, changed.text


async def _raw_exchange(port: int, chunks: list[bytes], read_timeout_s: float = 10) -> bytes:
    """Send `chunks` on one connection, then read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                break
        async with asyncio.timeout(read_timeout_s):
            return await reader.read()
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def test_the_server_refuses_8mb_of_headers_before_reading_them(
    tmp_path: Path, fleet: Fleet
) -> None:
    settings = await _settings(tmp_path, fleet)
    async with run_gateway(settings) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        filler = b"X-Filler: " + b"a" * 8 * 1024 * 1024 + b"\r\n\r\n"
        answer = await _raw_exchange(port, [head, filler])
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b'"reason":"headers_too_large"' in answer


async def test_heads_are_bounded_per_read_without_refusing_what_fits(
    tmp_path: Path, fleet: Fleet
) -> None:
    """The head is counted as it arrives: a terminator split across reads, a head just under
    the byte bound followed by a body larger than it, and keep-alive requests on one connection
    are answered; a head one byte over the bound, or with one field too many, is 431."""
    settings = await _settings(tmp_path, fleet, max_header_bytes=2048, max_header_count=10)
    async with run_gateway(settings) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r"
        split = await _raw_exchange(port, [head, b"\n"])
        assert split.startswith(b"HTTP/1.1 200"), split[:200]

        def post(filler: int, extra_fields: int = 0, body: bytes = b"") -> bytes:
            fields = b"".join(b"X-F%d: 1\r\n" % n for n in range(extra_fields))
            return (
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Connection: close\r\nContent-Type: application/json\r\n"
                + fields
                + b"X-Title: "
                + b"t" * filler
                + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
                + body
            )

        body = json.dumps({**BODY, "user": "u" * 4000}).encode()  # larger than the head bound
        fixed = len(post(0, body=body)) - len(body)  # the head without filler
        fits = post(2048 - fixed, body=body)
        assert fits.index(b"\r\n\r\n") + 4 == 2048
        answer = await _raw_exchange(port, [fits])
        assert answer.startswith(b"HTTP/1.1 400") or answer.startswith(b"HTTP/1.1 200"), answer
        assert b"headers_too_large" not in answer
        over = await _raw_exchange(port, [post(2048 - fixed + 1, body=body)])
        assert over.startswith(b"HTTP/1.1 431"), over[:200]
        # 10 fields fit (Host, Connection, Content-Type, 4 X-F, X-Title, Content-Length = 9);
        # two more X-F make 11.
        assert (await _raw_exchange(port, [post(1, 5, b"{}")]))[:12] != b"HTTP/1.1 431"
        many = await _raw_exchange(port, [post(1, 6, b"{}")])
        assert many.startswith(b"HTTP/1.1 431"), many[:200]
        # Keep-alive: each request's head is counted from its own first byte.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(3):
                writer.write(
                    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Title: "
                    + b"t" * 1500
                    + b"\r\n\r\n"
                )
                async with asyncio.timeout(10):
                    status = await reader.readline()
                    assert status.startswith(b"HTTP/1.1 200"), status
                    length = 0
                    while (line := await reader.readline()) != b"\r\n":
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    await reader.readexactly(length)
        finally:
            writer.close()


async def test_slow_headers_and_a_stalled_body_are_cut_off(tmp_path: Path, fleet: Fleet) -> None:
    settings = await _settings(tmp_path, fleet, header_timeout_s=0.5, body_timeout_s=0.5)
    async with run_gateway(settings) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        # Slow-loris: a request line and one header, then nothing.
        slow = await _raw_exchange(port, [b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"])
        assert slow.startswith(b"HTTP/1.1 408"), slow[:200]
        # A body announced but never sent: the connection is closed, nothing is held open.
        stalled = await _raw_exchange(
            port,
            [
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
            ],
        )
        assert b"HTTP/1.1 200" not in stalled
        # And the server still answers others.
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(f"{gw.url}/health")).status_code == 200


async def test_what_the_parser_refuses_is_answered_in_the_error_shape(
    tmp_path: Path, fleet: Fleet
) -> None:
    async with run_gateway(await _settings(tmp_path, fleet)) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        answer = await _raw_exchange(
            port, [b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Title: a\x7f\x01b\r\n\r\n"]
        )
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"application/json" in answer and b'"reason":"bad_request"' in answer
