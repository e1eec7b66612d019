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
        (_raw(provider=["groq"]), "provider"),
        (_raw(provider={"max_price": {"prompt": "free"}}), "provider.max_price.prompt"),
        (_raw(route="cheapest"), "route"),
        (_raw(preset="p"), "preset"),
        (_raw(plugins=[{"id": "web"}]), "plugins"),
        (_raw(transforms=["middle-out"]), "transforms"),
        (_raw(model=None), "model"),
        (_raw(messages=[]), "messages"),
    ],
)
def test_bad_requests_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_chat_request(raw)
    assert info.value.client_status == 400
    assert info.value.metadata.get("field", "").startswith(field)


def test_explain_by_header_or_debug_flag() -> None:
    assert decode_chat_request(_raw(), explain_header=True).route.explain
    assert decode_chat_request(_raw(debug={"route": True})).route.explain
    assert not decode_chat_request(_raw()).route.explain


def test_provider_leniency_numbers_as_strings_nulls_and_ignored_fields() -> None:
    req = decode_chat_request(
        _raw(
            provider={
                "only": None,
                "max_price": {"prompt": "0.5", "completion": 2, "audio": "1", "image": None},
                "preferred_min_throughput": {"p50": "10", "p90": None},
                "enforce_distillable_text": True,
                "sort": "exacto",
                "somefield": 1,
            },
            route="sort",
            transforms=[],
        )
    )
    prefs = req.route.preferences
    assert prefs.only is None
    assert prefs.max_price is not None
    assert (prefs.max_price.prompt, prefs.max_price.completion) == (0.5, 2.0)
    assert prefs.sort is not None and not isinstance(prefs.sort, str)
    assert (prefs.sort.by, prefs.sort.partition) == ("exacto", "none")
    assert dict(req.route.ignored) == {
        "provider.max_price.audio": "the catalog's models take text only",
        "provider.enforce_distillable_text": "the catalog records no distillation policy per model",
        "provider.somefield": "not a field of OpenRouter's provider preferences",
    }
    for name in ("provider", "route", "transforms"):
        assert name not in req.upstream_body
