"""Affinity memory backed by a share: written once per half cache TTL, read only on a miss."""

from __future__ import annotations

from routing.affinity import AffinityMemory, Warm


class MemoryShare:
    """The share's in-memory twin: what was published, what a fetch finds."""

    def __init__(self) -> None:
        self.published: list[tuple[str, Warm]] = []
        self.stored: dict[str, Warm] = {}
        self.fetches = 0

    def publish(self, key: str, warm: Warm) -> None:
        self.published.append((key, warm))
        self.stored[key] = warm

    async def fetch(self, key: str) -> Warm | None:
        self.fetches += 1
        return self.stored.get(key)


def test_rapid_turns_publish_once_per_half_ttl_or_on_a_new_endpoint() -> None:
    share = MemoryShare()
    memory = AffinityMemory(share=share)
    memory.remember("c", "e1", 100, 0.0, 300)
    memory.remember("c", "e1", 200, 10.0, 300)  # a quick next turn: nothing new to say
    assert len(share.published) == 1
    memory.remember("c", "e1", 300, 160.0, 300)  # past half the TTL: refreshed
    memory.remember("c", "e2", 300, 161.0, 300)  # another endpoint: at once
    assert [w.endpoint_id for _, w in share.published] == ["e1", "e1", "e2"]
    assert memory.recall("c", 161.0) == Warm("e2", 300, 461.0)


async def test_the_share_is_read_only_for_a_conversation_not_in_memory() -> None:
    share = MemoryShare()
    share.stored["other"] = Warm("e9", 50, 100.0)
    memory = AffinityMemory(share=share)
    memory.remember("mine", "e1", 10, 0.0, 300)
    assert (await memory.recall_shared("mine", 1.0)) == Warm("e1", 10, 300.0)
    assert share.fetches == 0
    assert (await memory.recall_shared("other", 1.0)) == Warm("e9", 50, 100.0)
    assert (await memory.recall_shared("other", 2.0)) is not None and share.fetches == 1
    assert (await memory.recall_shared("other", 100.0)) is None  # expired with its cache
    assert (await memory.recall_shared("nobody", 1.0)) is None


async def test_without_a_share_nothing_is_fetched() -> None:
    memory = AffinityMemory()
    assert (await memory.recall_shared("c", 0.0)) is None
