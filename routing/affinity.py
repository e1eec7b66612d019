"""Cache affinity memory: which endpoint served a conversation last, while its cache is warm.

In process, per replica (an LRU with TTL), optionally backed by an `AffinityShare` (Redis) that
replicas write behind and read only for a continuing conversation this replica doesn't know, so
a conversation bounced between replicas keeps its warm cache. Losing it costs a cache miss,
never a wrong answer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

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


class AffinityShare(Protocol):
    """Where replicas share what they remember (`gateway.affinity_share`)."""

    def publish(self, key: str, warm: Warm) -> None:
        """Queue it for the other replicas; written in the background, never awaited."""
        ...

    async def fetch(self, key: str) -> Warm | None:
        """What another replica remembered; None when nothing, or when the share failed."""
        ...


class AffinityMemory:
    """Bounded LRU of conversation key -> `Warm`; entries die with the cache they point at."""

    def __init__(
        self, max_entries: int = defaults.AFFINITY_ENTRIES, share: AffinityShare | None = None
    ) -> None:
        self._max = max(max_entries, 1)
        self._entries: OrderedDict[str, Warm] = OrderedDict()
        self.share = share

    def __len__(self) -> int:
        return len(self._entries)

    def remember(
        self, key: str, endpoint_id: str, prompt_tokens: int, now: float, ttl_s: float
    ) -> None:
        if ttl_s <= 0:
            self._entries.pop(key, None)
            return
        warm = Warm(endpoint_id, prompt_tokens, now + ttl_s)
        if self.share is not None:
            known = self._entries.get(key)
            # Published once per half cache TTL per conversation, or when its endpoint changes:
            # rapid turns don't each cost a write.
            if (
                known is None
                or known.endpoint_id != endpoint_id
                or known.expires_at < now + ttl_s / 2
            ):
                self.share.publish(key, warm)
            else:
                warm = Warm(endpoint_id, prompt_tokens, known.expires_at)
        self._keep(key, warm)

    def _keep(self, key: str, warm: Warm) -> None:
        entries = self._entries
        entries[key] = warm
        entries.move_to_end(key)
        while len(entries) > self._max:
            entries.popitem(last=False)

    async def recall_shared(self, key: str, now: float) -> Warm | None:
        """`recall`, asking the share (one Redis read) only when this replica doesn't know the
        conversation; what it finds is kept here, so the next turn reads memory only."""
        warm = self.recall(key, now)
        if warm is not None or self.share is None:
            return warm
        warm = await self.share.fetch(key)
        if warm is None or warm.expires_at <= now:
            return None
        self._keep(key, warm)
        return warm

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
