"""Streaming figures, each against its direct-to-upstream baseline in the same run.

TTFT added, time per relayed chunk (wall and gateway CPU), whether chunks are forwarded one
by one as they arrive, and memory per worker with many streams open at once.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from benchmarks.harness.machine import cpu_s_of, rss_mb
from benchmarks.harness.processes import HOST
from benchmarks.harness.sse import SseConnection, StreamTiming, open_streams
from benchmarks.harness.stack import CHAT_PATH

LONG_CHUNKS = 101  # 100 content chunks + the usage chunk
PACED_CHUNKS = 10
PACED_INTERVAL_MS = 20.0
HELD_INTERVAL_MS = 1000.0  # open streams for the memory figure: one chunk a second
HELD_CHUNKS = 120


def stream_body(chunks: int, interval_ms: float = 0.0) -> bytes:
    return (
        b'{"model":"openai/gpt-oss-20b","messages":[{"role":"user","content":"Say hello."}],'
        b'"stream":true,"x_chunks":%d,"x_interval_ms":%s}' % (chunks, str(interval_ms).encode())
    )


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


@dataclass(frozen=True)
class Endpoint:
    """Where a streaming client connects: the upstream (direct) or a gateway."""

    name: str
    port: int
    headers: Mapping[str, str]
    pids: Callable[[], Sequence[int]]


@dataclass(frozen=True)
class StreamingFigures:
    ttft_direct_ms: tuple[float, float]  # p50, p99
    ttft_gateway_ms: tuple[float, float]
    chunk_wall_direct_us: float  # median time per chunk of a 100-chunk unpaced stream
    chunk_wall_gateway_us: float
    chunk_cpu_gateway_us: float  # gateway CPU per extra relayed chunk
    request_cpu_gateway_us: float  # gateway CPU per one-chunk streamed request
    paced_max_events_per_read: int
    paced_gap_ms: tuple[float, float]  # p50, p99 of gaps between chunks at the client
    paced_events: int
    paced_expected: int
    errors: int

    @property
    def ttft_added_ms(self) -> tuple[float, float]:
        return (
            self.ttft_gateway_ms[0] - self.ttft_direct_ms[0],
            self.ttft_gateway_ms[1] - self.ttft_direct_ms[1],
        )


async def _series(target: Endpoint, body: bytes, count: int) -> list[StreamTiming]:
    connection = SseConnection(HOST, target.port)
    try:
        return [await connection.stream(CHAT_PATH, body, target.headers) for _ in range(count)]
    finally:
        await connection.close()


async def _ttft(
    direct: Endpoint, gateway: Endpoint, count: int
) -> tuple[list[float], list[float], int]:
    """Interleaved blocks of sequential streams on one keep-alive connection per target."""
    body = stream_body(8)
    await _series(direct, body, 10)
    await _series(gateway, body, 20)
    d: list[float] = []
    g: list[float] = []
    errors = 0
    block = max(count // 10, 1)
    for _ in range(max(count // block, 1)):
        for target, into in ((direct, d), (gateway, g)):
            for timing in await _series(target, body, block):
                if timing.status != 200 or timing.events != 9:
                    errors += 1
                into.append(timing.ttft_s * 1000)
    return d, g, errors


def _chunk_wall_us(timings: Sequence[StreamTiming]) -> float:
    return statistics.median(
        (t.event_times[-1] - t.event_times[0]) / (t.events - 1) * 1e6 for t in timings
    )


SETTLE_S = 0.3  # after a block, so its ledger writes land in its own CPU window


async def _per_chunk(
    direct: Endpoint, gateway: Endpoint, count: int
) -> tuple[float, float, float, float, int]:
    """Wall per chunk direct and via the gateway; gateway CPU per chunk by difference.

    Blocks of 1-chunk and 101-chunk streams alternate; the CPU of a 1-chunk stream (request
    overhead, ledger write) is subtracted from that of a 101-chunk one.
    """
    long_body, short_body = stream_body(LONG_CHUNKS), stream_body(1)
    direct_long = await _series(direct, long_body, count)
    await _series(gateway, long_body, 5)
    pids = list(gateway.pids())
    cpu = {long_body: 0.0, short_body: 0.0}
    seen: dict[bytes, list[StreamTiming]] = {long_body: [], short_body: []}
    block = max(count // 5, 2)
    for _ in range(max(count // block, 1)):
        for body in (short_body, long_body):
            before = cpu_s_of(pids)
            seen[body] += await _series(gateway, body, block)
            await asyncio.sleep(SETTLE_S)
            cpu[body] += cpu_s_of(pids) - before
    gateway_long, gateway_short = seen[long_body], seen[short_body]
    errors = sum(
        1
        for t in (*direct_long, *gateway_long)
        if t.status != 200 or t.events != LONG_CHUNKS + 1  # + [DONE]
    ) + sum(1 for t in gateway_short if t.status != 200)
    per_long, per_short = cpu[long_body] / len(gateway_long), cpu[short_body] / len(gateway_short)
    return (
        _chunk_wall_us(direct_long),
        _chunk_wall_us(gateway_long),
        (per_long - per_short) / (LONG_CHUNKS - 1) * 1e6,
        per_short * 1e6,
        errors,
    )


async def _paced(gateway: Endpoint, count: int) -> tuple[int, list[float], int]:
    timings = await _series(gateway, stream_body(PACED_CHUNKS, PACED_INTERVAL_MS), count)
    gaps = [
        (b - a) * 1000
        for t in timings
        for a, b in zip(t.event_times[:-2], t.event_times[1:-1], strict=True)  # [DONE] aside
    ]
    # The usage chunk and [DONE] leave the upstream together, so the last read may hold both.
    most = max((n for t in timings for n in t.events_per_read[:-1]), default=0)
    return most, gaps, sum(t.events for t in timings)


def measure_streaming(direct: Endpoint, gateway: Endpoint, requests: int) -> StreamingFigures:
    async def run() -> StreamingFigures:
        d, g, errors = await _ttft(direct, gateway, requests)
        wall_d, wall_g, chunk_cpu, request_cpu, chunk_errors = await _per_chunk(
            direct, gateway, max(requests // 5, 10)
        )
        paced_count = max(requests // 50, 5)
        most, gaps, events = await _paced(gateway, paced_count)
        return StreamingFigures(
            ttft_direct_ms=(statistics.median(d), percentile(d, 0.99)),
            ttft_gateway_ms=(statistics.median(g), percentile(g, 0.99)),
            chunk_wall_direct_us=wall_d,
            chunk_wall_gateway_us=wall_g,
            chunk_cpu_gateway_us=chunk_cpu,
            request_cpu_gateway_us=request_cpu,
            paced_max_events_per_read=most,
            paced_gap_ms=(statistics.median(gaps), percentile(gaps, 0.99)),
            paced_events=events,
            paced_expected=paced_count * (PACED_CHUNKS + 1),
            errors=errors + chunk_errors,
        )

    return asyncio.run(run())


@dataclass(frozen=True)
class MemoryFigures:
    streams: int
    rss_idle_mb: float  # per worker, before the streams opened
    rss_open_mb: float  # per worker, with every stream open
    open_s: float  # time to open them all (each had its first chunk)

    @property
    def per_stream_kb(self) -> float:
        return (self.rss_open_mb - self.rss_idle_mb) * 1024 / max(self.streams, 1)


def measure_memory(gateway: Endpoint, worker_pids: Sequence[int], streams: int) -> MemoryFigures:
    """RSS of the (one) worker before and with `streams` slow streams open at once."""

    async def run() -> MemoryFigures:
        idle = max(rss_mb(pid) for pid in worker_pids)
        started = time.monotonic()
        opened = await open_streams(
            HOST,
            gateway.port,
            CHAT_PATH,
            stream_body(HELD_CHUNKS, HELD_INTERVAL_MS),
            gateway.headers,
            streams,
            timeout_s=60.0,
        )
        open_s = time.monotonic() - started
        try:
            await asyncio.sleep(1.5)  # a chunk or two through every stream
            loaded = max(rss_mb(pid) for pid in worker_pids)
        finally:
            await asyncio.gather(*(connection.close() for connection in opened))
        return MemoryFigures(streams, idle, loaded, open_s)

    return asyncio.run(run())
