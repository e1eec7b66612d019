"""Removing credentials from upstream error text before it reaches a client, the ledger or a
log: the endpoint's own secret, and anything shaped like a bearer token or an API key.

Applied where upstream text enters the gateway (`providers.openai_compatible`); not a general
log filter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PLACEHOLDER = "[redacted]"
MIN_SECRET_CHARS = 4  # a shorter "secret" would redact ordinary words
_SHAPES = re.compile(
    r"(?i)"
    # Authorization schemes followed by a credential: "Bearer sk-...", "Basic dXNlcjpw..."
    r"\b(?:bearer|basic|token)\s+[A-Za-z0-9._~+/=*-]{6,}"
    # Provider key prefixes: sk-, sk-proj-, gsk_, xai-, pk_, rk_, key-, api-...
    r"|\b(?:sk|pk|rk|gsk|xai|key|api|hf|nvapi|fw|tgp)[-_][A-Za-z0-9._*-]{8,}"
    # key=value / "api_key": "..." forms
    r"|\b(?:api[_-]?key|access[_-]?token|secret|password|authorization)\b[\"']?\s*[:=]\s*"
    r"[\"']?[^\s\"',}]{4,}"
    # Long opaque tokens (hex or base64-ish runs with digits and letters)
    r"|\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{32,}\b"
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every given secret and every credential-shaped run replaced."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_CHARS and secret in text:
            text = text.replace(secret, PLACEHOLDER)
    return _SHAPES.sub(PLACEHOLDER, text)
