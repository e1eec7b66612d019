"""Upstream-supplied values are bounded: Retry-After, token counts, catalog values that can't
be sent."""

from __future__ import annotations

import pytest

from providers.catalog import CatalogError, parse_catalog
from providers.openai_compatible import MAX_RETRY_AFTER_S, parse_retry_after
from providers.usage import MAX_REPORTED_TOKENS, normalize_usage
from tests.unit.providers.test_catalog import MODEL, _doc


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("inf", MAX_RETRY_AFTER_S),
        ("Infinity", MAX_RETRY_AFTER_S),
        ("1e308", MAX_RETRY_AFTER_S),
        ("315360000", MAX_RETRY_AFTER_S),  # ten years
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_S),
        ("-5", 0.0),
        ("-inf", 0.0),
        ("2.5", 2.5),
        ("nan", None),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_is_bounded(header: str, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_absurd_token_counts_are_capped() -> None:
    usage = normalize_usage(
        {"prompt_tokens": 10**30, "completion_tokens": 2**63, "prompt_tokens_details": {}}
    )
    assert usage.prompt_tokens == MAX_REPORTED_TOKENS
    assert usage.completion_tokens == MAX_REPORTED_TOKENS


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Org": "acme\n"},
        {"X-Org": "acme\r\nX-Injected: 1"},
        {"X-Org": "caf\u00e9\u2603"},
        {"X-Org": " padded"},
        {"Bad Name": "v"},
    ],
)
def test_catalog_headers_that_cannot_be_sent_are_refused_at_load(
    headers: dict[str, str],
) -> None:
    with pytest.raises(CatalogError, match="headers"):
        parse_catalog(_doc(headers=headers), {"GROQ_API_KEY": "k"})


def test_a_base_url_with_a_newline_is_refused_at_load() -> None:
    with pytest.raises(CatalogError, match="base_url"):
        parse_catalog(_doc(base_url="https://example.test/v1\n"), {"GROQ_API_KEY": "k"})


def test_a_key_with_a_trailing_newline_disables_its_endpoint() -> None:
    catalog = parse_catalog(_doc(), {"GROQ_API_KEY": "gsk_abc\n"})
    status = catalog.status[f"{MODEL}@groq"]
    assert not status.enabled and "GROQ_API_KEY" in status.reason
    assert catalog.secrets == {}


def test_sendable_headers_load() -> None:
    catalog = parse_catalog(_doc(headers={"X-Org": "acme caf\u00e9"}), {"GROQ_API_KEY": "k"})
    assert catalog.endpoints[0].headers == {"X-Org": "acme caf\u00e9"}
