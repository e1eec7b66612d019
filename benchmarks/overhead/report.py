"""The results as Markdown tables, plus the issue's targets checked against them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.harness.rounds import Row
from benchmarks.micro import Micro
from benchmarks.overhead.ledger import LedgerFigures
from benchmarks.overhead.streaming import (
    PACED_INTERVAL_MS,
    MemoryFigures,
    StreamingFigures,
)

DIRECT = "upstream (direct)"


@dataclass
class Results:
    header: list[str]
    rows: list[Row]
    gateway: str  # the name of the one-worker gateway target
    scaled: str | None  # the N-worker gateway target, if measured
    others: list[str]  # other gateway variants (e.g. granian)
    streaming: StreamingFigures | None = None
    memory: MemoryFigures | None = None
    ledger: LedgerFigures | None = None
    micros: list[Micro] | None = None
    free_key: str | None = None  # the one-worker gateway called with a key without limits
    spend_key: str | None = None  # ...and with a key that has a spend limit only (leased)


def _row(rows: Sequence[Row], name: str, connections: int) -> Row | None:
    return next((r for r in rows if r.name == name and r.connections == connections), None)


def _concurrencies(rows: Sequence[Row]) -> list[int]:
    return sorted({r.connections for r in rows})


def throughput_table(results: Results) -> str:
    lines = [
        "| target | clients | req/s | p50 ms | p99 ms | p99.9 ms | added p50 ms | added p99 ms "
        "| server CPU µs/req | Redis+PG CPU µs/req | errors | req/s, each run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    names = [
        DIRECT,
        results.gateway,
        *([results.scaled] if results.scaled else []),
        *([results.free_key] if results.free_key else []),
        *([results.spend_key] if results.spend_key else []),
        *results.others,
    ]
    for c in _concurrencies(results.rows):
        base = _row(results.rows, DIRECT, c)
        for name in names:
            row = _row(results.rows, name, c)
            if row is None:
                continue
            m = row.median
            if name == DIRECT or base is None:
                added = "", ""
            else:
                b = base.median
                added = f"{m.p50_ms - b.p50_ms:.2f}", f"{m.p99_ms - b.p99_ms:.2f}"
            extra = "" if name == DIRECT else f"{row.median_extra_cpu_us:,.0f}"
            lines.append(
                f"| {name} | {c} | {m.requests_per_s:,.0f} | {m.p50_ms:.2f} | {m.p99_ms:.2f} "
                f"| {m.p999_ms:.2f} | {added[0]} | {added[1]} | {row.median_cpu_us:,.0f} | {extra} "
                f"| {row.errors} | {row.each()} |"
            )
    return "\n".join(lines)


def streaming_table(s: StreamingFigures) -> str:
    added = s.ttft_added_ms
    return "\n".join(
        [
            "| figure | direct | via gateway | added |",
            "|---|---:|---:|---:|",
            f"| TTFT p50 ms | {s.ttft_direct_ms[0]:.2f} | {s.ttft_gateway_ms[0]:.2f} "
            f"| {added[0]:.2f} |",
            f"| TTFT p99 ms | {s.ttft_direct_ms[1]:.2f} | {s.ttft_gateway_ms[1]:.2f} "
            f"| {added[1]:.2f} |",
            f"| wall time per chunk, 100-chunk stream, µs | {s.chunk_wall_direct_us:.1f} "
            f"| {s.chunk_wall_gateway_us:.1f} "
            f"| {s.chunk_wall_gateway_us - s.chunk_wall_direct_us:.1f} |",
            f"| gateway CPU per relayed chunk, µs | | {s.chunk_cpu_gateway_us:.1f} | |",
            f"| paced {PACED_INTERVAL_MS:.0f} ms chunks: most chunks in one client read "
            f"| | {s.paced_max_events_per_read} | |",
            f"| paced: gap between chunks at the client p50 / p99 ms "
            f"| {PACED_INTERVAL_MS:.1f} | {s.paced_gap_ms[0]:.1f} / {s.paced_gap_ms[1]:.1f} | |",
            f"| paced: chunks received / sent | | {s.paced_events} / {s.paced_expected} | |",
            f"| errors | | {s.errors} | |",
        ]
    )


def memory_table(m: MemoryFigures) -> str:
    return "\n".join(
        [
            "| open streams | RSS before MB | RSS with streams open MB | per stream KB "
            "| opened in s |",
            "|---:|---:|---:|---:|---:|",
            f"| {m.streams:,} | {m.rss_idle_mb:.1f} | {m.rss_open_mb:.1f} "
            f"| {m.per_stream_kb:.1f} | {m.open_s:.1f} |",
        ]
    )


def ledger_table(x: LedgerFigures) -> str:
    drain = "timeout" if x.drain_s is None else f"{x.drain_s:.2f}"
    return "\n".join(
        [
            "| clients | seconds | req/s | answered (2xx) | non-2xx | socket errors "
            "| answered in Postgres "
            "| rows written | lag p50 s | lag p99 s | lag max s | drained after load s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {x.connections} | {x.seconds:g} | {x.requests_per_s:,.0f} | {x.answered:,} "
            f"| {x.non_2xx} | {x.socket_errors} | {x.found:,} | {x.written:,} "
            f"| {x.lag_p50_s:.2f} | {x.lag_p99_s:.2f} "
            f"| {x.lag_max_s:.2f} | {drain} |",
            *(["", "Generations not ok:"] if x.failed else []),
            *(f"- {n} x {what}" for what, n in x.failed.items()),
        ]
    )


def micro_table(micros: Sequence[Micro]) -> str:
    lines = ["| piece | best µs | median µs | note |", "|---|---:|---:|---|"]
    for m in micros:
        lines.append(f"| {m.name} | {m.best_us:,.1f} | {m.median_us:,.1f} | {m.note} |")
    return "\n".join(lines)


def _check(ok: bool) -> str:
    return "met" if ok else "**not met**"


def targets_table(results: Results) -> str:
    lines = ["| target | measured | |", "|---|---|---|"]
    one = _row(results.rows, results.gateway, 1)
    base1 = _row(results.rows, DIRECT, 1)
    if one is not None and base1 is not None:
        p50 = one.median.p50_ms - base1.median.p50_ms
        p99 = one.median.p99_ms - base1.median.p99_ms
        lines.append(
            f"| added latency at 1 client p50 <= 0.5 ms, p99 <= 1.5 ms "
            f"| {p50:.2f} / {p99:.2f} ms | {_check(p50 <= 0.5 and p99 <= 1.5)} |"
        )
        free = _row(results.rows, results.free_key, 1) if results.free_key else None
        if free is not None:
            p50 = free.median.p50_ms - base1.median.p50_ms
            p99 = free.median.p99_ms - base1.median.p99_ms
            lines.append(
                f"| the same, a key without limits (no limit check) "
                f"| {p50:.2f} / {p99:.2f} ms | {_check(p50 <= 0.5 and p99 <= 1.5)} |"
            )
        spend = _row(results.rows, results.spend_key, 1) if results.spend_key else None
        if spend is not None:
            p50 = spend.median.p50_ms - base1.median.p50_ms
            p99 = spend.median.p99_ms - base1.median.p99_ms
            lines.append(
                f"| #19: a key with a spend limit (leased), added p50 <= 0.45 ms, p99 <= 2 ms "
                f"| {p50:.2f} / {p99:.2f} ms | {_check(p50 <= 0.45 and p99 <= 2.0)} |"
            )
    g16, g64 = _row(results.rows, results.gateway, 16), _row(results.rows, results.gateway, 64)
    if g16 is not None:
        rate = g16.median.requests_per_s
        lines.append(f"| >= 2,500 req/s at 16 clients | {rate:,.0f} | {_check(rate >= 2500)} |")
        if g64 is not None:
            ratio = g64.median.requests_per_s / max(rate, 1)
            lines.append(
                f"| 64 clients within 20 % of 16 | {ratio:.0%} of the 16-client rate "
                f"| {_check(ratio >= 0.8)} |"
            )
    if results.streaming is not None:
        s = results.streaming
        lines.append(
            f"| streaming TTFT added <= 1 ms p50 | {s.ttft_added_ms[0]:.2f} ms "
            f"| {_check(s.ttft_added_ms[0] <= 1.0)} |"
        )
        forwarded = s.paced_max_events_per_read == 1 and s.paced_events == s.paced_expected
        lines.append(
            f"| each chunk forwarded as it arrives | at most {s.paced_max_events_per_read} "
            f"chunk per read, gaps p50 {s.paced_gap_ms[0]:.1f} ms for {PACED_INTERVAL_MS:.0f} ms "
            f"upstream spacing | {_check(forwarded)} |"
        )
    if results.memory is not None:
        m = results.memory
        lines.append(
            f"| {m.streams:,} open streams < 300 MB RSS per worker | {m.rss_open_mb:.0f} MB "
            f"| {_check(m.rss_open_mb < 300 and m.streams >= 1000)} |"
        )
    if results.ledger is not None:
        x = results.ledger
        complete = x.found == x.answered and x.non_2xx == 0
        lines.append(
            f"| every answered generation in Postgres | {x.found:,} of {x.answered:,} "
            f"| {_check(complete)} |"
        )
        lines.append(
            f"| ledger lag < 2 s at the sustained rate | max {x.lag_max_s:.2f} s at "
            f"{x.requests_per_s:,.0f} req/s | {_check(x.lag_max_s < 2.0)} |"
        )
    if results.scaled is not None:
        for c in _concurrencies(results.rows):
            one_w, n_w = (
                _row(results.rows, results.gateway, c),
                _row(results.rows, results.scaled, c),
            )
            if c == 1 or one_w is None or n_w is None:
                continue
            ratio = n_w.median.requests_per_s / max(one_w.median.requests_per_s, 1)
            lines.append(
                f"| `--workers 2` near-linear ({c} clients) | {ratio:.2f}x the 1-worker rate "
                f"| {_check(ratio >= 1.8)} |"
            )
    return "\n".join(lines)


def markdown(results: Results) -> str:
    parts = [*results.header, "", "### Targets", "", targets_table(results)]
    parts += ["", "### Non-streaming requests", "", throughput_table(results)]
    if results.streaming is not None:
        parts += ["", "### Streaming (1 client)", "", streaming_table(results.streaming)]
    if results.memory is not None:
        parts += ["", "### Memory per worker", "", memory_table(results.memory)]
    if results.ledger is not None:
        parts += ["", "### Ledger under sustained load", "", ledger_table(results.ledger)]
    if results.micros:
        parts += [
            "",
            "### Micro-benchmarks (one call, in process)",
            "",
            micro_table(results.micros),
        ]
    return "\n".join(parts) + "\n"
