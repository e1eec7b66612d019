"""Report formatting: money as exact plain decimals, CSV and JSON with the same columns."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest

from gateway.ledger.daily_rollup import DailySums
from gateway.reports.billing import GroupByError, parse_group_by
from gateway.reports.query import ReportRow, with_price_versions
from gateway.reports.views import MEASURES, group_columns, json_record, money, record, to_csv


def test_money_is_plain_exact_text() -> None:
    assert money(Decimal("0.000000750000")) == "0.00000075"
    assert money(Decimal("1E+2")) == "100"
    assert money(Decimal("0E-12")) == "0"
    assert money(Decimal("-0.000000000001")) == "-0.000000000001"


def test_group_by_is_checked_and_prices_get_their_own_lines() -> None:
    assert parse_group_by(None) == ("model", "provider")
    assert parse_group_by(" key, day ,key") == ("key", "day")
    for bad in ("key,cost", "day,month", "price_version"):
        with pytest.raises(GroupByError):
            parse_group_by(bad)
    assert with_price_versions(("key", "provider")) == ("key", "provider", "price_version")
    assert with_price_versions(("key", "model")) == ("key", "model")


def test_a_line_in_json_and_csv_says_the_same() -> None:
    groups = ("key", "month", "provider", "price_version")
    sums = DailySums(
        requests=3,
        prompt_tokens=10,
        cached_tokens=4,
        cost=Decimal("0.000001000001"),
        cache_discount=Decimal("-0.000000000001"),
    )
    row = ReportRow(
        {"key": None, "month": date(2026, 2, 1), "provider": "groq", "price_version": "abc"}, sums
    )
    line = record(row, groups, {})
    assert line["month"] == "2026-02" and line["key"] is None and line["key_name"] is None
    assert line["gross_cost"] == Decimal("0.000001")
    columns = [*group_columns(groups), *MEASURES]
    [parsed] = list(csv.DictReader(io.StringIO(to_csv([line], columns))))
    as_json = json_record(line)
    assert list(parsed) == list(as_json) == columns
    assert {k: v or None for k, v in parsed.items()} == {
        k: None if v is None else str(v) for k, v in as_json.items()
    }


def test_client_chosen_text_never_becomes_a_spreadsheet_formula() -> None:
    groups = ("app",)
    columns = [*group_columns(groups), *MEASURES]
    sums = DailySums(requests=1, cost=Decimal("0.5"), cache_discount=Decimal("-0.1"))
    lines = [
        record(ReportRow({"app": title}, sums), groups, {})
        for title in ('=HYPERLINK("http://x")', "+1", "@SUM(A1)", "-2", "plain")
    ]
    parsed = list(csv.DictReader(io.StringIO(to_csv(lines, columns))))
    assert [row["app"] for row in parsed] == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'@SUM(A1)",
        "'-2",
        "plain",
    ]
    assert {row["cache_discount"] for row in parsed} == {"-0.1"}  # numbers stay numbers
