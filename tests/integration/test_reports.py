"""Billing reports and activity on real Postgres and Redis, through the HTTP API: every figure
equals the per-generation figures of `/api/v1/generation` to the last unit, price versions stay
apart, CSV says what JSON says, and a user key never reads another key's rows."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.models import price_versions
from gateway.ledger.partitions import PostgresPartitions
from gateway.ledger.rows import rows_of
from gateway.ledger.store import LedgerStore
from providers.pricing import Cost
from providers.simulator.profile import Failures, Profile
from providers.simulator.server import Fleet, start_fleet
from providers.usage import Usage
from tests.integration.keys_fixtures import (
    admin_headers,
    bearer,
    create_key,
    decimal_json,
    key_settings,
    redis_client,
)
from tests.integration.ledger_fixtures import wait_for_ids
from tests.support.gateway import run_gateway, write_catalog
from tests.support.polling import eventually
from tests.unit.gateway.ledger.factories import make_event

MODEL = "openai/gpt-oss-20b"
SYSTEM = "Billing figures are exact and add up. " * 60  # a prompt the simulator caches
MONEY = ("gross_cost", "cache_discount", "cost")
COUNTS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
GROUPINGS = [
    "",
    *("key", "app", "model", "provider", "day", "month"),
    "key,app",
    "provider,day",
    "key,app,model,provider,day",
    "month,key,provider",
]


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet(
        {
            "alpha": Profile(completion_tokens=20, reasoning_tokens=5, cache_min_tokens=256),
            "beta": Profile(completion_tokens=11, cache_min_tokens=256),
        }
    )
    try:
        yield fleet
    finally:
        await fleet.close()


@dataclass
class Stack:
    fleet: Fleet
    engine: AsyncEngine
    database_url: str
    redis_url: str
    redis_prefix: str
    catalog: Path

    def write_catalog(self, extra_alpha_price: str = "") -> None:
        write_catalog(
            self.catalog,
            {"alpha": self.fleet.url_for("alpha"), "beta": self.fleet.url_for("beta")},
        )
        if extra_alpha_price:  # the first endpoint (alpha) gets new prices
            text = self.catalog.read_text()
            old = 'price = { prompt = "0.01", completion = "0.1", cache_read = "0.001" }'
            assert old in text
            self.catalog.write_text(text.replace(old, extra_alpha_price, 1))

    def gateway(self) -> Any:
        settings = key_settings(
            self.catalog,
            self.database_url,
            redis_url=self.redis_url,
            redis_prefix=self.redis_prefix,
        )
        return run_gateway(settings)


@pytest.fixture
async def stack(
    fleet: Fleet,
    engine: AsyncEngine,
    pg_database: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    stack = Stack(fleet, engine, pg_database, redis_url, redis_prefix, tmp_path / "catalog.toml")
    stack.write_catalog()
    async with redis_client(redis_url, redis_prefix):
        yield stack


def body(provider: str, *, stream: bool = False) -> dict[str, Any]:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "go"}]
    request: dict[str, Any] = {"model": MODEL, "messages": messages}
    request["provider"] = {"only": [provider]}
    if stream:
        request["stream"] = True
    return request


async def send(
    client: httpx.AsyncClient, secret: str, provider: str, app: str, stream: bool
) -> str:
    headers = {**bearer(secret), "X-Title": app}
    response = await client.post(
        "/v1/chat/completions", json=body(provider, stream=stream), headers=headers
    )
    assert response.status_code == 200, response.text
    return response.headers["X-Generation-Id"]


async def generation(client: httpx.AsyncClient, secret: str, generation_id: str) -> dict[str, Any]:
    response = await client.get(
        "/api/v1/generation", params={"id": generation_id}, headers=bearer(secret)
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = decimal_json(response.text)["data"]
    return data


def expected_totals(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What a report must say, summed from `/api/v1/generation` records."""
    cost = sum((Decimal(str(r["total_cost"])) for r in records), Decimal(0))
    discount = sum((Decimal(str(r["cache_discount"])) for r in records), Decimal(0))
    return {
        "requests": len(records),
        "prompt_tokens": sum(r["tokens_prompt"] for r in records),
        "completion_tokens": sum(r["tokens_completion"] for r in records),
        "cached_tokens": sum(r["native_tokens_cached"] for r in records),
        "cache_write_tokens": sum(r["native_tokens_cache_write"] for r in records),
        "reasoning_tokens": sum(r["native_tokens_reasoning"] for r in records),
        "gross_cost": cost + discount,
        "cache_discount": discount,
        "cost": cost,
    }


