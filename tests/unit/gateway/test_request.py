from __future__ import annotations

import msgspec
import pytest

from gateway.chat.request import decode_chat_request
from gateway.errors import BadRequest


def _raw(**body: object) -> bytes:
    base: dict[str, object] = {
        "model": "openai/gpt-oss-20b",
        "messages": [{"role": "user", "content": "hi"}],
    }
    base.update(body)
    return msgspec.json.encode(base)


def test_unknown_fields_pass_through_and_gateway_fields_do_not() -> None:
    req = decode_chat_request(
        _raw(logit_bias={"1": 2}, foo={"bar": [1]}, provider={"only": ["groq"]}, models=["x/y"])
    )
    assert req.upstream_body["foo"] == {"bar": [1]}
    assert req.upstream_body["logit_bias"] == {"1": 2}
    assert "provider" not in req.upstream_body and "models" not in req.upstream_body
    assert req.route.preferences.only == ("groq",)
    assert req.route.fallback_models == ("x/y",)


@pytest.mark.parametrize(
    ("suffix", "mode"),
    [("", "balanced"), (":nitro", "nitro"), (":floor", "floor"), (":exacto", "exacto")],
)
def test_mode_from_model_suffix(suffix: str, mode: str) -> None:
    req = decode_chat_request(_raw(model=f"openai/gpt-oss-20b{suffix}"))
    assert req.route.model == "openai/gpt-oss-20b"
    assert req.route.mode == mode


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", ""),
        (b"[1, 2]", ""),
        (_raw(messages="hello"), "messages"),
        (_raw(messages=[{"content": "no role"}]), "messages[0]"),
        (_raw(stream="yes"), "stream"),
        (_raw(max_tokens=0), "max_tokens"),
        (_raw(provider={"sort": "random"}), "provider.sort"),
        (_raw(provider={"bogus": 1}), "provider"),
        (_raw(model=None), "model"),
        (_raw(messages=[]), "messages"),
    ],
)
def test_bad_requests_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_chat_request(raw)
    assert info.value.status == 400
    assert info.value.metadata.get("field", "").startswith(field)


def test_explain_by_header_or_debug_flag() -> None:
    assert decode_chat_request(_raw(), explain_header=True).route.explain
    assert decode_chat_request(_raw(debug={"route": True})).route.explain
    assert not decode_chat_request(_raw()).route.explain
