"""Every error in the one envelope, parsed by the official openai client and by a plain
OpenRouter-style client: `error.code` is the HTTP status number, `error.message` a string,
`error.metadata.reason` the string code; mid-stream errors carry `metadata.error_type`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from gateway.ledger.migrate import upgrade_to_head_async
from gateway.settings import (
    CatalogSettings,
    DatabaseSettings,
    RoutingSettings,
    ServerSettings,
    Settings,
)
from providers.simulator.profile import Failures, Profile
from providers.simulator.server import start_fleet
from tests.support.gateway import run_gateway, write_catalog

ADMIN = "admin-token-for-error-envelope-0123"
MODEL = "openai/gpt-oss-20b"
DISABLED = "x/disabled"
MESSAGES = [{"role": "user", "content": "hi"}]
PROFILES = {
    "ok": Profile(completion_tokens=5),
    "down": Profile(failures=Failures(http_500=1.0)),
    "busy": Profile(failures=Failures(http_429=1.0), retry_after_s=2),
    "cut": Profile(completion_tokens=20, failures=Failures(stream_cut=1.0), stream_cut_after=2),
    "hang": Profile(failures=Failures(hang=1.0), hang_max_s=30),
}


@dataclass
class Case:
    status: int
    reason: str
    body: dict[str, Any]
    key: str = "plain"  # which key sends it: plain, tiny (spend limit), slow (1 rpm), none


CASES = {
    "400 invalid body": Case(400, "bad_request", {"model": MODEL, "messages": []}),
    "400 unknown model": Case(400, "model_not_found", {"model": "x/unknown", "messages": MESSAGES}),
    "401 no key": Case(401, "unauthorized", {"model": MODEL, "messages": MESSAGES}, key="none"),
    "402 over the limit": Case(
        402,
        "insufficient_credits",
        {"model": MODEL, "messages": MESSAGES, "max_tokens": 100_000},
        key="tiny",
    ),
    "404 nothing matches": Case(
        404,
        "no_endpoint_matches",
        {"model": MODEL, "messages": MESSAGES, "provider": {"only": ["nobody"]}},
    ),
    "429 key rate limit": Case(429, "rate_limited", {"model": MODEL, "messages": MESSAGES}, "slow"),
    "429 upstream": Case(
        429,
        "upstream_rate_limited",
        {"model": MODEL, "messages": MESSAGES, "provider": {"only": ["busy"]}},
    ),
    "502 upstream down": Case(
        502,
        "upstream_error",
        {"model": MODEL, "messages": MESSAGES, "provider": {"only": ["down"]}},
    ),
    "503 no endpoint enabled": Case(
        503, "no_endpoint_available", {"model": DISABLED, "messages": MESSAGES}
    ),
}


@dataclass
class Served:
    url: str
    keys: dict[str, str]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    fleet = await start_fleet(PROFILES)
    try:
        database = f"sqlite+aiosqlite:///{tmp_path}/gw.sqlite3"
        await upgrade_to_head_async(database)
        disabled = (
            f'\n[models."{DISABLED}"]\nname = "d"\ncontext_length = 8192\n\n[[endpoints]]\n'
            f'model = "{DISABLED}"\nprovider = "ok"\nbase_url = "{fleet.url_for("ok")}"\n'
            'upstream_model = "x"\ncontext_length = 8192\napi_key_env = "UNSET_TEST_KEY_ENV_20"\n'
            'price = { prompt = "0", completion = "0" }\n'
        )
        endpoints = {name: fleet.url_for(name) for name in PROFILES}
        settings = Settings(
            server=ServerSettings(auth="required", admin_token=ADMIN, stream_keepalive_s=0.3),
            catalog=CatalogSettings(
                catalog=write_catalog(tmp_path / "c.toml", endpoints, extra=disabled)
            ),
            database=DatabaseSettings(database_url=database),
            routing=RoutingSettings(
                retries_per_endpoint=0, breaker_failures=1000, first_token_timeout_s=1.0
            ),
        )
        async with (
            run_gateway(settings) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=30) as http,
        ):
            keys: dict[str, str] = {}
            for name, spec in {
                "plain": {},
                "tiny": {"limit": "0.000001"},
                "slow": {"requests_per_minute": 1},
            }.items():
                created = await http.post(
                    "/api/v1/keys",
                    json={"name": name, **spec},
                    headers={"Authorization": f"Bearer {ADMIN}"},
                )
                assert created.status_code == 201, created.text
                keys[name] = created.json()["key"]
            slow = {"Authorization": f"Bearer {keys['slow']}"}
            first = {"model": MODEL, "messages": MESSAGES, "provider": {"only": ["ok"]}}
            assert (await http.post("/v1/chat/completions", json=first, headers=slow)).is_success
            yield Served(gw.url, keys)
    finally:
        await fleet.close()


def assert_envelope(error: dict[str, Any], status: int, reason: str) -> None:
    assert error["code"] == status
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str)
    assert error["metadata"]["reason"] == reason


@pytest.mark.parametrize("name", list(CASES))
async def test_a_plain_client_parses_every_error(served: Served, name: str) -> None:
    case = CASES[name]
    headers = {} if case.key == "none" else {"Authorization": f"Bearer {served.keys[case.key]}"}
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        answer = await http.post("/api/v1/chat/completions", json=case.body, headers=headers)
    assert answer.status_code == case.status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert_envelope(answer.json()["error"], case.status, case.reason)


@pytest.mark.parametrize("name", list(CASES))
async def test_the_openai_client_parses_every_error(served: Served, name: str) -> None:
    case = CASES[name]
    key = served.keys.get(case.key, "sk-gw-not-a-key")  # an unknown key: the same 401
    client = AsyncOpenAI(base_url=f"{served.url}/v1", api_key=key, max_retries=0)
    body = dict(case.body)
    model, messages = body.pop("model"), body.pop("messages")
    with pytest.raises(openai.APIStatusError) as raised:
        await client.chat.completions.create(model=model, messages=messages, extra_body=body)
    error = raised.value
    assert error.status_code == case.status
    assert isinstance(error.body, dict)
    assert_envelope(error.body, case.status, case.reason)
    assert str(error.code) == str(case.status)  # the client reads the number as a string


def _data_lines(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize(
    ("provider", "reason", "committed"),
    [("cut", "upstream_mid_stream", False), ("hang", "upstream_timeout", True)],
)
async def test_mid_stream_errors_parse_in_both_clients(
    served: Served, provider: str, reason: str, committed: bool
) -> None:
    body = {
        "model": MODEL,
        "messages": MESSAGES,
        "stream": True,
        "provider": {"only": [provider]},
    }
    headers = {"Authorization": f"Bearer {served.keys['plain']}"}
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        answer = await http.post("/api/v1/chat/completions", json=body, headers=headers)
    assert answer.status_code == 200
    assert answer.text.startswith(": processing") == committed
    data = _data_lines(answer.text)
    assert data[-1] == "[DONE]"
    event = json.loads(data[-2])
    assert event["choices"][0]["finish_reason"] == "error"
    error = event["error"]
    status = 502 if provider == "cut" else 408
    assert_envelope(error, status, reason)
    assert error["metadata"]["error_type"] == error["type"]

    client = AsyncOpenAI(base_url=f"{served.url}/v1", api_key=served.keys["plain"], max_retries=0)
    stream = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_body={"provider": {"only": [provider]}}
    )
    with pytest.raises(openai.APIError) as raised:
        async for _ in stream:
            pass
    assert isinstance(raised.value.body, dict)
    assert_envelope(raised.value.body, status, reason)
