"""The Postgres batch statement is built from the models and the Python rollup's columns."""

from __future__ import annotations

import json
from decimal import Decimal

import asyncpg  # type: ignore[import-untyped]
import pytest

from gateway.db.models import attempts, generations
from gateway.ledger.postgres_batch import (
    ROLLUP_INPUTS,
    ROLLUP_KEYS,
    ROLLUP_SUMS,
    STATEMENT,
    _translated,
    arguments,
)
from gateway.ledger.rollup import KEY_COLUMNS, SUM_COLUMNS
from gateway.ledger.rows import rows_of
from gateway.ledger.writer import is_transient
from tests.unit.gateway.ledger.factories import make_event


def test_the_sql_rollup_has_the_python_rollups_columns() -> None:
    assert tuple(ROLLUP_KEYS) == KEY_COLUMNS
    assert tuple(ROLLUP_SUMS) == SUM_COLUMNS
    assert set(ROLLUP_INPUTS) <= set(generations.c.keys())


def test_every_column_of_both_tables_is_inserted() -> None:
    for table in (generations, attempts):
        assert f"INSERT INTO {table.name} ({', '.join(table.c.keys())})" in STATEMENT


def test_money_travels_as_exact_decimal_text() -> None:
    event = make_event()
    generation_json, attempt_json = arguments([rows_of(event)])
    [row] = json.loads(generation_json)
    assert Decimal(row["cost"]) == event.cost.total and isinstance(row["cost"], str)
    assert row["created_at"].endswith("Z")  # aware UTC, RFC 3339
    assert [a["seq"] for a in json.loads(attempt_json)] == [0, 1]


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (asyncpg.ProgramLimitExceededError, False),  # 54000: index row size exceeds maximum
        (asyncpg.UntranslatableCharacterError, False),  # 22P05: \u0000 in JSONB
        (asyncpg.CheckViolationError, False),
        (asyncpg.NumericValueOutOfRangeError, False),
        (asyncpg.AdminShutdownError, True),  # 57P01
        (asyncpg.CannotConnectNowError, True),  # 57P03
        (asyncpg.ConnectionFailureError, True),  # 08006
        (asyncpg.DeadlockDetectedError, True),  # 40P01
        (asyncpg.DiskFullError, True),  # 53100
        (asyncpg.LockNotAvailableError, True),  # 55P03
    ],
)
def test_sqlstates_sort_into_transient_and_row_level(
    error: type[Exception], transient: bool
) -> None:
    translated = _translated(error("refused"))
    assert is_transient(translated) is transient
