"""The peers run as a PNG: req/s, and p50 with p99, per target at each client count.

Both axes are logarithmic: the stub and the slowest peer differ by two orders of magnitude.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness.rounds import Row

COLOURS = ("#7f7f7f", "#1f77b4", "#17becf", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd")


def write_chart(rows: Sequence[Row], names: Sequence[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    clients = sorted({row.connections for row in rows})
    present = [name for name in names if any(row.name == name for row in rows)]
    cells = {(row.name, row.connections): row.median for row in rows}
    width = 0.8 / max(len(present), 1)
    figure, (rate_axes, latency_axes) = plt.subplots(1, 2, figsize=(13, 5.2))
    for i, name in enumerate(present):
        colour = COLOURS[i % len(COLOURS)]
        xs = [j + (i - (len(present) - 1) / 2) * width for j in range(len(clients))]
        runs = [cells.get((name, c)) for c in clients]
        at = [(x, run) for x, run in zip(xs, runs, strict=True) if run is not None]
        rate_axes.bar(
            [x for x, _ in at], [r.requests_per_s for _, r in at], width, color=colour, label=name
        )
        for x, run in at:
            rate_axes.annotate(
                f"{run.requests_per_s:,.0f}", (x, run.requests_per_s), ha="center",
                va="bottom", fontsize=6, rotation=90, xytext=(0, 2), textcoords="offset points",
            )  # fmt: skip
        latency_axes.bar(
            [x for x, _ in at], [r.p99_ms for _, r in at], width, color=colour, alpha=0.35
        )
        latency_axes.bar(
            [x for x, _ in at], [r.p50_ms for _, r in at], width * 0.55, color=colour, label=name
        )
        for x, run in at:
            latency_axes.annotate(
                _figure(run.p99_ms), (x, run.p99_ms), ha="center", va="bottom", fontsize=6,
                rotation=90, xytext=(0, 2), textcoords="offset points",
            )  # fmt: skip
    for axes, label in ((rate_axes, "requests per second"), (latency_axes, "latency, ms")):
        axes.set_yscale("log")
        low, high = axes.get_ylim()
        axes.set_ylim(low, high * 4)  # room for the figures written above the bars
        axes.set_xticks(range(len(clients)), [f"{c} client{'s' * (c > 1)}" for c in clients])
        axes.set_ylabel(label)
        axes.grid(axis="y", which="both", alpha=0.25)
    rate_axes.set_title("req/s (higher is better)")
    latency_axes.set_title("p50 (narrow bar) and p99 (wide, light) (lower is better)")
    handles, labels = rate_axes.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(present), 3), fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _figure(ms: float) -> str:
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}"
