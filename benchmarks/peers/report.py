"""The peers run as Markdown: how each target ran, one row per target and client count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.harness.rounds import Row

INTRO = (
    "Every target answers the same chat request (`POST /v1/chat/completions`, non-streaming) "
    "from the same stub upstream (`benchmarks.harness.upstream`), all on 127.0.0.1:"
)


@dataclass
class Results:
    header: list[str]
    targets: list[tuple[str, str]]  # (name, how it runs), in measuring order
    rows: list[Row] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per target left out, and why
    chart: str | None = None  # file name of the PNG, next to the Markdown


def _row(rows: Sequence[Row], name: str, connections: int) -> Row | None:
    return next((r for r in rows if r.name == name and r.connections == connections), None)


def throughput_table(results: Results) -> str:
    repeated = any(len(row.runs) > 1 for row in results.rows)
    lines = [
        "| target | clients | req/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/req | errors |"
        + (" req/s, each run |" if repeated else ""),
        "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---|" if repeated else ""),
    ]
    for c in sorted({row.connections for row in results.rows}):
        for name, _ in results.targets:
            row = _row(results.rows, name, c)
            if row is None:
                continue
            m = row.median
            busy = "*" if m.busy else ""
            lines.append(
                f"| {name} | {c} | {m.requests_per_s:,.0f}{busy} | {m.p50_ms:.2f} "
                f"| {m.p99_ms:.2f} | {m.p999_ms:.2f} | {row.median_cpu_us:,.0f} | {row.errors} |"
                + (f" {row.each()} |" if repeated else "")
            )
    return "\n".join(lines)


def markdown(results: Results) -> str:
    parts = [*results.header, "", INTRO, ""]
    parts += [f"- **{name}**: {setup}" for name, setup in results.targets]
    if results.skipped:
        parts += ["", "Not measured:", "", *(f"- {line}" for line in results.skipped)]
    parts += ["", "### Non-streaming chat completions", "", throughput_table(results)]
    parts += [
        "",
        "`*`: the machine never got idle before that run (bounded wait). Server CPU: every "
        "process of the target (workers, ledger writer; node; the proxy and its workers) per "
        "answered request; it moves less with other load than req/s does.",
    ]
    if results.chart is not None:
        parts += ["", f"![req/s and latency per target]({results.chart})"]
    return "\n".join(parts) + "\n"
