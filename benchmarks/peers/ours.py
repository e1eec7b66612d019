"""The stub itself and this gateway as targets: the embedded default (SQLite, in-process state,
no auth on loopback) and everything on (the overhead harness's stack: a limited key, Redis
limiter and stats, the ledger through the Redis stream into Postgres).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from benchmarks.harness.machine import pids_named, tree_of
from benchmarks.harness.processes import HOST, answers, free_port, serving
from benchmarks.harness.stack import (
    CHAT_BODY,
    CHAT_PATH,
    REPO_ROOT,
    catalog_toml,
    fresh_backing,
    prepare_stack,
    running_gateway,
)
from benchmarks.peers.context import Context
from benchmarks.peers.servers import Running, check_answer

DIRECT = "direct to the stub"
EMBEDDED = "this gateway, embedded default"
EVERYTHING_ON = "this gateway, everything on"
BACKING = ("redis-server", "postgres")
EMBEDDED_READY_TIMEOUT_S = 60.0  # it migrates its SQLite database first


def running_direct(ctx: Context, upstream_pid: int) -> contextlib.AbstractContextManager[Running]:
    return contextlib.nullcontext(
        Running(
            DIRECT,
            f"http://{HOST}:{ctx.upstream_port}{CHAT_PATH}",
            {},
            lambda: [upstream_pid],
            "wrk straight to the stub (raw uvloop + httptools, fixed JSON answer): the baseline",
        )
    )


@contextlib.contextmanager
def running_embedded(ctx: Context) -> Iterator[Running]:
    """`gateway serve` as a first user runs it: no Redis, SQLite, auth off on loopback."""
    workdir = ctx.workdir / "embedded"
    workdir.mkdir(parents=True, exist_ok=True)
    catalog = workdir / "catalog.toml"
    catalog.write_text(catalog_toml(ctx.upstream_port))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "REDIS_", "DATABASE_"))
    }
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'gateway.sqlite3'}",
        GATEWAY_CATALOG=str(catalog),
        GATEWAY_HOST=HOST,
        GATEWAY_LOG_LEVEL="warning",
    )
    port = free_port()
    command = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--workers", "1"]
    log = ctx.logs / "gateway-embedded.log"

    def ready() -> bool:
        return answers(port, CHAT_PATH, CHAT_BODY, {}, lambda status, _: status == 200)

    with serving(
        command,
        ready,
        cwd=REPO_ROOT,
        env=env,
        log=log,
        ready_timeout=EMBEDDED_READY_TIMEOUT_S,
    ) as proc:
        check_answer(EMBEDDED, port, {}, log)
        yield Running(
            EMBEDDED,
            f"http://{HOST}:{port}{CHAT_PATH}",
            {},
            lambda: tree_of(proc.pid),
            "`gateway serve --workers 1`, no `REDIS_URL`: SQLite ledger and in-process stats; "
            "no key (auth off on loopback); 3 endpoints on the stub",
        )


@contextlib.contextmanager
def running_everything_on(ctx: Context) -> Iterator[Running]:
    """The overhead harness's gateway: fresh database and Redis prefix, removed afterwards."""
    workdir = ctx.workdir / "everything-on"
    workdir.mkdir(parents=True, exist_ok=True)
    with fresh_backing(ctx.postgres, ctx.redis) as backing:
        stack = prepare_stack(backing, ctx.upstream_port, workdir)
        port = free_port()
        log = ctx.logs / "gateway-everything-on.log"
        with running_gateway(
            stack,
            EVERYTHING_ON,
            port,
            workers=1,
            server="uvicorn",
            log=log,
            body=CHAT_BODY,
            tag="peers",
        ) as gateway:
            check_answer(EVERYTHING_ON, port, stack.auth_headers, log)
            yield Running(
                EVERYTHING_ON,
                gateway.url,
                stack.auth_headers,
                gateway.pids,
                "`gateway serve --workers 1` with a key that has limits (the Redis limiter on "
                "every request), stats in Redis, the ledger through the Redis stream into "
                "Postgres by its writer process; 3 endpoints on the stub",
                extra_pids=lambda: pids_named(BACKING),
            )
