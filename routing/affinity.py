"""Cache affinity memory: which endpoint served a conversation last, while its cache is warm.

In process, per replica (an LRU with TTL): a conversation whose requests land on different
replicas may lose stickiness, which costs a cache miss, never a wrong answer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from providers.catalog import Endpoint
from providers.usage import Usage
from routing import defaults
from routing.preferences import RouteRequest


@dataclass(frozen=True, slots=True)
class Warm:
    """A conversation's last serving endpoint and how much prompt it left in that cache."""

    endpoint_id: str
    prompt_tokens: int
    expires_at: float  # unix seconds: the endpoint's cache TTL after it served


class AffinityMemory:
    """Bounded LRU of conversation key -> `Warm`; entries die with the cache they point at."""

    def __init__(self, max_entries: int = defaults.AFFINITY_ENTRIES) -> None:
        self._max = max(max_entries, 1)
        self._entries: OrderedDict[str, Warm] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(
        self, key: str, endpoint_id: str, prompt_tokens: int, now: float, ttl_s: float
    ) -> None:
        if ttl_s <= 0:
            self._entries.pop(key, None)
            return
        entries = self._entries
        entries[key] = Warm(endpoint_id, prompt_tokens, now + ttl_s)
        entries.move_to_end(key)
        while len(entries) > self._max:
            entries.popitem(last=False)

    def served(self, request: RouteRequest, endpoint: Endpoint, usage: Usage, now: float) -> None:
        """The executor's served observer: a conversation's serving endpoint is remembered for
        as long as that endpoint keeps a prompt cache."""
        key = request.affinity_key
        if key is None:
            return
        prompt = usage.prompt_tokens or request.prompt_tokens
        self.remember(key, endpoint.id, prompt, now, endpoint.cache_ttl_s)

    def recall(self, key: str, now: float) -> Warm | None:
        warm = self._entries.get(key)
        if warm is None:
            return None
        if warm.expires_at <= now:
            del self._entries[key]
            return None
        return warm
