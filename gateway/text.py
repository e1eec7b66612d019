"""Making untrusted text safe to keep: bounded, no NUL, no lone surrogates.

Applied at the edge to everything a client or an upstream controls that reaches memory, the
ledger or a log (headers, session keys, explanation entries, error text). Not redaction: that
is `providers.redaction`.
"""

from __future__ import annotations

from typing import Any


def clean_text(value: str, limit: int) -> str:
    """`value` cut to `limit` characters, without NUL and lone surrogates (which Postgres and
    UTF-8 encoders refuse)."""
    if len(value) > limit:
        value = value[:limit]
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate -> "?"
    return value


def clean_optional(value: str | None, limit: int) -> str | None:
    return None if value is None else clean_text(value, limit)


def clean_tree(value: Any, limit: int) -> Any:
    """A JSON-like tree with every string (keys too) cleaned; other leaves kept."""
    if isinstance(value, str):
        return clean_text(value, limit)
    if isinstance(value, dict):
        return {clean_text(str(k), limit): clean_tree(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_tree(v, limit) for v in value]
    return value
