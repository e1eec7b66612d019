"""What the machine and its processes are doing: CPU seconds, RSS, idleness, versions.

Reads /proc only (Linux); changes nothing.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (by parent id in /proc/<n>/stat)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def tree_of(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children_of(current))
    return tree


def cpu_s_of(pids: Iterable[int]) -> float:
    """CPU seconds of processes that still exist (an exited one counts as 0)."""
    total = 0.0
    for pid in pids:
        try:
            total += process_cpu_s(pid)
        except (OSError, IndexError, ValueError):
            continue
    return total


def cpu_by_pid(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds per process that exists now."""
    found: dict[int, float] = {}
    for pid in pids:
        try:
            found[pid] = process_cpu_s(pid)
        except (OSError, IndexError, ValueError):
            continue
    return found


def cpu_delta_s(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two `cpu_by_pid` samples by the processes present in both."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pids_named(names: Sequence[str]) -> list[int]:
    """Processes whose command name is one of `names` (e.g. redis-server, postgres)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm in names:
            found.append(int(entry.name))
    return found


def cpu_idle_fraction(window_s: float = 0.5) -> float:
    """Share of all cores idle over `window_s`, from /proc/stat."""

    def sample() -> tuple[int, int]:
        ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, total

    idle_before, total_before = sample()
    time.sleep(window_s)
    idle_after, total_after = sample()
    return (idle_after - idle_before) / max(total_after - total_before, 1)


def wait_for_idle(threshold: float, max_wait_s: float) -> bool:
    """Wait (bounded) until other work on the machine quiets down; False if it never did."""
    deadline = time.monotonic() + max_wait_s
    while cpu_idle_fraction() < threshold:
        if time.monotonic() > deadline:
            return False
    return True


def cpu_model() -> str:
    return next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )


def versions(packages: Sequence[str]) -> str:
    found = []
    for name in packages:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def machine_summary(packages: Sequence[str]) -> str:
    return (
        f"nproc {len(os.sched_getaffinity(0))}; CPU {cpu_model()}; "
        f"Python {platform.python_version()}; {versions(packages)}"
    )


def load_average() -> str:
    return "load average " + " ".join(f"{load:.2f}" for load in os.getloadavg())


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} prints it: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return ipaddress.IPv4Address(words)
    v6 = ipaddress.IPv6Address(words)
    return v6.ipv4_mapped or v6


def listening_addresses(port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Local addresses with a TCP socket listening on `port` (any process)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: TCP_LISTEN
                found.append(_address(address))
    return found
