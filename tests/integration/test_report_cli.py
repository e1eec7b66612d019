"""`gateway report billing` and `gateway report statement` as an operator runs them (a child
process on DATABASE_URL), on Postgres and on the embedded SQLite default: the same exact figures
as the ledger's generations, each price version on its own line, statements in three formats."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.keys.schemas import KeySpec
from gateway.keys.store import KeyStore
from gateway.ledger.events import GenerationEvent
from gateway.ledger.migrate import upgrade_engine
from gateway.ledger.rows import rows_of
from gateway.ledger.store import LedgerStore
from gateway.ledger.upkeep import upkeep_for
from gateway.reports.prices import register_prices
from providers.catalog import parse_catalog
from providers.price_version import price_version
from providers.pricing import cost_of
from providers.usage import Usage
from tests.unit.gateway.ledger.factories import make_event

MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)
PRICE_CHANGE = datetime(2026, 10, 17, 12, tzinfo=UTC)


def catalog_text(groq_prompt: str) -> dict[str, Any]:
    endpoint = {
        "model": "openai/gpt-oss-20b",
        "base_url": "http://127.0.0.1:9/v1",
        "upstream_model": "gpt-oss-20b",
        "context_length": 131072,
    }
    return {
        "models": {"openai/gpt-oss-20b": {"name": "gpt-oss-20b", "context_length": 131072}},
        "endpoints": [
            endpoint
            | {
                "provider": "groq",
                "price": {"prompt": groq_prompt, "completion": "0.30", "cache_read": "0.0375"},
            },
            endpoint | {"provider": "local", "price": {"prompt": "0.02", "completion": "0.08"}},
        ],
    }


def month_of_events(key_ids: Sequence[str]) -> list[GenerationEvent]:
    """A month of generations for two keys: groq's price changes on the 17th at noon; some
    cancelled (billed for what they used) and failed; the month's last microsecond too."""
    before = parse_catalog(catalog_text("0.075"), {})
    after = parse_catalog(catalog_text("0.1"), {})
    events = []
    moments = [MONTH_START + timedelta(hours=7 * n, minutes=n) for n in range(100)]
    moments.append(datetime(2026, 10, 31, 23, 59, 59, 999999, tzinfo=UTC))
    for n, moment in enumerate(moments):
        catalog = after if moment >= PRICE_CHANGE else before
        endpoint = catalog.endpoints[n % 2]
        usage = Usage(
            prompt_tokens=1000 + 37 * n,
            completion_tokens=50 + n,
            cached_tokens=(n % 3) * 256,
            reasoning_tokens=n % 7,
        )
        status = "cancelled" if n % 11 == 0 else "error" if n % 13 == 0 else "ok"
        event = make_event(
            n,
            id=f"gen-{int(moment.timestamp())}-{n:08x}",
            created_at=moment,
            api_key_id=key_ids[n % 3 % 2],
            app_title=f"app-{n % 2}",
            provider=endpoint.provider,
            endpoint_id=endpoint.id,
            price_version=price_version(endpoint),
            usage=usage,
            cost=cost_of(usage, endpoint.price),
            status=status,
            cancelled=status == "cancelled",
        )
        events.append(event)
    return events


async def seed(engine: AsyncEngine) -> tuple[list[str], list[GenerationEvent]]:
    store = KeyStore(engine)
    keys = [(await store.create(KeySpec(name=name)))[0].id for name in ("acme", "globex")]
    for prices in ("0.075", "0.1"):
        await register_prices(engine, parse_catalog(catalog_text(prices), {}))
    events = month_of_events(keys)
    ledger = LedgerStore(engine, upkeep_for(engine, retention_days=3650))
    for start in range(0, len(events), 40):  # several batches: the rollup adds up across them
        batch = events[start : start + 40]
        assert await ledger.write([rows_of(e) for e in batch]) == len(batch)
    return keys, events


