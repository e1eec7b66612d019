from __future__ import annotations

from providers.usage import Usage, normalize_usage


def test_openai_usage_with_details() -> None:
    usage = normalize_usage(
        {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 12},
        }
    )
    assert usage == Usage(100, 20, cached_tokens=64, reasoning_tokens=12)
    assert usage.to_openai()["total_tokens"] == 120


def test_provider_variants_of_cached_tokens() -> None:
    assert normalize_usage({"prompt_tokens": 10, "prompt_cache_hit_tokens": 4}).cached_tokens == 4
    anthropic_style = {
        "prompt_tokens": 10,
        "cache_read_input_tokens": 3,
        "cache_creation_input_tokens": 5,
    }
    usage = normalize_usage(anthropic_style)
    assert (usage.cached_tokens, usage.cache_write_tokens) == (3, 5)


def test_garbage_is_zero_not_an_error() -> None:
    assert normalize_usage(None) == Usage()
    assert normalize_usage({"prompt_tokens": "x", "prompt_tokens_details": 5}) == Usage()
    # cached can never exceed the prompt
    assert (
        normalize_usage(
            {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}
        ).cached_tokens
        == 5
    )
