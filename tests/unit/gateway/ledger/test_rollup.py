"""The hourly rollup adds exactly: its totals equal the sum of the rows, whatever the grouping."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from gateway.ledger.rollup import RollupKey, rollup
from gateway.ledger.rows import rows_of
from providers.pricing import Cost
from providers.usage import Usage
from tests.unit.gateway.ledger.factories import NOW, make_event

money = st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=12)
generation = st.tuples(
    money, money, st.integers(0, 3), st.sampled_from(["groq", "together"]), st.integers(0, 5000)
)


@given(st.lists(generation, max_size=40))
def test_totals_equal_the_sum_of_rows(items: list[tuple[Decimal, Decimal, int, str, int]]) -> None:
    rows = [
        rows_of(
            make_event(
                n,
                created_at=NOW + timedelta(minutes=37 * hours),
                provider=provider,
                cost=Cost(prompt, completion, Decimal(0), Decimal(0)),
                usage=Usage(prompt_tokens=tokens, completion_tokens=1),
            )
        ).generation
        for n, (prompt, completion, hours, provider, tokens) in enumerate(items)
    ]
    totals = rollup(rows)
    assert sum((s.cost for s in totals.values()), Decimal(0)) == sum(
        (r["cost"] for r in rows), Decimal(0)
    )
    assert sum(s.requests for s in totals.values()) == len(rows)
    assert sum(s.prompt_tokens for s in totals.values()) == sum(r["prompt_tokens"] for r in rows)
    assert list(totals) == sorted(totals)  # a fixed lock order for the upsert


def test_key_is_the_hour_key_model_provider_app() -> None:
    row = rows_of(make_event(app_title="My App", api_key_id=None)).generation
    [key] = rollup([row])
    assert key == RollupKey(
        hour=NOW.replace(minute=0, second=0, microsecond=0),
        api_key_id="",
        model="openai/gpt-oss-20b",
        provider="groq",
        app="My App",
    )


def test_errors_and_cancellations_are_counted() -> None:
    rows = [
        rows_of(make_event(0, status="error")).generation,
        rows_of(make_event(1, status="cancelled", cancelled=True)).generation,
        rows_of(make_event(2)).generation,
    ]
    [sums] = rollup(rows).values()
    assert (sums.requests, sums.errors, sums.cancelled, sums.attempts) == (3, 1, 1, 6)
    assert sums.cached_tokens == 3 * 1024
