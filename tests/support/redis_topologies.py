"""A 3-primary Redis Cluster and a Sentinel-watched primary with one replica, on loopback in a
temporary directory, started from Debian's `redis-server` and stopped (SIGKILL) by the context.

Every wait polls a real condition with a deadline (cluster_state:ok, a linked replica, sentinels
that know each other), generous enough for two busy cores.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

DEADLINE_S = 60.0
MASTER = "gwmaster"


def require_redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None or shutil.which("redis-cli") is None:
        raise RuntimeError("redis-server and redis-cli are needed (scripts/services.sh installs)")
    return path


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = random.randint(20_000, 29_999)
        if _free(port) and _free(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cli(port: int, *args: str, timeout_s: float = 5.0) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return done.stdout


def wait_until(check: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    ends = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > ends:
            raise AssertionError(f"{what}: not reached within {deadline_s} s")
        time.sleep(0.1)


def _answers(port: int) -> bool:
    try:
        return cli(port, "PING", timeout_s=2).strip() == "PONG"
    except subprocess.TimeoutExpired:
        return False


@dataclass
class Servers:
    directory: Path
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, port: int, *extra: str, config: Path | None = None) -> None:
        work = self.directory / str(port)
        work.mkdir(parents=True, exist_ok=True)
        args = [require_redis_server()]
        if config is not None:
            args.append(str(config))
        args += ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(work)]
        args += ["--save", "", "--appendonly", "no", "--protected-mode", "no", *extra]
        log = (work / "redis.log").open("wb")
        self.processes[port] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: _answers(port), f"redis-server on {port} answering")

    def kill(self, port: int) -> None:
        process = self.processes[port]
        process.kill()
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@dataclass
class Cluster:
    ports: list[int]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:2]) + "/"


@contextlib.contextmanager
def redis_cluster(directory: Path, primaries: int = 3) -> Iterator[Cluster]:
    servers = Servers(directory)
    try:
        ports = [cluster_port() for _ in range(primaries)]
        for port in ports:
            servers.start(
                port,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                "5000",
            )
        nodes = [f"127.0.0.1:{p}" for p in ports]
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
            check=False,
        )
        assert created.returncode == 0, created.stdout + created.stderr

        def ok() -> bool:
            return all("cluster_state:ok" in cli(p, "CLUSTER", "INFO") for p in ports)

        wait_until(ok, "cluster_state:ok on every node")
        yield Cluster(ports)
    finally:
        servers.stop_all()


@dataclass
class SentinelSetup:
    servers: Servers
    primary: int
    replica: int
    sentinels: list[int]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER}/0"

    def master_port(self) -> int | None:
        reply = cli(self.sentinels[0], "SENTINEL", "get-master-addr-by-name", MASTER).split()
        return int(reply[1]) if len(reply) == 2 else None

    def kill_primary(self) -> int:
        """SIGKILL the current primary; returns its port."""
        port = self.master_port()
        assert port is not None
        self.servers.kill(port)
        return port


@contextlib.contextmanager
def redis_sentinel(directory: Path, sentinels: int = 3) -> Iterator[SentinelSetup]:
    servers = Servers(directory)
    try:
        primary, replica = free_port(), free_port()
        servers.start(primary)
        servers.start(replica, "--replicaof", "127.0.0.1", str(primary))
        wait_until(
            lambda: "master_link_status:up" in cli(replica, "INFO", "replication"),
            "the replica linked to its primary",
        )
        ports = [free_port() for _ in range(sentinels)]
        for port in ports:
            config = directory / f"sentinel-{port}.conf"
            config.write_text(
                f"sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
            )
            servers.start(port, "--sentinel", config=config)

        def aware() -> bool:
            for port in ports:
                if f"num-other-sentinels\n{sentinels - 1}" not in cli(
                    port, "SENTINEL", "master", MASTER
                ):
                    return False
                if str(replica) not in cli(port, "SENTINEL", "replicas", MASTER):
                    return False
            return True

        wait_until(aware, "every sentinel knows the replica and the other sentinels")
        yield SentinelSetup(servers, primary, replica, ports)
    finally:
        servers.stop_all()
