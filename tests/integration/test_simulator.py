"""The provider simulator over real HTTP: OpenAI shapes, every failure kind as an upstream sends
it, prompt-cache emulation, the live control API, stats and bad input."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx
import msgspec
import openai
import pytest

from providers.simulator import (
    FAILURE_KINDS,
    Failures,
    Profile,
    ProfileError,
    default_fleet,
    load_profiles,
)
from providers.simulator.cli import add_arguments
from tests.integration.simulator_fixtures import (
    chat_body,
    eventually,
    long_messages,
    post_chat,
    running_fleet,
    sse_events,
    stream_json,
)


def failing(kind: str, **fields: object) -> Profile:
    """A profile whose every request fails with `kind`."""
    return Profile(failures=Failures(**{kind: 1.0}), **fields)  # type: ignore[arg-type]


# answers in OpenAI shape


async def test_completion_has_openai_shape_and_usage() -> None:
    async with running_fleet(acme=Profile(completion_tokens=12, reasoning_tokens=5)) as (_, client):
        response = await post_chat(client, "acme", model="some/model")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "some/model"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert len(choice["message"]["content"].split()) == 12
    assert len(choice["message"]["reasoning"].split()) == 5
    usage = body["usage"]
    assert usage["completion_tokens"] == 17  # reasoning is part of the completion
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 5
    assert usage["prompt_tokens"] == 8  # 32 characters at 4 per token
    assert usage["total_tokens"] == usage["prompt_tokens"] + 17
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0


async def test_stream_sends_chunks_then_usage_chunk_then_done() -> None:
    profile = Profile(completion_tokens=10, reasoning_tokens=3, stream_chunk_tokens=2)
    async with running_fleet(acme=profile) as (_, client):
        plain = (await post_chat(client, "acme")).json()
        response = await post_chat(client, "acme", stream=True)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = stream_json(response.text)
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    content = "".join(delta.get("content", "") for delta in deltas)
    reasoning = "".join(delta.get("reasoning", "") for delta in deltas)
    assert content == plain["choices"][0]["message"]["content"]
    assert reasoning == plain["choices"][0]["message"]["reasoning"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == plain["usage"]


async def test_official_openai_client_reads_both_modes() -> None:
    async with running_fleet(acme=Profile(completion_tokens=8)) as (fleet, _):
        client = openai.AsyncOpenAI(base_url=fleet.url_for("acme"), api_key="unused")
        completion = await client.chat.completions.create(
            model="openai/gpt-oss-20b", messages=[{"role": "user", "content": "hi"}]
        )
        stream = await client.chat.completions.create(
            model="openai/gpt-oss-20b",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        await client.close()

    assert completion.usage is not None and completion.usage.completion_tokens == 8
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == completion.choices[0].message.content


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_cuts_the_answer_with_finish_reason_length(field: str) -> None:
    async with running_fleet(acme=Profile(completion_tokens=50, reasoning_tokens=4)) as (_, client):
        plain = (await post_chat(client, "acme", **{field: 10})).json()
        streamed = stream_json((await post_chat(client, "acme", stream=True, **{field: 10})).text)
        roomy = (await post_chat(client, "acme", **{field: 1000})).json()

    assert plain["choices"][0]["finish_reason"] == "length"
    assert plain["usage"]["completion_tokens"] == 10
    assert len(plain["choices"][0]["message"]["content"].split()) == 6
    assert streamed[-2]["choices"][0]["finish_reason"] == "length"
    assert streamed[-1]["usage"]["completion_tokens"] == 10
    assert roomy["choices"][0]["finish_reason"] == "stop"
    assert roomy["usage"]["completion_tokens"] == 54


async def test_models_lists_the_profile_models() -> None:
    async with running_fleet(acme=Profile(models=("a/one", "a/two"))) as (_, client):
        response = await client.get("/acme/v1/models")
    assert response.status_code == 200
    assert [model["id"] for model in response.json()["data"]] == ["a/one", "a/two"]


async def test_strict_models_refuses_other_models_with_404() -> None:
    async with running_fleet(acme=Profile(models=("a/one",), strict_models=True)) as (_, client):
        known = await post_chat(client, "acme", model="a/one")
        unknown = await post_chat(client, "acme", model="b/two")
    assert known.status_code == 200
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"


async def test_llamacpp_profile_adds_timings() -> None:
    async with running_fleet(local=Profile(llamacpp_timings=True, completion_tokens=4)) as (
        _,
        client,
    ):
        body = (await post_chat(client, "local")).json()
    assert body["timings"]["predicted_n"] == 4


async def test_ttft_and_speed_pace_the_answer() -> None:
    profile = Profile(ttft_ms=80, tokens_per_s=400, completion_tokens=20)  # 80 ms + 50 ms
    async with running_fleet(slow=profile) as (_, client):
        started = time.monotonic()
        async with client.stream(
            "POST", "/slow/v1/chat/completions", json=chat_body(stream=True)
        ) as r:
            first_content_at = None
            async for line in r.aiter_lines():
                if '"content":"' in line and '"content":""' not in line:
                    first_content_at = first_content_at or time.monotonic()
        finished = time.monotonic()

    assert first_content_at is not None
    assert first_content_at - started >= 0.08
    assert finished - started >= 0.13


# failures as upstreams send them


@pytest.mark.parametrize("kind,status", [("http_500", 500), ("http_502", 502), ("http_503", 503)])
async def test_server_errors_arrive_with_status_and_openai_error(kind: str, status: int) -> None:
    async with running_fleet(flaky=failing(kind)) as (_, client):
        response = await post_chat(client, "flaky")
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == "server_error"
    assert error["message"]


async def test_429_carries_retry_after_from_profile() -> None:
    async with running_fleet(busy=failing("http_429", retry_after_s=7)) as (_, client):
        response = await post_chat(client, "busy")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("stream", [False, True])
async def test_reset_drops_the_connection_before_any_byte(stream: bool) -> None:
    async with running_fleet(rst=failing("reset")) as (_, client):
        with pytest.raises(httpx.TransportError):
            await post_chat(client, "rst", stream=stream)
        assert (await client.get("/rst/v1/models")).status_code == 200  # the server lives on


async def test_stream_cut_after_k_chunks_never_sends_done() -> None:
    async with running_fleet(cut=failing("stream_cut", stream_cut_after=3)) as (_, client):
        received: list[str] = []
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream(
                "POST", "/cut/v1/chat/completions", json=chat_body(stream=True)
            ) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        received.append(line)
    assert len(received) == 3
    assert "data: [DONE]" not in received


async def test_stream_cut_without_streaming_truncates_the_body() -> None:
    async with running_fleet(cut=failing("stream_cut")) as (_, client):
        with pytest.raises(httpx.RemoteProtocolError):
            await post_chat(client, "cut")


@pytest.mark.parametrize("stream", [False, True])
async def test_invalid_json_is_a_200_that_does_not_parse(stream: bool) -> None:
    async with running_fleet(junk=failing("invalid_json")) as (_, client):
        response = await post_chat(client, "junk", stream=stream)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        if stream:
            [json.loads(event) for event in sse_events(response.text) if event != "[DONE]"]
        else:
            response.json()


@pytest.mark.parametrize("stream", [False, True])
async def test_empty_is_a_200_with_empty_content(stream: bool) -> None:
    async with running_fleet(hollow=failing("empty")) as (_, client):
        response = await post_chat(client, "hollow", stream=stream)
    assert response.status_code == 200
    if stream:
        chunks = stream_json(response.text)
        content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
        assert content == ""
        assert chunks[-1]["usage"]["completion_tokens"] == 0
        assert sse_events(response.text)[-1] == "[DONE]"
    else:
        body = response.json()
        assert body["choices"][0]["message"]["content"] == ""
        assert body["usage"]["completion_tokens"] == 0


async def test_hang_outlasts_the_client_timeout_and_is_released_on_disconnect() -> None:
    async with running_fleet(stuck=failing("hang")) as (fleet, _):
        async with httpx.AsyncClient(base_url=fleet.base_url, timeout=0.3) as client:
            with pytest.raises(httpx.ReadTimeout):
                await post_chat(client, "stuck")
        await eventually(lambda: fleet.open_connections == 0)
        assert fleet.stats()["stuck"].outcomes == {"hang": 1}


async def test_hang_is_capped_by_hang_max_s() -> None:
    async with running_fleet(stuck=failing("hang", hang_max_s=0.2)) as (_, client):
        started = time.monotonic()
        with pytest.raises(httpx.TransportError):
            await post_chat(client, "stuck")  # the client would wait 10 s
        assert time.monotonic() - started < 5


async def test_down_provider_answers_503_to_everything() -> None:
    async with running_fleet(gone=Profile(down=True)) as (_, client):
        chat = await post_chat(client, "gone")
        models = await client.get("/gone/v1/models")
    assert chat.status_code == 503
    assert models.status_code == 503
    assert set(chat.json()["error"]) >= {"message", "type", "code"}


async def test_api_key_is_required_when_set() -> None:
    async with running_fleet(locked=Profile(api_key="sk-sim")) as (_, client):
        missing = await post_chat(client, "locked")
        wrong = await client.post(
            "/locked/v1/chat/completions",
            json=chat_body(),
            headers={"Authorization": "Bearer sk-other"},
        )
        right = await client.post(
            "/locked/v1/chat/completions",
            json=chat_body(),
            headers={"Authorization": "Bearer sk-sim"},
        )
        listed = (await client.get("/_control/providers")).json()
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert right.status_code == 200
    assert listed["providers"]["locked"]["api_key"] == "***"  # never echoed back


async def test_seeded_failures_replay_after_reset() -> None:
    profile = Profile(seed=42, failures=Failures(http_500=0.3, http_429=0.3))
    async with running_fleet(dice=profile) as (fleet, client):
        first = [(await post_chat(client, "dice")).status_code for _ in range(30)]
        fleet.reset()
        second = [(await post_chat(client, "dice")).status_code for _ in range(30)]
    assert first == second
    assert {200, 429, 500} <= set(first)


# prompt cache


async def test_repeated_prefix_is_reported_as_cached_tokens() -> None:
    async with running_fleet(warm=Profile(), other=Profile()) as (fleet, client):
        first = await post_chat(client, "warm", messages=long_messages(3000, "one"))
        second = await post_chat(client, "warm", messages=long_messages(3000, "two"))
        elsewhere = await post_chat(client, "other", messages=long_messages(3000, "three"))
        short = await post_chat(client, "warm", messages=long_messages(900, "a"))
        short_again = await post_chat(client, "warm", messages=long_messages(900, "b"))
        stats = fleet.stats()

    def cached(response: httpx.Response) -> int:
        return int(response.json()["usage"]["prompt_tokens_details"]["cached_tokens"])

    assert cached(first) == 0
    hit = cached(second)
    assert hit == 2944  # 3000-token shared prefix, in whole 128-token blocks
    assert hit % 128 == 0 and hit <= second.json()["usage"]["prompt_tokens"]
    assert cached(elsewhere) == 0  # each provider has its own cache
    assert cached(short) == cached(short_again) == 0  # under cache_min_tokens
    assert stats["warm"].cached_tokens == hit


async def test_cache_honours_profile_knobs_and_reset() -> None:
    profile = Profile(cache_min_tokens=256, cache_block_tokens=64)
    async with running_fleet(warm=profile) as (fleet, client):
        messages = long_messages(300)
        await post_chat(client, "warm", messages=messages)
        hit = await post_chat(client, "warm", messages=messages)
        await client.post("/_control/reset")
        after_reset = await post_chat(client, "warm", messages=messages)
        await fleet.set_profile("warm", cache_ttl_s=0)
        await post_chat(client, "warm", messages=messages)
        disabled = await post_chat(client, "warm", messages=messages)

    assert hit.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 256
    assert after_reset.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert disabled.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


async def test_cached_tokens_appear_in_the_stream_usage_chunk() -> None:
    async with running_fleet(warm=Profile()) as (_, client):
        messages = long_messages(1100)
        await post_chat(client, "warm", messages=messages)
        response = await post_chat(client, "warm", messages=messages, stream=True)
    usage = stream_json(response.text)[-1]["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 1024


# control API and stats


async def test_profile_patch_takes_effect_on_the_next_request() -> None:
    async with running_fleet(acme=Profile()) as (_, client):
        before = await post_chat(client, "acme")
        patched = await client.patch(
            "/_control/providers/acme", json={"failures": {"http_503": 1.0}, "retry_after_s": 3}
        )
        during = await post_chat(client, "acme")
        await client.patch("/_control/providers/acme", json={"failures": {"http_503": 0.0}})
        after = await post_chat(client, "acme")
        shown = (await client.get("/_control/providers/acme")).json()

    assert before.status_code == 200
    assert patched.status_code == 200
    assert patched.json()["failures"]["http_503"] == 1.0
    assert during.status_code == 503
    assert after.status_code == 200
    assert shown["retry_after_s"] == 3


async def test_set_profile_from_python_takes_effect_without_restart() -> None:
    async with running_fleet(acme=Profile()) as (fleet, client):
        await fleet.set_profile("acme", down=True)
        assert (await post_chat(client, "acme")).status_code == 503
        updated = await fleet.set_profile("acme", down=False, completion_tokens=3)
        body = (await post_chat(client, "acme")).json()
        with pytest.raises(ProfileError):
            await fleet.set_profile("acme", tokens_per_s="fast")
    assert updated.completion_tokens == 3
    assert body["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"ttft_ms": "slow"}, "ttft_ms"),
        ({"warp_speed": 9}, "warp_speed"),
        ({"failures": {"http_500": 1.5}}, "http_500"),
        ({"failures": {"http_500": 0.7, "hang": 0.7}}, "sum"),
        ({"failures": {"meteor": 0.1}}, "meteor"),
        ({"completion_tokens": -1}, "completion_tokens"),
        ({"down": "yes"}, "down"),
    ],
)
async def test_bad_profile_patch_is_400_with_the_reason(
    change: dict[str, object], reason: str
) -> None:
    async with running_fleet(acme=Profile()) as (_, client):
        response = await client.patch("/_control/providers/acme", json=change)
        unchanged = (await client.get("/_control/providers/acme")).json()
    assert response.status_code == 400
    assert reason in response.json()["error"]["message"]
    assert unchanged == json.loads(msgspec.json.encode(Profile()))  # nothing of it applied


async def test_control_api_errors() -> None:
    async with running_fleet(acme=Profile()) as (_, client):
        unknown = await client.patch("/_control/providers/nope", json={"down": True})
        not_json = await client.patch("/_control/providers/acme", content=b"{nope")
        not_object = await client.patch("/_control/providers/acme", json=[1])
        wrong_method = await client.delete("/_control/stats")
        no_route = await client.get("/_control/everything")
    assert unknown.status_code == 404
    assert not_json.status_code == 400
    assert not_object.status_code == 400
    assert wrong_method.status_code == 405
    assert no_route.status_code == 404


async def test_stats_count_traffic_per_provider_and_reset_zeroes_them() -> None:
    fleet_profiles = {
        "good": Profile(completion_tokens=5),
        "bad": Profile(failures=Failures(http_500=1.0)),
    }
    async with running_fleet(**fleet_profiles) as (fleet, client):
        for _ in range(3):
            await post_chat(client, "good")
        await post_chat(client, "good", stream=True)
        await post_chat(client, "bad")
        await client.post("/good/v1/chat/completions", content=b"not json")
        over_http = (await client.get("/_control/stats")).json()["providers"]
        in_process = fleet.stats()
        reset = await client.post("/_control/reset")
        after = fleet.stats()

    good = in_process["good"]
    assert good.requests == 5
    assert good.streamed == 1
    assert good.outcomes == {"ok": 4, "bad_request": 1}
    assert good.completion_tokens == 20
    assert good.prompt_tokens == 4 * 8
    assert in_process["bad"].outcomes == {"http_500": 1}
    assert in_process["bad"].completion_tokens == 0
    assert over_http["good"]["outcomes"] == {"ok": 4, "bad_request": 1}
    assert over_http["bad"]["requests"] == 1
    assert reset.status_code == 200
    assert after["good"].requests == 0 and after["good"].outcomes == {}


# bad input never crashes the simulator


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"model": "m"}',
        b'{"model": "m", "messages": []}',
        b'{"model": "m", "messages": "hello"}',
        b'{"model": "m", "messages": [{"content": "no role"}]}',
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
        b"\xff\xfe\x00",
        b"",
    ],
)
async def test_malformed_body_is_400_in_openai_shape(body: bytes) -> None:
    async with running_fleet(acme=Profile()) as (_, client):
        response = await client.post("/acme/v1/chat/completions", content=body)
        still_fine = await post_chat(client, "acme")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert still_fine.status_code == 200


async def test_unknown_paths_and_methods() -> None:
    async with running_fleet(acme=Profile()) as (_, client):
        unknown_provider = await post_chat(client, "nobody")
        unknown_route = await client.get("/acme/v1/embeddings")
        root = await client.get("/")
        wrong_method = await client.get("/acme/v1/chat/completions")
    assert unknown_provider.status_code == 404
    assert set(unknown_provider.json()["error"]) >= {"message", "type", "code"}
    assert unknown_route.status_code == 404
    assert root.status_code == 404
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"


async def test_context_length_exceeded_is_400() -> None:
    async with running_fleet(tiny=Profile(context_length=100)) as (_, client):
        response = await post_chat(client, "tiny", messages=long_messages(200))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"


async def test_garbage_bytes_get_400_and_pipelined_requests_answer_in_order() -> None:
    async with running_fleet(acme=Profile(completion_tokens=1)) as (fleet, client):
        reader, writer = await asyncio.open_connection(fleet.host, fleet.port)
        writer.write(b"\x16\x03\x01 this is not http\r\n\r\n")
        garbage = await reader.read()
        writer.close()

        reader, writer = await asyncio.open_connection(fleet.host, fleet.port)
        body = json.dumps(chat_body()).encode()
        request = (
            b"POST /acme/v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        writer.write(
            request + b"GET /acme/v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        pipelined = await reader.read()
        writer.close()
        assert (await post_chat(client, "acme")).status_code == 200

    assert garbage.startswith(b"HTTP/1.1 400 ")
    first = pipelined.index(b"HTTP/1.1 200 ")
    second = pipelined.index(b"HTTP/1.1 200 ", first + 1)
    assert b"chat.completion" in pipelined[first:second]
    assert b'"object":"list"' in pipelined[second:]


# profiles file and CLI


def test_default_fleet_mirrors_the_shipped_catalog() -> None:
    fleet = default_fleet()
    assert set(fleet) == {"groq", "together", "deepinfra", "fireworks", "nebius", "novita", "local"}
    assert fleet["groq"].tokens_per_s >= 500 and fleet["groq"].ttft_ms <= 200
    assert fleet["local"].tokens_per_s <= 60
    assert fleet["deepinfra"].tokens_per_s < fleet["groq"].tokens_per_s
    assert len({profile.seed for profile in fleet.values()}) == len(fleet)
    shipped = Path(__file__).parents[2] / "providers" / "catalogs" / "simulated-fleet.toml"
    assert load_profiles(shipped) == fleet


def test_profiles_file_errors_name_the_problem(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[providers.fast]\nttft_ms = 0\nfailures = { http_429 = 0.5 }\n")
    assert load_profiles(good)["fast"].failures.http_429 == 0.5

    bad_field = tmp_path / "bad.toml"
    bad_field.write_text("[providers.fast]\nttft = 3\n")
    with pytest.raises(ProfileError, match=r"providers\.fast.*ttft"):
        load_profiles(bad_field)

    bad_name = tmp_path / "name.toml"
    bad_name.write_text("[providers._control]\n")
    with pytest.raises(ProfileError, match="_control"):
        load_profiles(bad_name)

    with pytest.raises(ProfileError):
        load_profiles(tmp_path / "missing.toml")


def test_every_failure_kind_is_a_profile_field() -> None:
    assert set(FAILURE_KINDS) == {
        "http_500", "http_502", "http_503", "http_429", "hang",
        "reset", "stream_cut", "invalid_json", "empty",
    }  # fmt: skip


def test_cli_flags_and_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = parser.parse_args([])
    assert (defaults.host, defaults.port, defaults.profiles) == ("127.0.0.1", 9100, None)
    args = parser.parse_args(["--host", "0.0.0.0", "--port", "9200", "--profiles", "f.toml"])
    assert (args.host, args.port, args.profiles) == ("0.0.0.0", 9200, "f.toml")