def figures(line: dict[str, Any]) -> dict[str, Any]:
    """A report line's measures as exact values (money must be a decimal string)."""
    out: dict[str, Any] = {name: int(line[name]) for name in COUNTS}
    for name in MONEY:
        assert isinstance(line[name], str), f"{name} is not a decimal string: {line[name]!r}"
        out[name] = Decimal(line[name])
    return out


def summed(lines: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = dict.fromkeys(COUNTS, 0) | dict.fromkeys(MONEY, Decimal(0))
    for line in lines:
        for name, value in figures(line).items():
            total[name] += value
    return total


def today() -> date:
    return datetime.now(UTC).date()


def period() -> dict[str, str]:
    return {"from": today().isoformat(), "to": (today() + timedelta(days=1)).isoformat()}


async def report(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str
) -> dict[str, Any]:
    response = await client.get(
        "/api/v1/reports/billing", params={**period(), **params}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_every_grouping_adds_up_to_the_generations_to_the_last_unit(stack: Stack) -> None:
    async with stack.gateway() as gw, httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        keys = dict([await create_key(client, name=n) for n in ("team-a", "team-b")])
        sent: dict[str, list[str]] = {key_id: [] for key_id in keys}
        for (key_id, secret), provider, app in itertools.product(
            keys.items(), ("alpha", "beta"), ("App One", "App Two")
        ):
            for stream in (False, True):  # the second one reads the cached prefix
                sent[key_id].append(await send(client, secret, provider, app, stream))
        await wait_for_ids(stack.engine, [g for ids in sent.values() for g in ids])
        records = {
            key_id: [await generation(client, keys[key_id], g) for g in ids]
            for key_id, ids in sent.items()
        }
        everything = expected_totals([r for rs in records.values() for r in rs])
        assert everything["cached_tokens"] > 0 and everything["cache_discount"] > 0
        assert everything["reasoning_tokens"] > 0

        for group_by in GROUPINGS:
            got = await report(client, admin_headers(), group_by=group_by)
            assert figures(got["totals"]) == everything, group_by
            assert summed(got["data"]) == everything, group_by
            for line in got["data"]:
                assert figures(line)["gross_cost"] == figures(line)["cost"] + Decimal(
                    line["cache_discount"]
                )

        by_key = await report(client, admin_headers(), group_by="key")
        assert {line["key"]: line["key_name"] for line in by_key["data"]} == {
            k: n for k, n in zip(keys, ("team-a", "team-b"), strict=True)
        }
        for key_id, secret in keys.items():
            own = await report(client, bearer(secret), group_by="key,app,provider")
            assert figures(own["totals"]) == expected_totals(records[key_id])
            assert {line["key"] for line in own["data"]} == {key_id}
            line = next(line for line in by_key["data"] if line["key"] == key_id)
            assert figures(line) == expected_totals(records[key_id])

        per_provider = await report(client, admin_headers(), group_by="provider")
        for line in per_provider["data"]:
            mine = [
                r for rs in records.values() for r in rs if r["provider_name"] == line["provider"]
            ]
            assert figures(line) == expected_totals(mine)
            assert line["price_version"]  # every provider line names its price version
            assert {r["price_version"] for r in mine} == {line["price_version"]}

        # Activity: OpenRouter's shape, and its usage for the day equals the report's cost.
        activity = await client.get(
            "/api/v1/activity", params={"date": today().isoformat()}, headers=admin_headers()
        )
        assert activity.status_code == 200, activity.text
        items = decimal_json(activity.text)["data"]
        assert {i["endpoint_id"] for i in items} == {f"{MODEL}@alpha", f"{MODEL}@beta"}
        for item in items:
            assert set(item) >= {
                "date",
                "model",
                "model_permaslug",
                "endpoint_id",
                "provider_name",
                "usage",
                "byok_usage_inference",
                "requests",
                "prompt_tokens",
                "completion_tokens",
                "reasoning_tokens",
            }
            assert item["date"] == today().isoformat() and item["byok_usage_inference"] == 0
        assert sum(Decimal(str(i["usage"])) for i in items) == everything["cost"]
        assert sum(i["requests"] for i in items) == everything["requests"]
        by_day = await report(client, admin_headers(), group_by="day")
        [day_line] = by_day["data"]
        assert Decimal(day_line["cost"]) == sum(Decimal(str(i["usage"])) for i in items)

        # CSV: the same columns and figures as the JSON lines, with a header row.
        grouped = "key,app,model,provider,day"
        as_json = await report(client, admin_headers(), group_by=grouped)
        response = await client.get(
            "/api/v1/reports/billing",
            params={**period(), "group_by": grouped, "format": "csv"},
            headers=admin_headers(),
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        parsed = list(csv.DictReader(io.StringIO(response.text)))
        assert list(parsed[0]) == list(as_json["data"][0])
        assert [{k: v or None for k, v in row.items()} for row in parsed] == [
            {k: None if v is None else str(v) for k, v in line.items()} for line in as_json["data"]
        ]
        assert summed(parsed) == everything


async def test_a_price_change_mid_period_reports_each_price_version(stack: Stack) -> None:
    async with stack.gateway() as gw, httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        _, secret = await create_key(client, name="finance")
        before = [await send(client, secret, "alpha", "App", s) for s in (False, True, False)]
        await wait_for_ids(stack.engine, before)
        before_records = [await generation(client, secret, g) for g in before]
    stack.write_catalog('price = { prompt = "0.02", completion = "0.3", cache_read = "0.005" }')
    async with stack.gateway() as gw, httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        after = [await send(client, secret, "alpha", "App", s) for s in (False, True)]
        await wait_for_ids(stack.engine, after)
        after_records = [await generation(client, secret, g) for g in after]
        got = await report(client, admin_headers(), group_by="model,provider")
        own = await report(client, bearer(secret), group_by="provider,day")

    assert len(got["data"]) == 2 and {line["provider"] for line in got["data"]} == {"alpha"}
    versions = {line["price_version"] for line in got["data"]}
    assert len(versions) == 2
    async with stack.engine.connect() as conn:
        registered = {
            row.price_version: row
            for row in (await conn.execute(select(price_versions))).all()
            if row.provider == "alpha"
        }
    assert versions == set(registered)
    old = next(v for v, row in registered.items() if row.prompt == Decimal("0.01"))
    new = next(v for v, row in registered.items() if row.prompt == Decimal("0.02"))
    lines = {line["price_version"]: line for line in got["data"]}
    assert figures(lines[old]) == expected_totals(before_records)
    assert figures(lines[new]) == expected_totals(after_records)
    assert registered[new].completion == Decimal("0.3")
    assert registered[new].cache_read == Decimal("0.005")
    assert figures(got["totals"]) == expected_totals(before_records + after_records)
    assert {line["price_version"] for line in own["data"]} == {old, new}


async def test_a_user_key_reads_only_its_own_rows_through_every_report_route(
    stack: Stack,
) -> None:
    async with stack.gateway() as gw, httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        mine, my_secret = await create_key(client, name="mine")
        theirs, their_secret = await create_key(client, name="theirs")
        my_ids = [await send(client, my_secret, "alpha", "Mine", False)]
        their_ids = [await send(client, their_secret, "beta", "Theirs", False) for _ in range(2)]
        await wait_for_ids(stack.engine, my_ids + their_ids)
        my_records = [await generation(client, my_secret, g) for g in my_ids]
        day = today().isoformat()

        for path, params in (
            ("/api/v1/reports/billing", {**period(), "key_id": theirs}),
            ("/api/v1/reports/billing", {**period(), "key_id": theirs, "format": "csv"}),
            ("/api/v1/activity", {"date": day, "key_id": theirs}),
            ("/api/v1/activity", {"key_id": theirs}),
            ("/api/v1/reports/statement", {"key_id": theirs}),
            ("/api/v1/reports/statement", {"key_id": theirs, "format": "html"}),
        ):
            refused = await client.get(path, params=params, headers=bearer(my_secret))
            assert refused.status_code == 403, (path, refused.text)
            assert refused.json()["error"]["metadata"] == {
                "reason": "forbidden",
                "parameter": "key_id",
            }
            assert theirs not in refused.text and "Theirs" not in refused.text
            for headers in ({}, bearer("sk-gw-not-a-key"), bearer(theirs)):
                anonymous = await client.get(path, params=params, headers=headers)
                assert anonymous.status_code == 401, (path, headers)

        for group_by in GROUPINGS:
            own = await report(client, bearer(my_secret), group_by=group_by)
            assert figures(own["totals"]) == expected_totals(my_records), group_by
            assert "Theirs" not in str(own) and theirs not in str(own)
        as_csv = await client.get(
            "/api/v1/reports/billing",
            params={**period(), "group_by": "key,app,provider", "format": "csv"},
            headers=bearer(my_secret),
        )
        assert "Theirs" not in as_csv.text and theirs not in as_csv.text
        assert [row["key"] for row in csv.DictReader(io.StringIO(as_csv.text))] == [mine]
        own_key = await report(client, bearer(my_secret), key_id=mine, group_by="key")
        assert [line["key"] for line in own_key["data"]] == [mine]
        activity = await client.get(
            "/api/v1/activity", params={"date": day}, headers=bearer(my_secret)
        )
        assert [i["provider_name"] for i in activity.json()["data"]] == ["alpha"]

        month = today().strftime("%Y-%m")
        own_statement = await client.get(
            "/api/v1/reports/statement", params={"month": month}, headers=bearer(my_secret)
        )
        assert own_statement.status_code == 200, own_statement.text
        made = own_statement.json()
        assert made["key"] == {"id": mine, "name": "mine"}
        assert Decimal(made["totals"]["cost"]) == expected_totals(my_records)["cost"]
        assert [line["provider"] for line in made["lines"]] == ["alpha"]
        page = await client.get(
            "/api/v1/reports/statement",
            params={"month": month, "format": "html", "key_id": theirs},
            headers=admin_headers(),
        )
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "theirs" in page.text and "Mine" not in page.text
        no_key = await client.get("/api/v1/reports/statement", headers=admin_headers())
        assert no_key.status_code == 400

        filtered = await report(client, admin_headers(), key_id=theirs, group_by="key,provider")
        assert [line["key"] for line in filtered["data"]] == [theirs]
        assert filtered["totals"]["requests"] == 2


async def test_partial_cancelled_and_failed_generations_count_as_the_ledger_records_them(
    stack: Stack,
) -> None:
    async with stack.gateway() as gw, httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        key_id, secret = await create_key(client, name="old-traffic")
        # Past days' generations as the writer stores them: a cancelled stream billed for what
        # it used, a failed generation, an ok one; across three UTC days and a midnight.
        midnight = datetime.combine(today() - timedelta(days=3), datetime.min.time(), UTC)
        events = [
            make_event(
                1,
                created_at=midnight - timedelta(microseconds=1),
                status="cancelled",
                cancelled=True,
                usage=Usage(prompt_tokens=500, completion_tokens=7, cached_tokens=256),
                cost=Cost(
                    Decimal("0.000001234567"),
                    Decimal("0.000000000001"),
                    Decimal(0),
                    Decimal("0.00000099"),
                ),
            ),
            make_event(
                2,
                created_at=midnight,
                status="error",
                http_status=502,
                usage=Usage(prompt_tokens=10, completion_tokens=0),
                cost=Cost(Decimal(0), Decimal(0), Decimal("0.000002"), Decimal(0)),
            ),
            make_event(3, created_at=midnight + timedelta(days=1, hours=5)),
        ]
        for i, event in enumerate(events):
            event.id = f"gen-{int(event.created_at.timestamp())}-{i:08x}"
            event.api_key_id = key_id
            event.price_version = "v-test"
        store = LedgerStore(stack.engine, PostgresPartitions(stack.engine, retention_days=90))
        assert await store.write([rows_of(e) for e in events]) == 3
        records = [await generation(client, secret, e.id) for e in events]
        assert [r["status"] for r in records] == ["cancelled", "error", "ok"]

        first = (midnight - timedelta(days=1)).date()
        got = await report(
            client,
            bearer(secret),
            **{"from": first.isoformat(), "to": today().isoformat(), "group_by": "day"},
        )
        assert figures(got["totals"]) == expected_totals(records)
        assert [line["day"] for line in got["data"]] == [
            first.isoformat(),
            midnight.date().isoformat(),
            (midnight + timedelta(days=1)).date().isoformat(),
        ]
        activity = decimal_json(
            (await client.get("/api/v1/activity", headers=bearer(secret))).text
        )["data"]  # the last 30 completed UTC days
        usage_per_day = {i["date"]: Decimal(str(i["usage"])) for i in activity}
        assert usage_per_day == {line["day"]: Decimal(line["cost"]) for line in got["data"]}
        assert usage_per_day[first.isoformat()] == Decimal("0.000001234568")


async def test_bad_report_parameters_get_a_clear_400_and_change_nothing(stack: Stack) -> None:
    async with stack.gateway() as gw, httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        for path, params, parameter in (
            ("/api/v1/reports/billing", {"group_by": "key,cost"}, "group_by"),
            ("/api/v1/reports/billing", {"group_by": "day,month"}, "group_by"),
            ("/api/v1/reports/billing", {"from": "2026-02-30", "to": "2026-03-01"}, "from"),
            ("/api/v1/reports/billing", {"from": "2026-03-02", "to": "2026-03-01"}, "to"),
            ("/api/v1/reports/billing", {"from": "2026-03-02", "to": "2026-03-02"}, "to"),
            ("/api/v1/reports/billing", {"from": "1990-01-01", "to": "2026-03-02"}, "to"),
            ("/api/v1/reports/billing", {"format": "xml"}, "format"),
            ("/api/v1/reports/billing", {"group_by": "x" * 500}, "group_by"),
            ("/api/v1/activity", {"date": "yesterday"}, "date"),
        ):
            response = await client.get(path, params=params, headers=admin_headers())
            assert response.status_code == 400, (params, response.text)
            error = response.json()["error"]
            assert error["code"] == 400
            assert error["metadata"] == {"reason": "bad_request", "parameter": parameter}
        empty = await report(client, admin_headers(), group_by="key,provider")
        assert empty["data"] == [] and figures(empty["totals"])["cost"] == 0


async def test_the_embedded_sqlite_default_reports_the_same_exact_figures(
    fleet: Fleet, tmp_path: Path
) -> None:
    catalog = write_catalog(
        tmp_path / "catalog.toml", {"alpha": fleet.url_for("alpha"), "beta": fleet.url_for("beta")}
    )
    database = f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}"
    settings = key_settings(catalog, database, redis_url=None, redis_prefix="gw:")
    async with (
        run_gateway(settings) as gw,
        httpx.AsyncClient(base_url=gw.url, timeout=30) as client,
    ):
        keys = dict([await create_key(client, name=n) for n in ("one", "two")])
        sent = {
            key_id: [
                await send(client, secret, provider, "App", stream)
                for provider in ("alpha", "beta")
                for stream in (False, True)
            ]
            for key_id, secret in keys.items()
        }

        async def landed() -> bool:
            got = await report(client, admin_headers(), group_by="")
            return bool(got["totals"]["requests"] == 8)

        await eventually(landed, timeout_s=20, what="8 generations in the SQLite rollup")
        records = {
            key_id: [await generation(client, keys[key_id], g) for g in ids]
            for key_id, ids in sent.items()
        }
        everything = expected_totals([r for rs in records.values() for r in rs])
        assert everything["cached_tokens"] > 0
        for group_by in GROUPINGS:
            got = await report(client, admin_headers(), group_by=group_by)
            assert figures(got["totals"]) == everything, group_by
            assert summed(got["data"]) == everything, group_by
        for key_id, secret in keys.items():
            own = await report(client, bearer(secret), group_by="key,provider")
            assert figures(own["totals"]) == expected_totals(records[key_id])
        activity = decimal_json(
            (
                await client.get(
                    "/api/v1/activity",
                    params={"date": today().isoformat()},
                    headers=admin_headers(),
                )
            ).text
        )["data"]
        assert sum(Decimal(str(i["usage"])) for i in activity) == everything["cost"]


async def test_streams_the_client_left_or_the_upstream_cut_are_reported_as_recorded(
    engine: AsyncEngine, pg_database: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    fleet = await start_fleet(
        {
            "slow": Profile(completion_tokens=400, tokens_per_s=40, cache_min_tokens=256),
            "cut": Profile(
                completion_tokens=50, failures=Failures(stream_cut=1.0), stream_cut_after=3
            ),
        }
    )
    catalog = write_catalog(
        tmp_path / "catalog.toml", {"slow": fleet.url_for("slow"), "cut": fleet.url_for("cut")}
    )
    settings = key_settings(catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix)
    try:
        async with (
            redis_client(redis_url, redis_prefix),
            run_gateway(settings) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=30) as client,
        ):
            _, secret = await create_key(client, name="streams")
            ids = []
            for provider in ("slow", "cut"):
                request = body(provider, stream=True)
                request["provider"]["allow_fallbacks"] = False
                async with client.stream(
                    "POST", "/v1/chat/completions", json=request, headers=bearer(secret)
                ) as answer:
                    assert answer.status_code == 200
                    ids.append(answer.headers["x-generation-id"])
                    async for line in answer.aiter_lines():
                        if line.startswith("data: ") and provider == "slow":
                            break  # walk away mid-answer
            await wait_for_ids(engine, ids)
            records = [await generation(client, secret, g) for g in ids]
            assert [r["status"] for r in records] == ["cancelled", "error"]
            got = await report(client, bearer(secret), group_by="provider")
            assert figures(got["totals"]) == expected_totals(records)
            assert {line["provider"]: line["requests"] for line in got["data"]} == {
                "slow": 1,
                "cut": 1,
            }
    finally:
        await fleet.close()
