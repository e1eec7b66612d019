"""`gateway ledger dead-letters list | replay`: see and replay the events the database refused.

Reads and writes the database directly (DATABASE_URL); a replayed event goes through today's
bounds (`gateway.ledger.rows`) and lands idempotently, as the writer would land it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

import msgspec
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.ledger.dead_letters import DeadLetters
from gateway.ledger.store import LedgerStore
from gateway.ledger.upkeep import upkeep_for
from gateway.settings import DatabaseSettings, LedgerSettings

_encode = msgspec.json.encode


async def _list(args: argparse.Namespace) -> int:
    engine = create_async_engine(args.database_url, poolclass=pool.NullPool)
    try:
        letters = await DeadLetters(engine).list(args.limit)
    finally:
        await engine.dispose()
    if args.json:
        rows = [
            {
                "id": d.id,
                "generation_id": d.generation_id,
                "entry_id": d.entry_id,
                "created_at": d.created_at.isoformat(),
                "reason": d.reason,
            }
            for d in letters
        ]
        sys.stdout.write(_encode(rows).decode() + "\n")
        return 0
    for d in letters:
        reason = " ".join(d.reason.split())[:200]
        sys.stdout.write(f"{d.id}\t{d.created_at.isoformat()}\t{d.generation_id}\t{reason}\n")
    if not letters:
        sys.stdout.write("no dead letters\n")
    return 0


async def _replay(args: argparse.Namespace) -> int:
    engine = create_async_engine(args.database_url, poolclass=pool.NullPool)
    try:
        store = LedgerStore(engine, upkeep_for(engine, LedgerSettings().retention_days))
        result = await DeadLetters(engine).replay(store, args.ids or None)
    finally:
        await engine.dispose()
    for letter_id, reason in result.failed.items():
        sys.stderr.write(f"dead letter {letter_id} still refused: {reason[:300]}\n")
    sys.stdout.write(f"replayed {len(result.written)}, still refused {len(result.failed)}\n")
    return 1 if result.failed else 0


def _sync(
    func: Callable[[argparse.Namespace], Awaitable[int]],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        args.database_url = args.database_url or DatabaseSettings().database_url

        async def main() -> int:
            return await func(args)

        return asyncio.run(main())

    return run


def add_subcommands(ledger: argparse.ArgumentParser) -> None:
    """`gateway ledger dead-letters <list|replay>`."""
    groups = ledger.add_subparsers(dest="ledger_command", required=True)
    dead = groups.add_parser("dead-letters", help="events the database refused")
    sub = dead.add_subparsers(dest="dead_letters_command", required=True)
    listing = sub.add_parser("list", help="list dead letters, oldest first")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_sync(_list))
    replay = sub.add_parser("replay", help="write dead letters to the ledger (all, or by id)")
    replay.add_argument("ids", nargs="*", type=int, help="dead letter ids (default: all)")
    replay.set_defaults(func=_sync(_replay))
    for parser in (listing, replay):
        parser.add_argument("--database-url", default=None, help="default: DATABASE_URL")
