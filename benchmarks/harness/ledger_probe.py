"""Watching the ledger from outside: the age of the oldest uncommitted event, and row counts.

The writer acks (and deletes) stream entries only after their rows are committed, so the age
of the oldest entry left in the stream is the ledger's lag at that moment.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg  # type: ignore[import-untyped]
from redis import Redis

SAMPLE_EVERY_S = 0.1


@dataclass
class LagSampler:
    """Samples (lag seconds, stream depth) every 100 ms in a thread until stopped."""

    redis_url: str
    stream: str
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, lag, depth)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self, client: Redis) -> tuple[float, int]:
        now_s, now_us = client.time()
        now_ms = now_s * 1000 + now_us // 1000
        oldest = client.xrange(self.stream, "-", "+", count=1)
        depth = int(client.xlen(self.stream))
        if not oldest:
            return 0.0, depth
        entry_id = oldest[0][0]
        text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        entry_ms = int(text.split("-", 1)[0])
        return max(now_ms - entry_ms, 0) / 1000, depth

    def _run(self) -> None:
        client = Redis.from_url(self.redis_url)
        try:
            while not self._stop.is_set():
                lag, depth = self._sample(client)
                self.samples.append((time.monotonic(), lag, depth))
                self._stop.wait(SAMPLE_EVERY_S)
        finally:
            client.close()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ledger-lag", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_drained(self, timeout_s: float) -> float | None:
        """Seconds until the stream is empty (sampling continues meanwhile); None on timeout."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.samples and self.samples[-1][0] > started and self.samples[-1][2] == 0:
                return time.monotonic() - started
            time.sleep(SAMPLE_EVERY_S / 2)
        return None

    def lags(self) -> list[float]:
        return [lag for _, lag, _ in self.samples]


@dataclass(frozen=True)
class LedgerCounts:
    found: int  # answered ids that have a `generations` row
    written: int  # all rows written with the phase's app title
    failed: dict[str, int]  # rows with a status other than ok: "status http_status: message"


async def _count(dsn: str, ids: Sequence[str], app_title: str) -> LedgerCounts:
    conn = await asyncpg.connect(dsn)
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM generations WHERE id = ANY($1::text[])", list(ids)
        )
        tagged = await conn.fetchval(
            "SELECT count(*) FROM generations WHERE app_title = $1", app_title
        )
        failed = await conn.fetch(
            "SELECT status, http_status, left(coalesce(error_message, ''), 120) AS message,"
            " count(*) AS n FROM generations WHERE app_title = $1 AND status <> 'ok'"
            " GROUP BY 1, 2, 3 ORDER BY n DESC LIMIT 5",
            app_title,
        )
        return LedgerCounts(
            int(found),
            int(tagged),
            {f"{r['status']} {r['http_status']}: {r['message']}": int(r["n"]) for r in failed},
        )
    finally:
        await conn.close()


def ledger_counts(dsn: str, ids: Sequence[str], app_title: str) -> LedgerCounts:
    return asyncio.run(_count(dsn, ids, app_title))
