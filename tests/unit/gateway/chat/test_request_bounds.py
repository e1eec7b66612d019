"""Hostile bodies at the decoder: deep nesting is a 400, session keys are digests of fixed
size, model ids are bounded and cleaned."""

from __future__ import annotations

import msgspec
import pytest

from gateway.chat.request import decode_chat_request
from gateway.errors import BadRequest
from gateway.limits import MAX_JSON_DEPTH


def _body(**extra: object) -> bytes:
    return msgspec.json.encode(
        {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "hi"}], **extra}
    )


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_deep_nesting_is_a_bad_request(depth: int) -> None:
    raw = _body()[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(BadRequest, match="nested deeper"):
        decode_chat_request(raw)


def test_nesting_within_the_limit_passes() -> None:
    depth = MAX_JSON_DEPTH - 4
    raw = _body()[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
    assert decode_chat_request(raw).upstream_body["x"]


@pytest.mark.parametrize(("field", "size"), [("session_id", 256), ("prompt_cache_key", 400_000)])
def test_session_keys_are_fixed_size_digests(field: str, size: int) -> None:
    huge = "s" * size
    key = decode_chat_request(_body(**{field: huge})).route.affinity_key
    assert key is not None and len(key) < 64 and huge[:64] not in key
    # The same session keeps its identity; another does not share it.
    assert decode_chat_request(_body(**{field: huge})).route.affinity_key == key
    assert decode_chat_request(_body(**{field: huge[:-1] + "x"})).route.affinity_key != key


@pytest.mark.parametrize("field", ["session_id", "user"])
def test_ids_over_their_bound_are_a_bad_request(field: str) -> None:
    with pytest.raises(BadRequest) as refused:
        decode_chat_request(_body(**{field: "s" * 257}))
    assert refused.value.metadata == {"field": field}


def test_model_ids_are_bounded_and_cleaned() -> None:
    long = "m" * 10_000
    raw = _body()[:-1].decode() + f',"models":["openai/gpt-oss-20b","evil\\u0000{long}"]}}'
    request = decode_chat_request(raw.encode())
    assert request.route.fallback_models
    assert all("\x00" not in m and len(m) <= 256 for m in request.route.fallback_models)


def test_too_many_fallback_models_is_a_bad_request() -> None:
    with pytest.raises(BadRequest) as refused:
        decode_chat_request(_body(models=[f"m{n}" for n in range(33)]))
    assert refused.value.metadata == {"field": "models"}


def test_the_user_field_goes_upstream_as_a_fixed_size_digest() -> None:
    request = decode_chat_request(_body(user="u\x00" + "x" * 200))
    assert len(request.upstream_body["user"]) == 64 and "x" not in request.upstream_body["user"]
    assert decode_chat_request(_body(user="alice")).upstream_body["user"] != "alice"
