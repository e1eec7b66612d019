"""Fuzzing the HTTP API of a running gateway (hypothesis): whatever the method, path, headers
and body, no 500, and every rejection is in the OpenAI error shape."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.ledger.migrate import upgrade_to_head_async
from gateway.settings import CatalogSettings, DatabaseSettings, LedgerSettings, Settings
from providers.simulator.profile import Profile
from providers.simulator.server import start_fleet
from tests.support.gateway import run_gateway, write_catalog

PATHS = [
    "/v1/chat/completions",
    "/api/v1/chat/completions",
    "/v1/models",
    "/api/v1/models/openai/gpt-oss-20b/endpoints",
    "/api/v1/generation",
    "/api/v1/key",
    "/api/v1/keys",
    "/api/v1/keys/some-id",
    "/api/v1/ledger/status",
    "/metrics",
    "/health",
    "/ready",
    "/nope",
]
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_leaves,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=20,
)
chat_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["openai/gpt-oss-20b", "openai/gpt-oss-20b:nitro", "x/y", ""])},
    optional={
        "messages": st.lists(
            st.fixed_dictionaries({"role": st.just("user"), "content": st.text(max_size=20)}),
            max_size=2,
        )
        | json_values,
        "stream": st.booleans(),
        "max_tokens": st.integers(min_value=-5, max_value=10**7) | json_values,
        "provider": st.dictionaries(
            st.sampled_from(["only", "ignore", "order", "sort", "allow_fallbacks", "max_price"]),
            json_values,
            max_size=2,
        ),
        "models": st.lists(st.text(max_size=12), max_size=4),
        "session_id": st.text(max_size=50),
        "debug": st.just({"route": True}),
    },
)
header_values = (
    # Anything a client library lets through (httpx refuses control characters itself; the
    # server's answer to those is tested with raw bytes in test_edge.py).
    st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"),
        max_size=60,
    )
    .map(lambda s: s.strip())
    .map(lambda s: s.encode("latin-1"))
)
headers = st.dictionaries(
    st.sampled_from(
        ["X-Title", "HTTP-Referer", "Authorization", "X-Route-Explain", "Content-Type", "Origin"]
    ),
    header_values,
    max_size=4,
)
bodies = chat_bodies.map(json.dumps) | json_values.map(json.dumps) | st.binary(max_size=200)


class Background:
    """The gateway on an event loop of its own, so hypothesis can drive it synchronously."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._tmp = tmp_path
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        fleet = await start_fleet({"a": Profile(completion_tokens=2)})
        database = f"sqlite+aiosqlite:///{self._tmp}/gw.sqlite3"
        await upgrade_to_head_async(database)
        catalog = write_catalog(self._tmp / "c.toml", {"a": fleet.url_for("a")})
        config = Settings(
            catalog=CatalogSettings(catalog=catalog),
            database=DatabaseSettings(database_url=database),
            ledger=LedgerSettings(flush_interval_s=0.05),
        )
        try:
            async with run_gateway(config) as gw:
                self.url = gw.url
                self._ready.set()
                await self._stop.wait()
        finally:
            await fleet.close()

    def __enter__(self) -> Background:
        self._thread.start()
        assert self._ready.wait(60), "gateway did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with Background(tmp_path_factory.mktemp("fuzz")) as background:
        yield background.url


@pytest.fixture(scope="module")
def client(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=30) as http:
        yield http


def _assert_answer(response: httpx.Response) -> None:
    assert response.status_code != 500, response.text[:500]
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.text
        error: dict[str, Any] = response.json()["error"]
        assert set(error) >= {"code", "message", "metadata"}, error


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS"]),
    path=st.sampled_from(PATHS),
    query=st.dictionaries(st.sampled_from(["id", "limit"]), st.text(max_size=20), max_size=1),
    extra_headers=headers,
    body=bodies,
)
def test_the_api_never_answers_500(
    client: httpx.Client,
    method: str,
    path: str,
    query: dict[str, str],
    extra_headers: dict[str, bytes],
    body: str | bytes,
) -> None:
    content = body if method in ("POST", "PATCH", "PUT") else None
    sent: dict[str, str | bytes] = {"Content-Type": "application/json", **extra_headers}
    response = client.request(method, path, params=query, headers=sent, content=content)
    _assert_answer(response)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=chat_bodies, extra_headers=headers)
def test_chat_bodies_never_answer_500(
    client: httpx.Client, body: dict[str, Any], extra_headers: dict[str, bytes]
) -> None:
    sent: dict[str, str | bytes] = {**extra_headers, "Content-Type": "application/json"}
    sent.pop("Origin", None)
    response = client.post("/v1/chat/completions", json=body, headers=sent)
    _assert_answer(response)
