"""Fuzzing the chat decoder: whatever the bytes, it returns a request or raises `BadRequest`,
and the rejection maps to the OpenAI error shape (never a 500)."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.chat.request import decode_chat_request
from gateway.errors import BadRequest, error_response

json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": st.text()}),
    max_size=3,
)
provider = st.dictionaries(
    st.sampled_from(["order", "only", "ignore", "allow_fallbacks", "sort", "max_price", "zdr"]),
    json_values,
    max_size=3,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.text(max_size=40) | json_values,
        "models": st.lists(st.text(max_size=20), max_size=40) | json_values,
        "messages": messages | json_values,
        "stream": st.booleans() | json_values,
        "max_tokens": st.integers() | json_values,
        "provider": provider | json_values,
        "session_id": st.text() | json_values,
        "debug": st.dictionaries(st.just("route"), st.booleans()) | json_values,
        "user": st.text(),
    },
)


def _check(raw: bytes) -> None:
    try:
        request = decode_chat_request(raw)
    except BadRequest as exc:
        response = error_response(exc)
        assert response.status_code == 400
        error: dict[str, Any] = msgspec.json.decode(response.content)["error"]
        assert set(error) >= {"code", "message", "metadata", "type"}
        return
    assert request.route.model
    assert request.route.affinity_key is None or len(request.route.affinity_key) < 80


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_structured_bodies(body: dict[str, Any]) -> None:
    _check(msgspec.json.encode(body))


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_any_json(value: Any) -> None:
    _check(msgspec.json.encode(value))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=5000), st.sampled_from([b"[", b'{"a":']))
def test_any_depth(depth: int, opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    _check(b'{"model":"m","messages":[{"role":"user"}],"x":' + opener * depth + closer * depth)
