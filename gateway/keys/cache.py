"""The in-process key cache: secret hash -> active key, one dict lookup per request.

Filled and kept current by `gateway.keys.refresh`; never reads the database itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.keys.record import ApiKey


class KeyCache:
    def __init__(self) -> None:
        self._by_hash: dict[str, ApiKey] = {}  # active keys only
        self._by_id: dict[str, ApiKey] = {}  # every key seen, revoked ones too

    def __len__(self) -> int:
        return len(self._by_hash)

    def find(self, key_hash: str) -> ApiKey | None:
        """The active key with this secret hash."""
        return self._by_hash.get(key_hash)

    def get(self, key_id: str) -> ApiKey | None:
        return self._by_id.get(key_id)

    def put(self, keys: Iterable[ApiKey]) -> None:
        """Take newer versions of these keys; a revoked key stops being findable."""
        for key in keys:
            old = self._by_id.get(key.id)
            if old is not None:
                if old.version > key.version:
                    continue  # a read that raced a newer write this process already applied
                self._by_hash.pop(old.key_hash, None)
            self._by_id[key.id] = key
            if key.active:
                self._by_hash[key.key_hash] = key

    def evict(self, key_ids: Iterable[str]) -> None:
        """Forget keys whose rows can't be read: refused until they can (fail closed)."""
        for key_id in key_ids:
            old = self._by_id.pop(key_id, None)
            if old is not None:
                self._by_hash.pop(old.key_hash, None)

    def replace(self, keys: Iterable[ApiKey]) -> None:
        """Start over from a full snapshot (drops keys that are no longer in the database)."""
        self._by_hash, self._by_id = {}, {}
        self.put(keys)
