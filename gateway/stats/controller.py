"""`GET /api/v1/stats/*`: provider health, effective price, usage, apps, history, failures and
one generation, for the dashboard and for scripts. Reads rollups and the live routing snapshot.

The admin token sees every key's traffic; an API key sees its own (`gateway.stats.viewer`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, QueryParameter
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import BadRequest, NotFound
from gateway.generations.queries import find_generation
from gateway.generations.views import generation_body
from gateway.stats import params, queries, views
from gateway.stats.viewer import Viewer, provide_viewer, require_admin_viewer
from providers.catalog import Catalog
from providers.llamacpp_health import LlamaCppMonitor
from routing.runtime import Routing

FAILURES_SINCE = timedelta(days=1)
_encode = msgspec.json.Encoder(decimal_format="string").encode

From = Annotated[str | None, QueryParameter(name="from")]
To = Annotated[str | None, QueryParameter(name="to")]


def _json(body: dict[str, Any]) -> Response[bytes]:
    return _json_bytes(_encode(body))


def _json_bytes(body: bytes) -> Response[bytes]:
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


def _now() -> datetime:
    return datetime.now(UTC)


def _period_json(period: queries.Period) -> dict[str, str]:
    return {"from": period.since.isoformat(), "to": period.until.isoformat()}


class StatsController(Controller):
    path = "/api/v1/stats"
    dependencies = {"viewer": Provide(provide_viewer, sync_to_thread=False)}  # noqa: RUF012

    @get("/endpoints")
    async def endpoints(
        self,
        catalog: NamedDependency[Catalog],
        engine: NamedDependency[AsyncEngine],
        routing: NamedDependency[Routing | None],
        llamacpp: NamedDependency[LlamaCppMonitor | None],
        viewer: NamedDependency[Viewer],
        model: FromQuery[str | None] = None,
        window: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        model_id = model or next(iter(catalog.models), "")
        if model_id not in catalog.models:
            raise NotFound(f"model {model_id!r} is not in the catalog", metadata={"model": model})
        label = params.window_of(window)
        now = _now()
        traffic_period = params.window_period(label, now)
        price_period = params.window_period(params.EFFECTIVE_PRICE_WINDOW, now)
        traffic = await queries.provider_totals(engine, traffic_period, model_id, viewer.api_key_id)
        paid = await queries.provider_totals(engine, price_period, model_id, None)
        outcomes = await queries.attempt_outcomes(engine, traffic_period)
        errors = views.errors_by_endpoint(outcomes)
        snapshot = routing.live.snapshot() if routing else None
        states = llamacpp.states() if llamacpp else {}
        clock = time.time()
        endpoints = catalog.by_model.get(model_id, ())
        total = sum(int(row["requests"]) for row in traffic.values())
        data = []
        for endpoint in endpoints:
            breaker = snapshot.breaker(endpoint.id) if snapshot else None
            data.append(
                views.endpoint_body(
                    catalog,
                    endpoint,
                    live=snapshot.get(endpoint.id) if snapshot else None,
                    breaker="closed" if breaker is None else breaker.phase(clock),
                    unavailable=llamacpp.unavailable(endpoint.id) if llamacpp else None,
                    llamacpp=states.get(endpoint.id),
                    traffic=traffic.get(endpoint.provider),
                    total_requests=total,
                    paid=paid.get(endpoint.provider),
                    errors=errors.get(endpoint.id, {}),
                )
            )
        return _json(
            {
                "data": data,
                "model": model_id,
                "models": list(catalog.models),
                "window": label,
                "period": _period_json(traffic_period),
                "effective_price_window": params.EFFECTIVE_PRICE_WINDOW,
                "scope": "all" if viewer.admin else "key",
            }
        )

    @get("/usage")
    async def usage(
        self,
        engine: NamedDependency[AsyncEngine],
        viewer: NamedDependency[Viewer],
        start: From = None,
        end: To = None,
        bucket: FromQuery[str | None] = None,
        group_by: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        size = params.bucket_of(bucket)
        group = params.group_by_of(group_by)
        period = params.period_of(start, end, _now(), size)
        about = {"period": _period_json(period), "bucket": size, "group_by": group}
        key = viewer.api_key_id
        data = await queries.usage_json(engine, period, size, group, key)
        if data is not None:  # Postgres built the rows' JSON itself: splice it in
            return _json_bytes(b'{"data":' + data.encode() + b"," + _encode(about)[1:])
        rows = await queries.usage(engine, period, size, group, key)
        return _json({"data": [views.usage_row(row, group) for row in rows], **about})

    @get("/apps")
    async def apps(
        self,
        engine: NamedDependency[AsyncEngine],
        viewer: NamedDependency[Viewer],
        start: From = None,
        end: To = None,
        limit: FromQuery[int | None] = None,
    ) -> Response[bytes]:
        period = params.period_of(start, end, _now())
        top = params.limit_of(limit, 20, 500)
        rows = await queries.top_apps(engine, period, viewer.api_key_id, top)
        return _json({"data": [views.app_row(row) for row in rows], "period": _period_json(period)})

    @get("/history")
    async def history(
        self,
        engine: NamedDependency[AsyncEngine],
        viewer: NamedDependency[Viewer],
        start: From = None,
        end: To = None,
        bucket: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        require_admin_viewer(viewer)
        size = params.bucket_of(bucket)
        period = params.period_of(start, end, _now(), size)
        usage = await queries.provider_history(engine, period, size)
        outcomes = await queries.attempt_outcomes(engine, period, size)
        return _json(
            {
                "data": views.history_rows(usage, outcomes),
                "period": _period_json(period),
                "bucket": size,
            }
        )

    @get("/failures")
    async def failures(
        self,
        engine: NamedDependency[AsyncEngine],
        viewer: NamedDependency[Viewer],
        limit: FromQuery[int | None] = None,
    ) -> Response[bytes]:
        require_admin_viewer(viewer)
        top = params.limit_of(limit, 50, 500)
        rows = await queries.recent_failures(engine, _now() - FAILURES_SINCE, top)
        return _json({"data": [views.failure_row(row) for row in rows]})

    @get("/generation")
    async def generation(
        self,
        engine: NamedDependency[AsyncEngine],
        viewer: NamedDependency[Viewer],
        generation_id: Annotated[str | None, QueryParameter(name="id")] = None,
    ) -> Response[bytes]:
        if not generation_id:
            raise BadRequest("the `id` query parameter is required", metadata={"parameter": "id"})
        record = await find_generation(
            engine, generation_id, viewer.api_key_id, any_key=viewer.admin
        )
        if record is None:
            missing = f"generation {generation_id!r} not found"
            raise NotFound(missing, metadata={"id": generation_id})
        return _json(generation_body(record))
