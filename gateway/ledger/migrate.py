"""Apply the Alembic migrations in the repository's `migrations/` folder, from any cwd.

The Alembic config is built here, not read from an ini file; nothing else changes the schema.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.db.urls import prepare_sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("gateway.ledger.migrate")
# Alembic logs INFO chatter on import (a line per plugin) and on every run (context impl); the
# gateway logs its own "migrated" line instead. Its warnings and errors still show. Alembic is
# imported in the functions below so that this runs first.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at `migrations/` (a source checkout or an editable install)."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise RuntimeError(f"Alembic migrations not found at {MIGRATIONS_DIR}")
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


async def upgrade_engine(engine: AsyncEngine) -> None:
    """Bring the database behind `engine` to the newest revision."""
    if engine.dialect.name == "sqlite":
        async with engine.connect() as connection:
            # WAL lets the generation API read while the ledger writer writes.
            await connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
    log.info("database migrated to head", extra={"backend": engine.dialect.name})


async def upgrade_to_head_async(database_url: str) -> None:
    """Bring the database at `database_url` to the newest revision (creating a SQLite file)."""
    prepare_sqlite_path(database_url)
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    try:
        await upgrade_engine(engine)
    finally:
        await engine.dispose()


def upgrade_to_head(database_url: str) -> None:
    """`upgrade_to_head_async` for synchronous callers (the CLI, before the server starts)."""
    asyncio.run(upgrade_to_head_async(database_url))
