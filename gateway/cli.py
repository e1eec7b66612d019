"""The `gateway` command: serve, ledger-writer, ledger, migrate, keys, report, simulate, demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import gateway.keys.commands as keys_commands
import gateway.ledger.commands as ledger_commands
import gateway.reports.commands as report_commands
import providers.simulator.cli as simulator_cli
from providers.catalog import CatalogError, load_catalog

if TYPE_CHECKING:
    from gateway.settings import Settings

Command = Callable[[argparse.Namespace], int]
WRITER_STOP_GRACE_S = 10.0  # beyond the ledger drain timeout, before the writer is killed


def _serve(args: argparse.Namespace) -> int:
    # Workers are separate processes: they read their settings from the environment.
    for flag, env in (
        ("host", "GATEWAY_HOST"),
        ("port", "GATEWAY_PORT"),
        ("workers", "GATEWAY_WORKERS"),
        ("catalog", "GATEWAY_CATALOG"),
    ):
        value = getattr(args, flag)
        if value is not None:
            os.environ[env] = str(value)
    from gateway.logs import configure_logging
    from gateway.settings import Settings

    settings = Settings()
    # Checked here, before migrations and workers: a bad catalog is one line and exit 2, not a
    # traceback from every worker's lifespan.
    try:
        load_catalog(settings.catalog.catalog)
    except CatalogError as exc:
        sys.stderr.write("gateway serve: " + " ".join(str(exc).splitlines()) + "\n")
        return 2
    server = settings.server
    configure_logging(server.log_level)
    if args.simulate and server.workers != 1:
        sys.stderr.write("gateway serve: --simulate runs one worker (drop --workers)\n")
        return 2
    if args.migrate:
        from gateway.ledger.migrate import upgrade_to_head

        upgrade_to_head(settings.database.database_url)
    if args.simulate:
        import uvloop

        from gateway.simulated import serve_simulated

        settings.ledger.writer = "worker"  # one process: the fleet, the gateway, its writer
        uvloop.run(serve_simulated(settings))
        return 0
    if server.workers > 1 and not settings.redis.redis_url:
        reason = _unshared_limits(settings)
        if reason is not None:
            sys.stderr.write(f"gateway serve: {reason}\n")
            return 2
    _print_endpoints(settings)
    separate = args.ledger_writer_process
    if separate and not settings.redis.redis_url:
        sys.stderr.write("gateway serve: --ledger-writer-process needs REDIS_URL\n")
        return 2
    if separate is None:
        separate = settings.ledger.writer == "process" and bool(settings.redis.redis_url)
    if not separate:
        if args.ledger_writer_process is False:
            os.environ["GATEWAY_LEDGER_WRITER"] = "worker"  # as the flag's help says
        _run_uvicorn(settings)
        return 0
    from gateway.ledger.process import writer_process

    os.environ["GATEWAY_LEDGER_WRITER"] = "external"  # the workers only queue
    with writer_process(settings.ledger.drain_timeout_s + WRITER_STOP_GRACE_S):
        _run_uvicorn(settings)
    return 0


def _print_endpoints(settings: Settings) -> None:
    import asyncio

    from gateway.startup import endpoint_table

    table = asyncio.run(endpoint_table(load_catalog(settings.catalog.catalog)))
    sys.stdout.write(table + "\n")
    sys.stdout.flush()


def _unshared_limits(settings: Settings) -> str | None:
    """Why N workers without Redis can't enforce the stored keys' limits, if they can't."""
    from gateway.keys.sharing import limited_key_names, unshared_limits_reason

    limited = asyncio.run(limited_key_names(settings.database.database_url))
    return unshared_limits_reason(settings.server.workers, settings.redis.redis_url, limited)


def _run_uvicorn(settings: Settings) -> None:
    import uvicorn

    from gateway.metrics.multiproc import shared_metrics_dir

    server = settings.server
    with shared_metrics_dir(server.workers):  # every worker's Prometheus samples are summed
        uvicorn.run(
            "gateway.app:app_from_env",
            factory=True,
            host=server.host,
            port=server.port,
            workers=server.workers,
            loop="uvloop",
            http="gateway.server_protocol:BoundedHttpToolsProtocol",  # httptools, with limits
            log_level=server.log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=server.shutdown_timeout_s,
        )


def _ledger_writer(args: argparse.Namespace) -> int:
    import uvloop

    from gateway.ledger.process import run_writer
    from gateway.logs import configure_logging
    from gateway.settings import Settings

    settings = Settings()
    configure_logging(settings.server.log_level)
    if not settings.redis.redis_url:
        sys.stderr.write("gateway ledger-writer: set REDIS_URL (it reads the ledger stream)\n")
        return 2
    return uvloop.run(
        run_writer(settings, exit_with_parent=args.exit_with_parent, parent_pid=args.parent_pid)
    )


def _migrate(args: argparse.Namespace) -> int:
    from gateway.ledger.migrate import upgrade_to_head
    from gateway.settings import DatabaseSettings

    url = args.database_url or DatabaseSettings().database_url
    upgrade_to_head(url)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import main as demo_main

    return demo_main(args.requests)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (env GATEWAY_HOST/PORT/WORKERS too)")
    serve.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default 8000)")
    serve.add_argument("--workers", type=int, default=None, help="worker processes (default 1)")
    serve.add_argument("--catalog", default=None, help="catalog TOML (default: the shipped one)")
    serve.add_argument(
        "--no-migrate",
        dest="migrate",
        action="store_false",
        help="don't apply database migrations before starting",
    )
    serve.add_argument(
        "--ledger-writer-process",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the ledger from one process of its own next to the workers (the default "
        "with Redis, GATEWAY_LEDGER_WRITER=process), or --no-...: from every worker",
    )
    serve.add_argument(
        "--simulate",
        action="store_true",
        help="also run the simulated providers (in this process, on a free loopback port) and "
        "route the catalog's endpoints to them: answers without API keys or llama-server",
    )
    serve.set_defaults(func=_serve)

    writer = sub.add_parser(
        "ledger-writer", help="write the Redis ledger stream to the database (a process of its own)"
    )
    writer.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop (draining) when the process that started it is gone (as `serve` starts it)",
    )
    writer.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="with --exit-with-parent: the process to outlive no longer than the drain timeout "
        "(default: the parent when the writer starts; `serve` passes its own pid)",
    )
    writer.set_defaults(func=_ledger_writer)

    ledger = sub.add_parser("ledger", help="ledger dead letters: list and replay")
    ledger_commands.add_subcommands(ledger)

    migrate = sub.add_parser("migrate", help="apply database migrations (Alembic) to head")
    migrate.add_argument("--database-url", default=None, help="default: DATABASE_URL")
    migrate.set_defaults(func=_migrate)

    keys = sub.add_parser("keys", help="create, list, disable and delete API keys")
    keys_commands.add_subcommands(keys)

    report = sub.add_parser("report", help="billing reports and per-key monthly statements")
    report_commands.add_subcommands(report)

    simulate = sub.add_parser("simulate", help="run a fleet of simulated providers")
    simulator_cli.add_arguments(simulate)
    simulate.set_defaults(func=simulator_cli.run)

    demo = sub.add_parser("demo", help="simulated fleet + gateway + a burst per routing mode")
    demo.add_argument("--requests", type=int, default=8, help="requests per mode (default 8)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
