"""The app factory: `create_app(settings)` wires controllers, errors and the lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.types import ControllerRouterHandler

from gateway.catalog.controller import list_endpoints, list_models, list_providers
from gateway.chat.controller import chat_completions
from gateway.dashboard.controller import dashboard, dashboard_asset
from gateway.dependencies import DEPENDENCIES
from gateway.edge import EdgeGuard
from gateway.errors import handle_exception
from gateway.generations.controller import get_generation
from gateway.health import health, ready
from gateway.keys.admin import KeysAdminController
from gateway.keys.controller import get_credits, get_current_key
from gateway.ledger.controller import ledger_status
from gateway.logs import configure_logging
from gateway.metrics.controller import metrics
from gateway.openapi import openapi_route
from gateway.reports.controller import activity, billing, statement
from gateway.resources import open_resources
from gateway.settings import Settings
from gateway.stats.controller import StatsController


def create_app(settings: Settings | None = None, *, freeze_gc: bool = False) -> Litestar:
    """`freeze_gc` (server processes, not apps made in tests): once started, what the start
    made is moved out of the garbage collector's reach (`gc.freeze`), so a full collection
    walks only what requests made since (a 140,000-object walk was the slowest pause of a
    worker under load)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            app.state.resources = resources
            if freeze_gc:
                gc.collect()
                gc.freeze()
            yield

    handlers: list[ControllerRouterHandler] = [
        list_models,
        list_endpoints,
        health,
        ready,
        get_generation,
        ledger_status,
        metrics,
        get_current_key,
        KeysAdminController,
        list_providers,
        get_credits,
        StatsController,
        billing,
        statement,
        activity,
    ]
    app = Litestar(
        route_handlers=[
            chat_completions,
            *handlers,
            openapi_route(handlers, DEPENDENCIES),
            dashboard,  # pages, not API: left out of the OpenAPI document
            dashboard_asset,
        ],
        lifespan=[lifespan],
        dependencies=DEPENDENCIES,
        exception_handlers={Exception: handle_exception},
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
    # Outside Litestar's router: header limits, the concurrency cap and the auth policy of the
    # connection apply to every request, routed or not.
    app.asgi_handler = EdgeGuard(app.asgi_handler, settings.server)
    return app


def app_from_env() -> Litestar:
    """Entry point for `uvicorn --factory` workers: settings come from the environment."""
    settings = Settings()
    configure_logging(settings.server.log_level)
    return create_app(settings, freeze_gc=True)
