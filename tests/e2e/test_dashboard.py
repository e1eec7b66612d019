"""The ops board in headless Chromium against a gateway that served simulated traffic in every
mode with failures: login, the providers table agrees with the stats API, a generation lookup
shows its attempts, the billing tab, and screenshots at 1280 and 390 px."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

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

            # Billing: the report of #14 when this gateway has it, else a clear message.
            await page.get_by_test_id("billing-tab").click()
            message = page.get_by_test_id("billing-message")
            await message.filter(has_text="20").or_(message.filter(has_text="404")).wait_for()

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
            assert not errors, errors

            # Automation logs in with the fragment, which then leaves the address bar.
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            robot = await context.new_page()
            await robot.goto(f"{gw.url}/dashboard#token={ADMIN_TOKEN}")
            await robot.locator("[data-testid=providers-table] tr[data-provider=alpha]").wait_for()
            assert ADMIN_TOKEN not in robot.url
            await context.close()
            for name in ("dashboard-1280.png", "dashboard-390.png"):
                assert (screenshots / name).stat().st_size > 10_000
    finally:
        await fleet.close()
