"""Report rows as the API and CLI print them: JSON (money as exact decimal strings), CSV with
the same columns, OpenRouter's activity items. Pure formatting.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from gateway.json_encoding import json_number
from gateway.ledger.daily_rollup import DailySums
from gateway.reports.query import ReportRow

MEASURES = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "gross_cost",
    "cache_discount",
    "cost",
)
MONEY = frozenset({"gross_cost", "cache_discount", "cost"})


def money(value: Decimal) -> str:
    """An exact decimal as plain text: `0.00000075`, `12`, never `7.5E-7`."""
    return format(value.normalize(), "f")


def measures(sums: DailySums) -> dict[str, Any]:
    """The measure columns; `gross_cost` is what the tokens cost before prompt caching."""
    return {
        "requests": sums.requests,
        "prompt_tokens": sums.prompt_tokens,
        "completion_tokens": sums.completion_tokens,
        "cached_tokens": sums.cached_tokens,
        "cache_write_tokens": sums.cache_write_tokens,
        "reasoning_tokens": sums.reasoning_tokens,
        "gross_cost": sums.cost + sums.cache_discount,
        "cache_discount": sums.cache_discount,
        "cost": sums.cost,
    }


def group_columns(groups: Sequence[str]) -> list[str]:
    """The group columns of a report: `key` is followed by the key's name."""
    columns: list[str] = []
    for name in groups:
        columns.append(name)
        if name == "key":
            columns.append("key_name")
    return columns


def _group_value(name: str, value: Any) -> Any:
    if isinstance(value, date):
        return value.strftime("%Y-%m") if name == "month" else value.isoformat()
    return value


def record(row: ReportRow, groups: Sequence[str], names: dict[str, str]) -> dict[str, Any]:
    """One report line with Python values (Decimal money, str dates)."""
    out: dict[str, Any] = {}
    for name in groups:
        out[name] = _group_value(name, row.group[name])
        if name == "key":
            out["key_name"] = names.get(row.group[name] or "")
    return out | measures(row.sums)


def _json_value(name: str, value: Any) -> Any:
    return money(value) if name in MONEY else value


def json_record(line: dict[str, Any]) -> dict[str, Any]:
    return {name: _json_value(name, value) for name, value in line.items()}


def billing_body(
    lines: Sequence[dict[str, Any]], totals: DailySums, meta: dict[str, Any]
) -> dict[str, Any]:
    return {
        "data": [json_record(line) for line in lines],
        "totals": json_record(measures(totals)),
        **meta,
    }


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value: str) -> str:
    """Text a client chose (an app's `X-Title`) can't become a spreadsheet formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _csv_cell(name: str, value: Any) -> Any:
    if value is None:
        return ""
    if name in MONEY:
        return money(value)
    return _csv_text(value) if isinstance(value, str) else value


def to_csv(lines: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A header row, then one row per line; money as exact decimal text, none as empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for line in lines:
        writer.writerow([_csv_cell(c, line[c]) for c in columns])
    return out.getvalue()


def activity_item(row: ReportRow) -> dict[str, Any]:
    """One OpenRouter activity item (a day, model and endpoint); money as exact JSON numbers."""
    sums, group = row.sums, row.group
    return {
        "date": group["day"].isoformat(),
        "model": group["model"],
        "model_permaslug": group["model"],
        "endpoint_id": group["endpoint_id"],
        "provider_name": group["provider"],
        "usage": json_number(sums.cost),
        "byok_usage_inference": json_number(Decimal(0)),
        "requests": sums.requests,
        "prompt_tokens": sums.prompt_tokens,
        "completion_tokens": sums.completion_tokens,
        "reasoning_tokens": sums.reasoning_tokens,
        "cached_tokens": sums.cached_tokens,
        "cache_discount": json_number(sums.cache_discount),
    }
