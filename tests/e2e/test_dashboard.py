"""The ops board in headless Chromium against a gateway that served simulated traffic in every
mode with failures: login, the providers table agrees with the stats API, a generation lookup
shows its attempts, the billing view agrees with the billing API (totals, grouping, CSV), and
screenshots at 1280 and 390 px."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.async_api import Page

from providers.simulator.server import start_fleet
from tests.integration.keys_fixtures import ADMIN_TOKEN, admin_headers, key_settings, migrate
from tests.support.browser import headless_chromium
from tests.support.gateway import run_gateway, write_catalog
from tests.support.polling import eventually
from tests.support.stats_traffic import EXACTO, MODEL, PROFILES, send_traffic

REQUESTS = 24
HOSTILE_APP = '<img src=x onerror="document.title=1">'
SCREENSHOTS = Path(os.environ.get("GATEWAY_SCREENSHOTS", "var/screenshots"))


async def _stats(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await client.get(
        "/api/v1/stats/endpoints", params={"model": MODEL}, headers=admin_headers()
    )
    assert response.status_code == 200, response.text
    return {row["provider"]: row for row in response.json()["data"]}


async def _table(page: Page) -> dict[str, dict[str, Any]]:
    """Per provider row: each cell's API value (data-value) and its visible text."""
    rows: dict[str, dict[str, Any]] = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll(
              '[data-testid=providers-table] tbody tr')].map(tr => [tr.dataset.provider,
              Object.fromEntries([...tr.querySelectorAll('td[data-field]')].map(td =>
                [td.dataset.field, {value: td.dataset.value, text: td.innerText.trim(),
                 windows: Object.fromEntries([...td.querySelectorAll('[data-window]')].map(
                   s => [s.dataset.window, s.innerText.trim()]))}]))]))"""
    )
    return rows


MEASURES = [
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "gross_cost",
    "cache_discount",
    "cost",
]


def _this_month() -> dict[str, str]:
    """The billing tab's default: this UTC month to date, today included (`to` is exclusive)."""
    today = datetime.now(UTC).date()
    return {
        "from": today.replace(day=1).isoformat(),
        "to": (today + timedelta(days=1)).isoformat(),
        "group_by": "model,provider",
    }


def _query(params: dict[str, str]) -> str:
    return urlencode(params)  # as the page's URLSearchParams writes `data-report`


