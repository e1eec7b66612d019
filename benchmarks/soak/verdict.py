"""The soak's verdict: each sampled series must stay flat after the warm-up, i.e. the slope of its
least-squares line must not exceed `rate + jitter / span` (a leak shows as a steady rate; the
jitter term keeps a short run's noise from reading as one). Also the CSV and the PNG.

Bounds (per replica for the process figures):

| series | rate (per minute) | jitter |
|---|---|---|
| RSS (MiB) | 2.0 | 8 |
| open file descriptors | 0.5 | 16 |
| upstream connections | 0.5 | 16 |
| ledger lag (s) | 0.05 | 2 |
| ledger pending entries | 5 | 100 |
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

WARM_UP_SHARE = 0.25  # the first quarter (at least one sample) is not judged


@dataclass(frozen=True)
class Bound:
    rate_per_min: float
    jitter: float
    unit: str


BOUNDS = {
    "rss_mb": Bound(2.0, 8.0, "MiB"),
    "open_fds": Bound(0.5, 16.0, "fds"),
    "upstream_connections": Bound(0.5, 16.0, "connections"),
    "ledger_lag_s": Bound(0.05, 2.0, "s"),
    "ledger_pending": Bound(5.0, 100.0, "entries"),
}


@dataclass(frozen=True)
class Judged:
    series: str  # e.g. "a.rss_mb" or "ledger_lag_s"
    slope_per_min: float
    limit_per_min: float
    first: float
    last: float

    @property
    def flat(self) -> bool:
        return self.slope_per_min <= self.limit_per_min


def slope(times_s: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope, per second; 0 for fewer than two points."""
    n = len(times_s)
    if n < 2:
        return 0.0
    mean_t, mean_v = sum(times_s) / n, sum(values) / n
    spread = sum((t - mean_t) ** 2 for t in times_s)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in zip(times_s, values, strict=True)) / spread


def judge(rows: Sequence[dict[str, float]]) -> list[Judged]:
    """Every series of the samples (columns other than `t_s`) against its bound."""
    start = max(1, int(len(rows) * WARM_UP_SHARE))
    judged_rows = rows[start:] if len(rows) - start >= 2 else rows
    times = [row["t_s"] for row in judged_rows]
    span_min = max((times[-1] - times[0]) / 60, 1e-9) if times else 1e-9
    verdicts = []
    for column in rows[0]:
        if column == "t_s":
            continue
        bound = BOUNDS[column.rsplit(".", 1)[-1]]
        values = [row[column] for row in judged_rows]
        verdicts.append(
            Judged(
                column,
                round(slope(times, values) * 60, 4),
                round(bound.rate_per_min + bound.jitter / span_min, 4),
                values[0],
                values[-1],
            )
        )
    return verdicts


def write_csv(path: Path, rows: Sequence[dict[str, float]]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(path: Path, rows: Sequence[dict[str, float]], title: str) -> None:
    """One panel per kind of series (both replicas on one panel), time in minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(BOUNDS)
    minutes = [row["t_s"] / 60 for row in rows]
    figure, axes = plt.subplots(len(kinds), 1, figsize=(9, 2.2 * len(kinds)), sharex=True)
    for axis, kind in zip(axes, kinds, strict=True):
        for column in rows[0]:
            if column.rsplit(".", 1)[-1] == kind:
                axis.plot(minutes, [row[column] for row in rows], label=column, marker=".")
        axis.set_ylabel(f"{kind}\n({BOUNDS[kind].unit})", fontsize=8)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("minutes")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def summary(verdicts: Sequence[Judged]) -> str:
    lines = [
        "| series | first | last | slope /min | bound /min | flat |",
        "|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        mark = "yes" if v.flat else "NO"
        lines.append(
            f"| {v.series} | {v.first:g} | {v.last:g} | {v.slope_per_min:g} "
            f"| {v.limit_per_min:g} | {mark} |"
        )
    return "\n".join(lines)
