"""Key secrets: minting them, hashing them for storage and lookup, comparing in constant time.

A secret exists in clear only in the response that creates it; everything else holds its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCHEME = "sk-gw-"  # every key starts with this, so leaked keys are easy to scan for
SECRET_BYTES = 32
PREFIX_CHARS = len(SCHEME) + 6  # what listings show of a key; 36 of its 256 random bits


@dataclass(frozen=True, slots=True)
class MintedSecret:
    secret: str  # shown once, never stored
    key_hash: str
    prefix: str

    def __repr__(self) -> str:
        return f"MintedSecret(prefix={self.prefix!r})"


def hash_secret(secret: str) -> str:
    """sha256 hex of the secret: the stored identity of a key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def mint_secret() -> MintedSecret:
    secret = SCHEME + secrets.token_urlsafe(SECRET_BYTES)
    return MintedSecret(secret, hash_secret(secret), secret[:PREFIX_CHARS])


def label_of(prefix: str) -> str:
    """How a key is shown once created: its visible prefix and an ellipsis."""
    return f"{prefix}..."


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time equality whatever the lengths (both are hashed first)."""
    return hmac.compare_digest(
        hashlib.sha256(presented.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None if absent or malformed."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token
