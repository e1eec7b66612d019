"""Credentials in upstream error text are replaced, ordinary text is kept."""

from __future__ import annotations

import pytest

from providers.errors import UpstreamConnectError
from providers.redaction import PLACEHOLDER, redact


@pytest.mark.parametrize(
    "text",
    [
        "Incorrect API key provided: Bearer sk-abcdefghijklmnop",
        "Invalid API Key gsk_0123456789abcdefABCDEF",
        'bad request: {"api_key": "hunter2hunter2"}',
        "token xai-9f8e7d6c5b4a39281716",
        "auth failed for 3f9a1c0b7d2e4f6a8b9c0d1e2f3a4b5c6d7e8f90",
    ],
)
def test_credential_shapes_are_redacted(text: str) -> None:
    redacted = redact(text)
    assert PLACEHOLDER in redacted
    for word in text.split():
        if any(ch.isdigit() for ch in word) and len(word) > 12:
            assert word.strip('"{}') not in redacted


def test_the_endpoint_secret_is_redacted_whatever_its_shape() -> None:
    assert redact("your key was: plainword!", ["plainword!"]) == "your key was: [redacted]"


def test_ordinary_error_text_is_kept() -> None:
    text = "model produced output that does not match the expected format (context 4096)"
    assert redact(text, [None, ""]) == text


def test_a_connect_error_shows_no_credentials_of_the_url() -> None:
    from providers.http1 import ConnectFailed
    from providers.openai_compatible import upstream_errors

    with pytest.raises(UpstreamConnectError) as failed:
        with upstream_errors("p", "https://user:s3cret@api.example:8443/v1?key=k3y"):
            raise ConnectFailed("refused")
    assert failed.value.message == "p: cannot connect to https://api.example:8443/v1"
