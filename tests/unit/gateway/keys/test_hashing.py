"""Key secrets: format, hashing, the visible prefix, bearer parsing."""

from __future__ import annotations

import hashlib

from gateway.keys.hashing import (
    PREFIX_CHARS,
    SCHEME,
    bearer_token,
    hash_secret,
    label_of,
    mint_secret,
    same_secret,
)


def test_minted_secrets_are_random_and_only_their_hash_and_prefix_are_kept():
    a, b = mint_secret(), mint_secret()
    assert a.secret != b.secret
    assert a.secret.startswith(SCHEME) and len(a.secret) >= len(SCHEME) + 43
    assert a.key_hash == hashlib.sha256(a.secret.encode()).hexdigest() == hash_secret(a.secret)
    assert a.prefix == a.secret[:PREFIX_CHARS]
    assert a.secret not in repr(a)
    assert label_of(a.prefix) == a.prefix + "..."


def test_same_secret_compares_any_lengths():
    assert same_secret("token", "token")
    assert not same_secret("token", "token2")
    assert not same_secret("", "token")


def test_bearer_token_parsing():
    assert bearer_token("Bearer sk-gw-abc") == "sk-gw-abc"
    assert bearer_token("bearer   sk-gw-abc ") == "sk-gw-abc"
    for malformed in (None, "", "Bearer", "Bearer ", "Basic abc", "sk-gw-abc", "Bearer a b"):
        assert bearer_token(malformed) is None
