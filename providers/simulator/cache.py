"""Prompt-cache emulation: a prompt prefix seen again within the TTL is reported as cached tokens.

Like real providers: only prompts of at least `min_tokens` are cached, in whole blocks of
`block_tokens`, keyed by a hash chain over the prefix blocks. Not a cache of answers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from providers.simulator.tokens import CHARS_PER_TOKEN, count_tokens

MAX_ENTRIES = 200_000  # block hashes kept per provider before the oldest are dropped


class PromptCache:
    """Block hashes of recently seen prompt prefixes, each with its expiry time."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_entries: int = MAX_ENTRIES
    ) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._expiry: dict[bytes, float] = {}

    def __len__(self) -> int:
        return len(self._expiry)

    def clear(self) -> None:
        self._expiry.clear()

    def serve(
        self, model: str, text: str, *, ttl_s: float, min_tokens: int, block_tokens: int
    ) -> int:
        """Cached tokens for this prompt, then remember (or refresh) all its blocks."""
        if ttl_s <= 0 or count_tokens(text) < min_tokens:
            return 0
        now = self._clock()
        block_chars = block_tokens * CHARS_PER_TOKEN
        chain = hashlib.blake2b(model.encode("utf-8", "surrogatepass"), digest_size=16)
        hits = 0
        missed = False
        for start in range(0, len(text) - block_chars + 1, block_chars):
            chain.update(text[start : start + block_chars].encode("utf-8", "surrogatepass"))
            key = chain.digest()
            expiry = self._expiry.pop(key, None)
            if not missed and expiry is not None and expiry > now:
                hits += 1
            else:
                missed = True
            self._expiry[key] = now + ttl_s  # reinserted last: the dict stays in age order
        if len(self._expiry) > self._max_entries:
            self._evict(now)
        cached = hits * block_tokens
        return cached if cached >= min_tokens else 0

    def _evict(self, now: float) -> None:
        live = {key: expiry for key, expiry in self._expiry.items() if expiry > now}
        if len(live) > self._max_entries // 2:
            live = dict(list(live.items())[len(live) - self._max_entries // 2 :])
        self._expiry = live
