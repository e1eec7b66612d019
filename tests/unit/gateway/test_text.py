"""Untrusted text made safe to keep: bounded, no NUL, no lone surrogates."""

from __future__ import annotations

from gateway.text import clean_text, clean_tree


def test_clean_text_bounds_and_strips() -> None:
    assert clean_text("a\x00b" * 10, 5) == "aba"
    assert clean_text("x\ud800y", 10).encode("utf-8") == b"x?y"
    assert clean_text("héllo", 3) == "hél"


def test_clean_tree_cleans_keys_and_values() -> None:
    tree = {"k\x00": ["v\x00", {"n": 1, "s": "z" * 10}], "f": 1.5}
    assert clean_tree(tree, 4) == {"k": ["v", {"n": 1, "s": "zzzz"}], "f": 1.5}
