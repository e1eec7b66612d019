"""Deterministic stand-ins for a tokenizer and a model: token counts from text, filler text.

About 4 characters make a token, as for English with OpenAI's tokenizers; no real tokenizer.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import cycle, islice

CHARS_PER_TOKEN = 4

# Each word plus its trailing space is 4-8 characters: close to one token apiece.
_WORDS = (
    "the route picks a fast and cheap provider when the cache is warm and "
    "every upstream answers on time so tokens flow back to the client at speed"
).split()
_THOUGHTS = (
    "first check what the user asks then weigh the options and pick the clearest "
    "answer before writing it out"
).split()


def count_tokens(text: str) -> int:
    """Approximate token count: one per 4 characters, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


@lru_cache(maxsize=4096)
def filler(tokens: int) -> str:
    """Deterministic answer text of `tokens` tokens (one word each)."""
    return " ".join(islice(cycle(_WORDS), tokens))


@lru_cache(maxsize=4096)
def thoughts(tokens: int) -> str:
    """Deterministic reasoning text of `tokens` tokens (one word each)."""
    return " ".join(islice(cycle(_THOUGHTS), tokens))


@lru_cache(maxsize=4096)
def deltas(text: str, per_chunk: int) -> tuple[str, ...]:
    """Split generated text into stream deltas of `per_chunk` words, spaces kept with them."""
    if not text:
        return ()
    parts = text.split(" ")
    return tuple(
        " ".join(parts[i : i + per_chunk]) + (" " if i + per_chunk < len(parts) else "")
        for i in range(0, len(parts), per_chunk)
    )
