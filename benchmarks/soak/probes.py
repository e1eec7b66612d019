"""What the soak samples, from /proc and Redis: a replica's RSS, open file descriptors and
upstream connections (its whole process tree: server, workers, ledger writer), and the ledger
stream's lag and pending entries. Reads only."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from redis.exceptions import ResponseError

from benchmarks.harness.machine import rss_mb, tree_of

GROUP = "ledger-writers"  # gateway.ledger.stream.GROUP
ESTABLISHED = "01"  # /proc/net/tcp state


@dataclass(frozen=True)
class ReplicaSample:
    rss_mb: float
    open_fds: int
    upstream_connections: int


def _socket_inodes(pid: int) -> tuple[int, set[int]]:
    """(open fds, inodes of its sockets) of one process."""
    fds, inodes = 0, set()
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            fds += 1
            with contextlib.suppress(OSError):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return fds, inodes


def _established_to(port: int) -> set[int]:
    """Inodes of established TCP sockets whose remote end is 127.0.0.1/::1 `port`."""
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                remote, state, inode = fields[2], fields[3], int(fields[9])
                if state == ESTABLISHED and int(remote.rsplit(":", 1)[1], 16) == port:
                    found.add(inode)
    return found


def sample_replica(pid: int, upstream_port: int) -> ReplicaSample:
    rss, fds, inodes = 0.0, 0, set()
    for member in tree_of(pid):
        with contextlib.suppress(OSError):
            rss += rss_mb(member)
        count, sockets = _socket_inodes(member)
        fds += count
        inodes |= sockets
    return ReplicaSample(round(rss, 1), fds, len(inodes & _established_to(upstream_port)))


@dataclass(frozen=True)
class LedgerSample:
    lag_s: float  # age of the oldest entry not yet written (0: none waiting)
    pending: int  # entries read by a writer and not yet acked
    depth: int  # entries in the stream (waiting or pending)


def sample_ledger(redis: Redis, stream: str) -> LedgerSample:
    oldest = redis.xrange(stream, "-", "+", count=1)
    lag = 0.0
    if oldest:
        entry_id = oldest[0][0]
        entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        lag = max(time.time() - int(entry_id.split("-", 1)[0]) / 1000, 0.0)
    pending = 0
    with contextlib.suppress(ResponseError):  # NOGROUP before the first read
        pending = int(redis.xpending(stream, GROUP)["pending"])
    return LedgerSample(round(lag, 3), pending, int(redis.xlen(stream)))
