"""E2E fixtures: a simulated fleet and a gateway in front of it, driven by the openai client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from openai import AsyncOpenAI

from gateway.settings import CatalogSettings, DatabaseSettings, Settings
from providers.simulator.profile import Profile
from providers.simulator.server import Fleet, start_fleet
from tests.support.gateway import RunningGateway, run_gateway, write_catalog


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet(
        {
            "alpha": Profile(completion_tokens=12, cache_min_tokens=256),
            "beta": Profile(completion_tokens=12),
        }
    )
    try:
        yield fleet
    finally:
        await fleet.close()


def embedded_settings(tmp_path: Path, catalog: Path) -> Settings:
    return Settings(
        catalog=CatalogSettings(catalog=catalog),
        database=DatabaseSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/gw.sqlite3"),
    )


@pytest.fixture
async def gateway(fleet: Fleet, tmp_path: Path) -> AsyncIterator[RunningGateway]:
    catalog = write_catalog(
        tmp_path / "catalog.toml",
        {"alpha": fleet.url_for("alpha"), "beta": fleet.url_for("beta")},
        exacto="alpha",
        transports={"beta": "httpx"},  # the suite runs both transports, one endpoint each
    )
    async with run_gateway(embedded_settings(tmp_path, catalog)) as running:
        yield running


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=gateway.v1, api_key="unused", max_retries=0) as client:
        yield client