async def _report(client: httpx.AsyncClient, params: dict[str, str]) -> dict[str, Any]:
    response = await client.get(
        "/api/v1/reports/billing", params={**params, "format": "json"}, headers=admin_headers()
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _text(value: Any) -> str:
    """A report value as the page prints it: the API's text as is, no rounding."""
    return "(none)" if value is None else str(value)


async def _check_billing(
    page: Page, client: httpx.AsyncClient, screenshots: Path, total: int
) -> None:
    downloads: list[Any] = []
    page.on("download", lambda download: downloads.append(download))
    await page.get_by_test_id("billing-tab").click()
    panel = page.get_by_test_id("billing-panel")

    # Default period: this UTC month through today, inclusive, so today's traffic is in it.
    expected = _this_month()
    await page.locator(f"[data-report='{_query(expected)}']").wait_for()
    shown_from = await page.get_by_test_id("billing-from").input_value()
    shown_to = await page.get_by_test_id("billing-to").input_value()
    assert shown_from == expected["from"]
    assert date.fromisoformat(shown_to) + timedelta(days=1) == date.fromisoformat(expected["to"])
    api = await _report(client, expected)
    totals: dict[str, str] = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll(
              '[data-testid=billing-totals] [data-field]')].map(
              dd => [dd.dataset.field, dd.textContent]))"""
    )
    assert totals == {field: str(api["totals"][field]) for field in MEASURES}
    assert api["totals"]["requests"] == total  # today's traffic, all of it
    assert Decimal(api["totals"]["cost"]) > 0 and Decimal(api["totals"]["cache_discount"]) > 0
    header = page.locator("[data-testid=billing-table] thead th")
    columns = await header.evaluate_all("ths => ths.map(th => th.dataset.field)")
    assert columns == ["model", "provider", "price_version", *MEASURES]
    await page.screenshot(path=str(screenshots / "dashboard-billing-1280.png"), full_page=True)

    # Group by day and app instead: other columns, and the lines the API gives for that.
    group_by = page.get_by_test_id("billing-group-by")
    await group_by.locator("input[value=day]").check()
    await group_by.locator("input[value=model]").uncheck()
    await group_by.locator("input[value=provider]").uncheck()
    await group_by.locator("input[value=app]").check()
    by_day = {**expected, "group_by": "day,app"}
    await page.locator(f"[data-report='{_query(by_day)}']").wait_for()
    columns = await header.evaluate_all("ths => ths.map(th => th.dataset.field)")
    assert columns == ["day", "app", *MEASURES]
    api = await _report(client, by_day)
    rows = await page.locator("[data-testid=billing-table] tbody tr").evaluate_all(
        "trs => trs.map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent))"
    )
    assert rows == [[_text(line[c]) for c in columns] for line in api["data"]]
    assert {line["app"] for line in api["data"]} >= {HOSTILE_APP, "billing-bot"}
    assert await panel.locator("img").count() == 0  # a client's app name stays text
    # Month and day exclude each other, as in the API.
    await group_by.locator("input[value=month]").check()
    assert not await group_by.locator("input[value=day]").is_checked()
    await group_by.locator("input[value=day]").check()
    assert not await group_by.locator("input[value=month]").is_checked()
    await page.locator(f"[data-report='{_query(by_day)}']").wait_for()

    # Download CSV: the same report as a file whose rows parse back to the same figures.
    async with page.expect_download() as download_info:
        await page.get_by_test_id("billing-csv").click()
    download = await download_info.value
    assert download.suggested_filename == f"billing-{by_day['from']}-{by_day['to']}.csv"
    path = await download.path()
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert reader.fieldnames == columns
    lines = list(reader)
    assert lines == [
        {c: "" if line[c] is None else str(line[c]) for c in columns} for line in api["data"]
    ]
    for field in ("gross_cost", "cache_discount", "cost"):
        assert sum(Decimal(line[field]) for line in lines) == Decimal(api["totals"][field])
    assert sum(int(line["requests"]) for line in lines) == total

    # Errors: a refused period clears the figures and says why; so does its CSV.
    await page.get_by_test_id("billing-from").fill("2000-01-01")
    error = page.get_by_test_id("billing-error")
    await error.filter(has_text="at most 1830 days").wait_for()
    assert await panel.locator("[data-field=cost]").first.text_content() == "–"
    assert await panel.get_attribute("data-report") is None
    await page.get_by_test_id("billing-csv").click()
    await error.filter(has_text="CSV download failed").filter(has_text="1830").wait_for()
    await page.get_by_test_id("billing-from").fill(by_day["to"])  # after `to`: not even asked
    await error.filter(has_text="is before From").wait_for()
    assert len(downloads) == 1

    # Back to the default for the phone screenshot.
    await page.get_by_role("button", name="This month").click()
    await group_by.locator("input[value=day]").uncheck()
    await group_by.locator("input[value=app]").uncheck()
    await group_by.locator("input[value=model]").check()
    await group_by.locator("input[value=provider]").check()
    await page.locator(f"[data-report='{_query(expected)}']").wait_for()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


async def test_dashboard_shows_what_the_stats_api_says(
    tmp_path: Path, pg_database: str, redis_url: str, redis_prefix: str, screenshots: Path
) -> None:
    await migrate(pg_database)
    fleet = await start_fleet(dict(PROFILES))
    catalog = write_catalog(
        tmp_path / "catalog.toml", {p: fleet.url_for(p) for p in PROFILES}, exacto=EXACTO
    )
    settings = key_settings(
        catalog, pg_database, redis_url=redis_url, redis_prefix=redis_prefix, auth="off"
    )
    try:
        async with (
            run_gateway(settings) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=20) as client,
            headless_chromium() as browser,
        ):
            sent = await send_traffic(client, REQUESTS)
            hostile = await client.post(
                "/v1/chat/completions",
                json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
                headers={"X-Title": HOSTILE_APP},
            )
            assert hostile.status_code == 200
            total = REQUESTS + 1

            async def ledgered() -> bool:
                rows = await _stats(client)
                return sum(r["requests"] for r in rows.values()) == total and all(
                    r["uptime"]["5m"] is not None for p, r in rows.items() if p != "gamma"
                )

            await eventually(ledgered, timeout_s=20, what="traffic in the stats API")

            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # Login by hand: a wrong token is refused, the right one opens the board.
            await page.goto(f"{gw.url}/dashboard?refresh_ms=1000")
            await page.get_by_test_id("token-input").fill("not-the-token")
            await page.get_by_test_id("login-button").click()
            await page.get_by_test_id("login-error").filter(has_text="invalid").wait_for()
            await page.get_by_test_id("token-input").fill(ADMIN_TOKEN)
            await page.get_by_test_id("login-button").click()
            rows = page.locator("[data-testid=providers-table] tbody tr")
            await rows.nth(len(PROFILES) - 1).wait_for()
            assert await page.evaluate("sessionStorage.length") == 1

            # The providers table shows the stats API's requests, uptime and effective price.
            shown: dict[str, dict[str, Any]] = {}
            expected: dict[str, dict[str, Any]] = {}

            async def table_agrees() -> bool:
                nonlocal shown, expected
                expected = await _stats(client)
                shown = await _table(page)
                return set(shown) == set(expected) and all(
                    json.loads(shown[p][field]["value"]) == expected[p][field]
                    for p in expected
                    for field in ("requests", "uptime", "effective_price")
                )

            await eventually(table_agrees, timeout_s=10, what="providers table == stats API")
            for provider, api in expected.items():
                cells = shown[provider]
                assert cells["requests"]["text"] == str(api["requests"])
                for window, value in api["uptime"].items():
                    assert cells["uptime"]["windows"][window] == (
                        "–" if value is None else f"{value:g}%"  # as JavaScript prints it
                    )
                assert cells["breaker"]["text"] == api["breaker"]
            assert expected["alpha"]["requests"] > 0 and expected["gamma"]["errors"]
            await page.screenshot(path=str(screenshots / "dashboard-1280.png"), full_page=True)

            # Generation lookup: a nitro request tried the down provider first, then alpha.
            generation_id = sent.generation_ids[1]
            looked_up = await client.get(
                "/api/v1/stats/generation", params={"id": generation_id}, headers=admin_headers()
            )
            body = looked_up.json()["data"]
            attempts = body["provider_responses"]
            assert [a["provider"] for a in attempts][:1] == ["gamma"] and len(attempts) >= 2
            await page.get_by_role("tab", name="Failures").click()
            await page.get_by_test_id("generation-input").fill(generation_id)
            await page.get_by_test_id("generation-lookup").click()
            attempt_rows = page.locator("[data-testid=generation-attempts] tbody tr")
            await attempt_rows.nth(len(attempts) - 1).wait_for()
            assert await attempt_rows.count() == len(attempts)
            for i, attempt in enumerate(attempts):
                row = attempt_rows.nth(i)
                for field in ("provider", "outcome"):
                    shown_text = await row.locator(f"[data-field={field}]").inner_text()
                    assert shown_text == attempt[field]
            routing = await page.get_by_test_id("generation-routing").inner_text()
            assert json.loads(routing) == body["routing"]
            failures = page.locator("[data-testid=failures-table] tbody tr")
            assert await failures.count() > 0
            await page.screenshot(path=str(screenshots / "dashboard-failures-1280.png"))

            # Traffic: the hostile app title is shown as text, never run as markup.
            await page.get_by_role("tab", name="Traffic").click()
            apps = page.locator("[data-testid=apps-table] tbody tr")
            await apps.filter(has_text="onerror").wait_for()
            assert await page.locator("[data-testid=apps-table] img").count() == 0
            assert await page.title() == "Gateway ops board"

            # Billing: totals, breakdown and CSV agree with the billing API, exactly.
            await _check_billing(page, client, screenshots, total)

            # Live: the board refreshes without a reload.
            updated = page.get_by_test_id("last-updated")

            async def refreshes() -> int:
                return int(await updated.get_attribute("data-refreshes") or "0")

            before = await refreshes()

            async def refreshed() -> bool:
                return await refreshes() > before

            await eventually(refreshed, timeout_s=10, what="a live refresh")

            # Phone width: the page itself doesn't scroll sideways (each provider is a card).
            await page.get_by_role("tab", name="Providers").click()
            await page.set_viewport_size({"width": 390, "height": 844})
            before = await refreshes()
            await eventually(refreshed, timeout_s=10, what="a refresh at 390 px")
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the page is {width} px wide at 390"
            chart_width = await page.evaluate(
                "document.querySelector('#latency-chart svg').getBoundingClientRect().width"
            )
            assert chart_width <= 390  # redrawn for the narrow screen
            label = await page.evaluate(  # labelled cells: one card per provider
                """getComputedStyle(document.querySelector(
                     'tr[data-provider=alpha] td[data-field=requests]'), '::before').content"""
            )
            assert label == '"Requests"'
            await page.screenshot(path=str(screenshots / "dashboard-390.png"), full_page=True)
            await page.get_by_role("tab", name="Failures").click()
            await page.screenshot(
                path=str(screenshots / "dashboard-failures-390.png"), full_page=True
            )
            await page.get_by_test_id("billing-tab").click()
            await page.locator(f"[data-report='{_query(_this_month())}']").wait_for()
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the billing tab is {width} px wide at 390"
            await page.screenshot(
                path=str(screenshots / "dashboard-billing-390.png"), full_page=True
            )
            assert not errors, errors

            # Automation logs in with the fragment, which then leaves the address bar.
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            robot = await context.new_page()
            await robot.goto(f"{gw.url}/dashboard#token={ADMIN_TOKEN}")
            await robot.locator("[data-testid=providers-table] tr[data-provider=alpha]").wait_for()
            assert ADMIN_TOKEN not in robot.url
            await context.close()
            for name in (
                "dashboard-1280.png",
                "dashboard-390.png",
                "dashboard-billing-1280.png",
                "dashboard-billing-390.png",
            ):
                assert (screenshots / name).stat().st_size > 10_000
    finally:
        await fleet.close()
