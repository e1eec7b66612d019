"""Registering the catalog's price versions (their unit prices and when first loaded), so a
report line can say what it was billed at. Written once per start, never on the request path.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db.models import price_versions
from providers.catalog import Catalog
from providers.price_version import catalog_version, price_version, unit_prices


async def register_prices(
    engine: AsyncEngine, catalog: Catalog, now: datetime | None = None
) -> None:
    """Record every endpoint's price version; one already recorded keeps its first load time."""
    loaded_at = now or datetime.now(UTC)
    version = catalog_version(catalog)
    rows = []
    for endpoint in catalog.endpoints:
        units = unit_prices(endpoint.price)
        rows.append(
            {
                "price_version": price_version(endpoint),
                "endpoint_id": endpoint.id,
                "model": endpoint.model,
                "provider": endpoint.provider,
                "prompt": units.prompt,
                "completion": units.completion,
                "cache_read": units.cache_read,
                "cache_write": units.cache_write,
                "request": units.request,
                "catalog_version": version,
                "first_loaded_at": loaded_at,
            }
        )
    if not rows:
        return
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(price_versions).on_conflict_do_nothing(
        index_elements=["price_version"]
    )
    async with engine.begin() as conn:
        await conn.execute(statement, rows)
