"""Interleaved rounds of wrk runs over several targets, and the median of each target's runs.

Rounds interleave every target so background load hits them alike; before each run the harness
waits (bounded) for an idle machine and marks the run busy if it never was.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks.harness.machine import cpu_by_pid, cpu_delta_s, wait_for_idle
from benchmarks.harness.wrk import Run, run_wrk


@dataclass(frozen=True)
class Idle:
    """How long to wait for a quiet machine before each run, and what counts as quiet."""

    max_wait_s: float = 30.0
    threshold: float = 0.85


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    pids: Callable[[], Sequence[int]]  # the processes whose CPU counts as serving
    script: Path
    extra_pids: Callable[[], Sequence[int]] = field(default=lambda: ())  # Redis, Postgres


@dataclass(frozen=True)
class Row:
    name: str
    connections: int
    runs: tuple[Run, ...]

    @property
    def median(self) -> Run:
        """The run with the median req/s (the upper one for an even count)."""
        return sorted(self.runs, key=lambda run: run.requests_per_s)[len(self.runs) // 2]

    @property
    def median_cpu_us(self) -> float:
        return statistics.median(run.cpu_us_per_request for run in self.runs)

    @property
    def median_extra_cpu_us(self) -> float:
        return statistics.median(run.extra_cpu_us_per_request for run in self.runs)

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)

    def each(self) -> str:
        return " / ".join(f"{r.requests_per_s:,.0f}{'*' if r.busy else ''}" for r in self.runs)


def measure_once(
    target: Target, connections: int, seconds: float, idle: Idle, threads: int = 1
) -> Run:
    busy = idle.max_wait_s > 0 and not wait_for_idle(idle.threshold, idle.max_wait_s)
    pids, extra = list(target.pids()), list(target.extra_pids())
    cpu_before, extra_before = cpu_by_pid(pids), cpu_by_pid(extra)
    run = run_wrk(
        target.url, target.script, connections=connections, threads=threads, seconds=seconds
    )
    return replace(
        run,
        cpu_s=cpu_delta_s(cpu_before, cpu_by_pid(pids)),
        extra_cpu_s=cpu_delta_s(extra_before, cpu_by_pid(extra)),
        busy=busy,
    )


def measure_rounds(
    targets: Sequence[Target],
    connections: Sequence[int],
    *,
    repeat: int,
    seconds: float,
    idle: Idle,
    threads: int = 1,
    report: Callable[[str], None] = print,
) -> list[Row]:
    """Every target at every concurrency, `repeat` rounds interleaved."""
    runs: dict[tuple[str, int], list[Run]] = {}
    for round_ in range(1, repeat + 1):
        for c in connections:
            for target in targets:
                run = measure_once(target, c, seconds, idle, threads)
                runs.setdefault((target.name, c), []).append(run)
                report(
                    f"  round {round_} {target.name:<22} c={c:<4} {run.requests_per_s:>9.0f} req/s"
                    f" {run.cpu_us_per_request:>7.0f} CPU us/req"
                    f"{' (machine was busy)' if run.busy else ''}"
                )
    return [Row(name, c, tuple(results)) for (name, c), results in runs.items()]
