"""Database URLs: which dialect, and making a SQLite file's folder exist before first use."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url


def is_sqlite(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "sqlite"


def prepare_sqlite_path(database_url: str) -> None:
    """Create the folder of a file-backed SQLite database (e.g. `./var/`); else do nothing."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
