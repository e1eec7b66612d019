"""The attempt planner: catalog endpoints for a request, filtered and put in order.

Orders by mode over catalog figures; live stats and full preference filtering plug in here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from providers.catalog import Catalog, Endpoint
from routing.errors import NoEndpoint, UnknownModel
from routing.preferences import Mode, RouteRequest


@dataclass(frozen=True, slots=True)
class Plan:
    request: RouteRequest
    mode: Mode
    endpoints: tuple[Endpoint, ...]  # in the order they will be tried
    rejected: dict[str, str] = field(default_factory=dict)  # endpoint id -> the filter that cut it
    explanation: dict[str, Any] = field(default_factory=dict)

    @property
    def allow_fallbacks(self) -> bool:
        return self.mode != "exacto" and self.request.preferences.allow_fallbacks


class Planner:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def plan(self, request: RouteRequest) -> Plan:
        catalog = self._catalog
        if request.model not in catalog.models:
            raise UnknownModel(
                f"model {request.model!r} is not in the catalog", metadata={"model": request.model}
            )
        rejected = {
            ep.id: catalog.status[ep.id].reason
            for ep in catalog.by_model[request.model]
            if not catalog.status[ep.id].enabled
        }
        endpoints = sorted(
            catalog.enabled(request.model),
            key=lambda ep: (ep.price.prompt + ep.price.completion, ep.provider),
        )
        if not endpoints:
            raise NoEndpoint(
                f"no endpoint is enabled for model {request.model!r}",
                metadata={"rejected": rejected},
            )
        return Plan(request, request.mode, tuple(endpoints), rejected)
