"""`GET /v1/models`, `GET /api/v1/models/{author}/{slug}/endpoints`, `GET /api/v1/providers`."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath

from gateway.catalog.views import ARCHITECTURE, endpoint_entry, model_entry, provider_entries
from gateway.errors import NotFound
from providers.catalog import Catalog


@get(["/v1/models", "/api/v1/models"], sync_to_thread=False)
def list_models(catalog: NamedDependency[Catalog]) -> dict[str, Any]:
    return {"data": [model_entry(catalog, m) for m in catalog.models.values()]}


@get("/api/v1/models/{author:str}/{slug:str}/endpoints", sync_to_thread=False)
def list_endpoints(
    author: FromPath[str],
    slug: FromPath[str],
    catalog: NamedDependency[Catalog],
    endpoint_stats: NamedDependency[dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    model_id = f"{author}/{slug}"
    model = catalog.models.get(model_id)
    if model is None:
        raise NotFound(f"model {model_id!r} is not in the catalog", metadata={"model": model_id})
    return {
        "data": {
            "id": model.id,
            "name": model.name,
            "created": model.created,
            "description": model.description,
            "architecture": ARCHITECTURE,
            "endpoints": [
                endpoint_entry(catalog, e, endpoint_stats.get(e.id))
                for e in catalog.by_model.get(model_id, ())
            ],
        }
    }


@get(["/api/v1/providers", "/v1/providers"], sync_to_thread=False)
def list_providers(catalog: NamedDependency[Catalog]) -> dict[str, Any]:
    """The catalog's providers in OpenRouter's shape, with the gateway's endpoint counts."""
    return {"data": provider_entries(catalog)}
