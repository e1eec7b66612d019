"""Helpers for the ledger's integration tests: settings, polling the database, a throwaway
Postgres cluster, and `gateway serve` as a child process."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.models import attempts, generations
from gateway.settings import (
    CatalogSettings,
    DatabaseSettings,
    LedgerSettings,
    RedisSettings,
    RoutingSettings,
    Settings,
)
from tests.support.gateway import free_port
from tests.support.polling import eventually

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MODEL = "openai/gpt-oss-20b"


def settings_for(
    catalog: Path,
    database_url: str,
    *,
    redis_url: str | None = None,
    redis_prefix: str = "gw:",
    **ledger: Any,
) -> Settings:
    return Settings(
        catalog=CatalogSettings(catalog=catalog),
        database=DatabaseSettings(database_url=database_url),
        redis=RedisSettings(redis_url=redis_url, redis_prefix=redis_prefix),
        routing=RoutingSettings(retries_per_endpoint=0),
        ledger=LedgerSettings(**{"flush_interval_s": 0.05, **ledger}),
    )


def chat(content: str = "hi", *, stream: bool = False, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        **extra,
    }
    if stream:
        body["stream"] = True
    return body


def decimal_json(text: str) -> Any:
    """JSON with every non-integer number as an exact Decimal, as a billing client reads it."""
    return json.loads(text, parse_float=Decimal)


def stream_chunks(text: str) -> list[dict[str, Any]]:
    events = [line[6:] for line in text.split("\n\n") if line.startswith("data: ")]
    return [decimal_json(e) for e in events if e != "[DONE]"]


poll = functools.partial(eventually, timeout_s=20.0, interval_s=0.05)


async def generation_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(generations)) or 0)


async def stored_ids(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.scalars(select(generations.c.id))).all())


async def generation_rows(engine: AsyncEngine, ids: list[str]) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(generations).where(generations.c.id.in_(ids)))
        return {row["id"]: dict(row) for row in rows.mappings()}


async def attempt_rows(engine: AsyncEngine, generation_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(attempts)
            .where(attempts.c.generation_id == generation_id)
            .order_by(attempts.c.seq)
        )
        return [dict(row) for row in rows.mappings()]


async def wait_for_ids(engine: AsyncEngine, ids: list[str], timeout_s: float = 20.0) -> None:
    wanted = set(ids)

    async def landed() -> bool:
        return wanted <= set(await stored_ids(engine))

    await poll(landed, timeout_s=timeout_s, what=f"{len(wanted)} generations in the ledger")


async def drop_redis_keys(redis_url: str, prefix: str) -> None:
    """Remove what a test left under its own prefix on the shared Redis."""
    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def _run_as_postgres(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: drop to the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@dataclass
class ThrowawayPostgres:
    """A private Postgres cluster on a free port, stopped and started by the test itself."""

    data_dir: Path
    socket_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _run_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), *args]),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("start", "-w", "-t", "30", "-o", options, "-l", str(self.data_dir / "log"))

    def stop(self) -> None:
        self._ctl("stop", "-w", "-t", "30", "-m", "fast")


@contextlib.contextmanager
def throwaway_postgres(tmp_path: Path) -> Iterator[ThrowawayPostgres]:
    # tmp_path is private to root; a cluster owned by `postgres` needs a folder it can enter.
    base = Path(tempfile.mkdtemp(prefix="gw-pg-")) if os.geteuid() == 0 else tmp_path
    data_dir, socket_dir = base / "data", base / "run"
    socket_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(socket_dir, "postgres")
    subprocess.run(
        _run_as_postgres(
            [str(PG_BIN / "initdb"), "-D", str(data_dir), "-U", "postgres", "-A", "trust"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    cluster = ThrowawayPostgres(data_dir, socket_dir, free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            cluster.stop()
        if base != tmp_path:
            shutil.rmtree(base, ignore_errors=True)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any gateway settings of the caller, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "DATABASE_URL", "REDIS_"))
    }
    return {**env, **extra}


def writer_pids(parent: int) -> set[int]:
    """The `gateway ledger-writer` processes whose parent is `parent`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"ledger-writer" in cmdline:
            found.add(int(entry.name))
    return found


class GatewayProcess:
    """`python -m gateway.cli serve` as a child process, as an operator runs it."""

    def __init__(self, cwd: Path, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"gateway-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port), *args],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: `crash` reaches every process
            )

    async def ready(self, timeout_s: float = 60.0) -> None:
        async with httpx.AsyncClient(timeout=1.0) as client:

            async def answers() -> bool:
                if self.proc.poll() is not None:
                    raise AssertionError(f"gateway exited: {self.output()}")
                try:
                    return (await client.get(f"{self.url}/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await poll(answers, timeout_s=timeout_s, what="gateway /health")

    def kill(self) -> None:
        """SIGKILL to the server alone (its ledger writer process notices and leaves)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def crash(self) -> None:
        """SIGKILL to every process of the gateway at once: server, workers, ledger writer (in
        a session of its own, so killed by pid)."""
        writers = writer_pids(self.proc.pid)
        os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in writers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            tail = self.output()[-4000:]
            raise AssertionError(
                f"gateway did not stop within {timeout_s}s; log:\n{tail}"
            ) from None

    def output(self) -> str:
        return self.log.read_text(errors="replace")