def run_cli(database_url: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "report", *args, "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def cost(events: Sequence[GenerationEvent]) -> Decimal:
    return sum((e.cost.total for e in events), Decimal(0))


def discount(events: Sequence[GenerationEvent]) -> Decimal:
    return sum((e.cost.cache_discount for e in events), Decimal(0))


def check_reports(database_url: str, keys: list[str], events: list[GenerationEvent]) -> None:
    month = ("--from", "2026-10-01", "--to", "2026-11-01")
    for group_by in ("key", "app", "model,provider", "day", "month", "key,app,provider,day"):
        out = json.loads(
            run_cli(database_url, "billing", *month, "--group-by", group_by, "--format", "json")
        )
        assert Decimal(out["totals"]["cost"]) == cost(events), group_by
        assert sum(Decimal(line["cost"]) for line in out["data"]) == cost(events)
        assert Decimal(out["totals"]["cache_discount"]) == discount(events)
        assert out["totals"]["requests"] == len(events)
        assert out["totals"]["prompt_tokens"] == sum(e.usage.prompt_tokens for e in events)

    days = json.loads(
        run_cli(database_url, "billing", *month, "--group-by", "day", "--format", "json")
    )["data"]
    last = [e for e in events if e.created_at.date().isoformat() == "2026-10-31"]
    assert days[-1]["day"] == "2026-10-31" and days[-1]["requests"] == len(last) == 1
    assert [d["day"] for d in days] == sorted({e.created_at.date().isoformat() for e in events})

    # groq's two prices are two lines; local's one price is one.
    by_provider = json.loads(run_cli(database_url, "billing", *month, "--format", "json"))
    lines = by_provider["data"]
    assert sorted(line["provider"] for line in lines) == ["groq", "groq", "local"]
    for line in lines:
        billed = [e for e in events if e.price_version == line["price_version"]]
        assert Decimal(line["cost"]) == cost(billed) and line["requests"] == len(billed)

    as_csv = run_cli(database_url, "billing", *month, "--group-by", "key,day", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert sum(Decimal(r["cost"]) for r in rows) == cost(events)
    assert {r["key_name"] for r in rows} == {"acme", "globex"}

    table = run_cli(database_url, "billing", *month, "--group-by", "provider")
    assert table.splitlines()[-1].split()[0] == "total"
    assert f"{cost(events).normalize():f}" in table.splitlines()[-1]

    one_key = [e for e in events if e.api_key_id == keys[0]]
    only = json.loads(
        run_cli(
            database_url,
            "billing",
            *month,
            "--key",
            keys[0],
            "--format",
            "json",
            "--group-by",
            "key",
        )
    )
    assert [line["key"] for line in only["data"]] == [keys[0]]
    assert Decimal(only["totals"]["cost"]) == cost(one_key)

    statement = json.loads(
        run_cli(
            database_url, "statement", "--key", keys[0], "--month", "2026-10", "--format", "json"
        )
    )
    assert statement["key"] == {"id": keys[0], "name": "acme"}
    assert statement["period"] == {
        "month": "2026-10",
        "from": "2026-10-01",
        "to": "2026-11-01",
        "timezone": "UTC",
    }
    assert Decimal(statement["totals"]["cost"]) == cost(one_key)
    assert Decimal(statement["prompt_caching"]["saved"]) == discount(one_key) > 0
    assert sum(Decimal(line["cost"]) for line in statement["lines"]) == cost(one_key)
    groq_prices = {
        line["price_prompt"] for line in statement["lines"] if line["provider"] == "groq"
    }
    assert groq_prices == {"0.075", "0.1"}
    last_day = max(e.created_at for e in one_key).date().isoformat()
    assert max(line["day"] for line in statement["lines"]) == last_day

    statement_csv = list(
        csv.DictReader(
            io.StringIO(
                run_cli(
                    database_url,
                    "statement",
                    "--key",
                    keys[0],
                    "--month",
                    "2026-10",
                    "--format",
                    "csv",
                )
            )
        )
    )
    assert statement_csv[-1]["day"] == "total"
    assert Decimal(statement_csv[-1]["cost"]) == cost(one_key)
    assert sum(Decimal(r["cost"]) for r in statement_csv[:-1]) == cost(one_key)

    page = run_cli(database_url, "statement", "--key", keys[0], "--month", "2026-10")
    assert page.startswith("<!doctype html>") and "@media print" in page
    assert f"USD {cost(one_key).normalize():f}" in page and "acme" in page


async def test_report_commands_on_postgres(engine: AsyncEngine, pg_database: str) -> None:
    keys, events = await seed(engine)
    check_reports(pg_database, keys, events)


async def test_report_commands_on_the_embedded_sqlite_default(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}"
    engine = create_async_engine(url)
    try:
        await upgrade_engine(engine)
        keys, events = await seed(engine)
    finally:
        await engine.dispose()
    check_reports(url, keys, events)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("billing", "--from", "2026-10-05", "--to", "2026-10-01"), "--to"),
        (("billing", "--group-by", "key,price"), "group_by"),
        (("statement", "--key", "k", "--month", "2026-13"), "--month"),
        (("statement", "--key", "no-such-key", "--month", "2026-10"), "no key"),
    ],
)
def test_report_commands_refuse_bad_input_in_one_line(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}"
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "report", *args, "--database-url", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("gateway report: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
