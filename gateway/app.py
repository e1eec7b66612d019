"""The app factory: `create_app(settings)` wires controllers, errors and the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from gateway.catalog.controller import list_endpoints, list_models
from gateway.chat.controller import chat_completions
from gateway.errors import handle_exception
from gateway.generations.controller import get_generation
from gateway.health import health, ready
from gateway.keys.admin import KeysAdminController
from gateway.keys.controller import get_current_key
from gateway.keys.guard import provide_api_key
from gateway.ledger.controller import ledger_status, metrics
from gateway.logs import configure_logging
from gateway.reports.controller import activity, billing, statement
from gateway.resources import Resources, open_resources
from gateway.settings import Settings


def _resources(state: State) -> Resources:
    resources: Resources = state.resources
    return resources


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            app.state.resources = resources
            yield

    return Litestar(
        route_handlers=[
            chat_completions,
            list_models,
            list_endpoints,
            health,
            ready,
            get_generation,
            ledger_status,
            metrics,
            get_current_key,
            KeysAdminController,
            billing,
            statement,
            activity,
        ],
        lifespan=[lifespan],
        dependencies={
            "resources": Provide(_resources, sync_to_thread=False),
            "api_key": Provide(provide_api_key, sync_to_thread=False),
        },
        exception_handlers={Exception: handle_exception},
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )


def app_from_env() -> Litestar:
    """Entry point for `uvicorn --factory` workers: settings come from the environment."""
    settings = Settings()
    configure_logging(settings.server.log_level)
    return create_app(settings)
