"""Headless Chromium for the browser tests: Debian's `chromium` package driven by Playwright
with `executable_path` (never a browser Playwright downloads). `scripts/services.sh` installs it;
a missing browser fails the test loudly instead of skipping it."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, async_playwright

CANDIDATES = ("chromium", "chromium-browser")


def chromium_path() -> str:
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(
        "Debian's chromium is not installed: run scripts/services.sh (the test command does), "
        "or apt-get install chromium, or set CHROMIUM=/path/to/chromium"
    )


@asynccontextmanager
async def headless_chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            # root in CI containers has no user namespace sandbox; /dev/shm is small there
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            await browser.close()
