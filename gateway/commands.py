"""What the shell commands (`gateway keys ...`, `gateway report ...`) share: the one-line user
error, how it is reported (stderr, exit status 1) and the `--database-url` default.

Not the commands themselves (`gateway.keys.commands`, `gateway.reports.commands`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from gateway.settings import DatabaseSettings

Command = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A user mistake the command reports in one line (exit status 1)."""


def reported(group: str, command: Command) -> Command:
    """`command`, with a `CommandError` written as `gateway <group>: <message>` (status 1)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except CommandError as exc:
            sys.stderr.write(f"gateway {group}: {exc}\n")
            return 1

    return run


def database_url(args: argparse.Namespace) -> str:
    """`--database-url`, else DATABASE_URL (or its default)."""
    url: str = args.database_url or DatabaseSettings().database_url
    return url
