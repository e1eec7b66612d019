"""The gateway with every feature on, as a user deploys it, on throwaway state.

A fresh Postgres database (migrated with `gateway migrate`, dropped afterwards), a unique Redis
prefix (its keys deleted afterwards), a key with limits made by `gateway keys create` (so every
request runs the limiter), and a catalog whose endpoints all point at the fast upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from redis import Redis

from benchmarks.harness.machine import children_of, tree_of
from benchmarks.harness.processes import HOST, answers, serving

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "openai/gpt-oss-20b"
CHAT_PATH = "/v1/chat/completions"
ENDPOINTS = ("alpha", "beta", "gamma")
# What every benchmark client sends, to the gateway and to the upstream alike.
CHAT_BODY = (
    b'{"model":"openai/gpt-oss-20b","messages":[{"role":"user","content":"Say hello."}],'
    b'"max_tokens":16}'
)
# High enough never to refuse a benchmark request, set so the limiter runs on every one.
KEY_LIMITS = ("--limit-usd", "100000", "--rpm", "1000000000", "--tpm", "2000000000")
# A spend limit alone: with Redis the gateway admits it from a per-worker lease (no round trip
# at the start on most requests); rate limits always take the per-request check.
SPEND_ONLY_LIMITS = ("--limit-usd", "100000")
SERVERS = ("uvicorn", "granian")


def catalog_toml(upstream_port: int) -> str:
    """Three endpoints of one model on the fast upstream, with prices and advertised speed."""
    parts = [f'[models."{MODEL}"]\nname = "bench"\ncontext_length = 131072\n']
    for i, name in enumerate(ENDPOINTS):
        parts.append(
            f"""
[[endpoints]]
model = "{MODEL}"
provider = "{name}"
kind = "openai"
base_url = "http://{HOST}:{upstream_port}/{name}/v1"
upstream_model = "gpt-oss-20b"
context_length = 131072
price = {{ prompt = "0.0{5 + i}", completion = "0.{20 + 5 * i}" }}
throughput = {500 - 100 * i}
latency_ms = {200 + 50 * i}
"""
        )
    return "".join(parts)


@dataclass(frozen=True)
class Backing:
    """Where the stack keeps state: Postgres server and Redis, plus this run's names in them."""

    postgres: str  # postgresql://user@host:port (no database)
    redis_url: str
    database: str
    redis_prefix: str

    @property
    def database_url(self) -> str:
        return f"{self.postgres.replace('postgresql://', 'postgresql+asyncpg://')}/{self.database}"

    @property
    def dsn(self) -> str:
        return f"{self.postgres}/{self.database}"

    def ledger_stream(self, redis_prefix: str) -> str:
        return f"{redis_prefix}ledger:events"


async def _admin(postgres: str, statement: str) -> None:
    conn = await asyncpg.connect(f"{postgres}/postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _delete_prefix(redis_url: str, prefix: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)
    finally:
        client.close()


@contextlib.contextmanager
def fresh_backing(postgres: str, redis_url: str) -> Iterator[Backing]:
    """A new database and Redis prefix for this run; both are removed afterwards."""
    tag = secrets.token_hex(4)
    backing = Backing(postgres, redis_url, f"bench_{tag}", f"bench-{tag}:")
    asyncio.run(_admin(postgres, f'CREATE DATABASE "{backing.database}"'))
    try:
        yield backing
    finally:
        asyncio.run(_admin(postgres, f'DROP DATABASE IF EXISTS "{backing.database}" WITH (FORCE)'))
        _delete_prefix(redis_url, backing.redis_prefix)


def _gateway_cli(args: list[str], env: Mapping[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"gateway {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


@dataclass(frozen=True)
class Stack:
    backing: Backing
    env: dict[str, str]
    api_key: str  # with spend and rate limits: the limiter's Redis script runs on every request
    free_key: str  # without limits: no limit check at the start, the ledger XADD alone at the end
    spend_key: str = ""  # a spend limit only: admitted from the worker's lease

    @property
    def spend_auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.spend_key}"}

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def free_auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.free_key}"}


def prepare_stack(backing: Backing, upstream_port: int, workdir: Path) -> Stack:
    """Migrate the database, write the catalog and make the key (as a user would)."""
    catalog = workdir / "catalog.toml"
    catalog.write_text(catalog_toml(upstream_port))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "REDIS_"))}
    env.update(
        DATABASE_URL=backing.database_url,
        REDIS_URL=backing.redis_url,
        REDIS_PREFIX=backing.redis_prefix,
        GATEWAY_AUTH="required",
        GATEWAY_CATALOG=str(catalog),
        GATEWAY_LOG_LEVEL="warning",
        GATEWAY_HOST=HOST,
    )
    _gateway_cli(["migrate"], env)
    created = json.loads(
        _gateway_cli(["keys", "create", "--name", "bench", "--json", *KEY_LIMITS], env)
    )
    free = json.loads(_gateway_cli(["keys", "create", "--name", "bench-free", "--json"], env))
    spend = json.loads(
        _gateway_cli(["keys", "create", "--name", "bench-spend", "--json", *SPEND_ONLY_LIMITS], env)
    )
    return Stack(backing, env, created["key"], free["key"], spend["key"])


def gateway_command(server: str, port: int, workers: int) -> list[str]:
    if server == "uvicorn":
        return [
            *(sys.executable, "-m", "gateway.cli", "serve", "--no-migrate"),
            *("--port", str(port), "--workers", str(workers)),
        ]
    if server == "granian":
        return [
            *(sys.executable, "-m", "granian", "--interface", "asgi", "--factory"),
            *("--loop", "uvloop", "--host", HOST, "--port", str(port)),
            *("--workers", str(workers), "--log-level", "warning", "--no-ws"),
            "gateway.app:app_from_env",
        ]
    raise ValueError(f"unknown server {server!r}")


@dataclass(frozen=True)
class Gateway:
    name: str
    port: int
    pid: int
    workers: int
    redis_prefix: str  # its own: limits, stats and ledger stream are not shared with others

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{CHAT_PATH}"

    def pids(self) -> list[int]:
        """The server and every process under it (CPU is summed over all of them)."""
        return tree_of(self.pid)

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the server itself when it has no workers (its
        ledger writer process is a child too, but serves nothing)."""
        workers = []
        for pid in children_of(self.pid):
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"resource_tracker" not in cmdline and b"ledger-writer" not in cmdline:
                    workers.append(pid)
        return workers or [self.pid]


@contextlib.contextmanager
def running_gateway(
    stack: Stack,
    name: str,
    port: int,
    *,
    workers: int,
    server: str,
    log: Path,
    body: bytes,
    source: Path = REPO_ROOT,
    tag: str = "g",
) -> Iterator[Gateway]:
    """`gateway serve` (or granian on the same app factory), ready once it answers a request.

    `source` is the tree whose code runs: another checkout gives an A/B in the same run. Each
    gateway gets its own Redis prefix (`tag`): with one shared ledger stream, the writers of idle
    gateways would write the measured gateway's rows and hide their cost.
    """

    def ready() -> bool:
        return answers(port, CHAT_PATH, body, stack.auth_headers, lambda status, _: status == 200)

    prefix = f"{stack.backing.redis_prefix}{tag}:"
    env = {**stack.env, "REDIS_PREFIX": prefix}
    if source != REPO_ROOT:
        env = {**env, "PYTHONPATH": str(source)}
    command = gateway_command(server, port, workers)
    with serving(command, ready, cwd=source, env=env, log=log) as proc:
        yield Gateway(name, port, proc.pid, workers, prefix)
