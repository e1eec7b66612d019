"""`gateway report billing` and `gateway report statement`: the billing figures from a shell,
read from the database directly (DATABASE_URL), the same figures the HTTP API gives.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from sqlalchemy import pool
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.commands import CommandError, database_url, reported
from gateway.db.urls import is_sqlite, prepare_sqlite_path
from gateway.reports.billing import GroupByError, billing_report, parse_group_by
from gateway.reports.periods import PeriodError, parse_month, parse_period
from gateway.reports.query import ALL_KEYS
from gateway.reports.statement import FORMATS as STATEMENT_FORMATS
from gateway.reports.statement import build_statement
from gateway.reports.views import MONEY, measures, money

_T = TypeVar("_T")
_encode = msgspec.json.Encoder().encode


async def _with_engine(database_url: str, action: Callable[[AsyncEngine], Awaitable[_T]]) -> _T:
    prepare_sqlite_path(database_url)
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    try:
        if is_sqlite(database_url):
            from gateway.ledger.migrate import upgrade_engine

            await upgrade_engine(engine)  # the embedded default keeps its schema current itself
        return await action(engine)
    except SQLAlchemyError as exc:
        raise CommandError(
            f"database error ({type(exc).__name__}); is it migrated? run `gateway migrate`"
        ) from exc
    finally:
        await engine.dispose()


def table(lines: Sequence[dict[str, Any]], columns: Sequence[str], totals: dict[str, Any]) -> str:
    """Aligned columns for a terminal: text left, numbers right, a total line at the bottom."""

    def text(name: str, value: Any) -> str:
        if value is None:
            return "-"
        return money(value) if name in MONEY else str(value)

    rows = [[text(c, line.get(c)) for c in columns] for line in lines]
    total = [text(c, totals[c]) if c in totals else "" for c in columns]
    total[0] = "total"
    widths = [max(len(c), *(len(r[i]) for r in [*rows, total])) for i, c in enumerate(columns)]
    numeric = [c in totals for c in columns]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if right else cell.ljust(w)
            for cell, w, right in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(list(columns)), rule, *map(fmt, rows), rule, fmt(total)]) + "\n"


def _billing(args: argparse.Namespace) -> int:
    try:
        period = parse_period(args.start, args.end, datetime.now(UTC).date())
        group_by = parse_group_by(args.group_by)
    except (PeriodError, GroupByError) as exc:
        raise CommandError(str(exc).replace("`from`", "--from").replace("`to`", "--to")) from exc
    key = args.key or ALL_KEYS
    report = asyncio.run(
        _with_engine(
            database_url(args), lambda engine: billing_report(engine, period, group_by, key)
        )
    )
    if args.format == "json":
        out = _encode(report.body()).decode() + "\n"
    elif args.format == "csv":
        out = report.csv()
    else:
        out = table(report.lines, report.columns, measures(report.totals))
    _emit(out, args.output)
    return 0


def _statement(args: argparse.Namespace) -> int:
    try:
        period = parse_month(args.month)
    except PeriodError as exc:
        raise CommandError(str(exc).replace("`month`", "--month")) from exc
    now = datetime.now(UTC)
    statement = asyncio.run(
        _with_engine(
            database_url(args), lambda engine: build_statement(engine, args.key, period, now)
        )
    )
    if statement.key_name is None and not statement.lines:
        raise CommandError(f"no key {args.key!r} and no usage recorded for it in {args.month}")
    rendered = {"json": statement.json() + "\n", "csv": statement.csv(), "html": statement.html()}
    _emit(rendered[args.format], args.output)
    return 0


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def add_subcommands(report: argparse.ArgumentParser) -> None:
    """`gateway report <billing|statement>`."""
    sub = report.add_subparsers(dest="report_command", required=True)

    billing = sub.add_parser(
        "billing", help="exact spend per key, app, model, provider, day or month"
    )
    billing.add_argument(
        "--from",
        dest="start",
        metavar="YYYY-MM-DD",
        help="first UTC day (default: this month's first)",
    )
    billing.add_argument(
        "--to",
        dest="end",
        metavar="YYYY-MM-DD",
        help="UTC day after the last: exclusive (default: next month's first)",
    )
    billing.add_argument(
        "--group-by",
        default=None,
        help="comma list of key,app,model,provider,day,month (default: model,provider); "
        "a line per price version wherever provider is grouped",
    )
    billing.add_argument("--format", choices=("table", "csv", "json"), default="table")
    billing.add_argument("--key", default=None, help="only this key id's usage")
    billing.add_argument("--output", default=None, help="write to this file, not stdout")
    billing.add_argument("--database-url", default=None, help="default: DATABASE_URL")
    billing.set_defaults(func=reported("report", _billing))

    statement = sub.add_parser(
        "statement", help="one key's month: a line per day/model/provider/price, totals, caching"
    )
    statement.add_argument("--key", required=True, help="the key id")
    statement.add_argument("--month", required=True, metavar="YYYY-MM", help="the UTC month")
    statement.add_argument("--format", choices=STATEMENT_FORMATS, default="html")
    statement.add_argument("--output", default=None, help="write to this file, not stdout")
    statement.add_argument("--database-url", default=None, help="default: DATABASE_URL")
    statement.set_defaults(func=reported("report", _statement))
