"""`GET /api/v1/reports/billing` (JSON or CSV), `GET /api/v1/reports/statement` (a key's month
as JSON, CSV or HTML) and `GET /api/v1/activity` (OpenRouter's shape): exact sums from the daily
rollup, scoped to the caller's key unless it holds the admin token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.edge import auth_required_of
from gateway.errors import BadRequest
from gateway.json_encoding import encode
from gateway.keys.keyring import Keyring
from gateway.reports.billing import FORMATS, GroupByError, billing_report, parse_group_by
from gateway.reports.periods import PeriodError, activity_period, parse_month, parse_period
from gateway.reports.query import ALL_KEYS, ReportQuery, run_report
from gateway.reports.scope import report_scope
from gateway.reports.statement import FORMATS as STATEMENT_FORMATS
from gateway.reports.statement import build_statement
from gateway.reports.views import activity_item

BILLING_PATHS = ["/api/v1/reports/billing"]
STATEMENT_PATHS = ["/api/v1/reports/statement"]
ACTIVITY_PATHS = ["/api/v1/activity"]
ACTIVITY_GROUPS = ("day", "model", "provider", "endpoint_id")
MAX_PARAMETER_CHARS = 200  # a query parameter longer than any valid one is refused unread


def _param(request: Request[Any, Any, Any], name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and len(value) > MAX_PARAMETER_CHARS:
        raise BadRequest(f"`{name}` is too long", metadata={"parameter": name})
    return value


def _scope(request: Request[Any, Any, Any], keyring: Keyring) -> str | None:
    return report_scope(
        keyring,
        request.headers.get("authorization"),
        _param(request, "key_id"),
        auth_required_of(request.scope),  # the edge's per-address policy (#13), not the default
    )


@get(BILLING_PATHS)
async def billing(
    request: Request[Any, Any, Any],
    keyring: NamedDependency[Keyring],
    engine: NamedDependency[AsyncEngine],
) -> Response[bytes]:
    scope = _scope(request, keyring)
    fmt = _param(request, "format") or "json"
    if fmt not in FORMATS:
        raise BadRequest("`format` must be json or csv", metadata={"parameter": "format"})
    try:
        period = parse_period(
            _param(request, "from"), _param(request, "to"), datetime.now(UTC).date()
        )
        group_by = parse_group_by(_param(request, "group_by"))
    except PeriodError as exc:
        raise BadRequest(str(exc), metadata={"parameter": exc.parameter}) from exc
    except GroupByError as exc:
        raise BadRequest(str(exc), metadata={"parameter": "group_by"}) from exc
    report = await billing_report(engine, period, group_by, scope)
    if fmt == "csv":
        name = f"billing-{period.start.isoformat()}-{period.end.isoformat()}.csv"
        return Response(
            report.csv().encode(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return Response(encode(report.body()), media_type="application/json")


@get(ACTIVITY_PATHS)
async def activity(
    request: Request[Any, Any, Any],
    keyring: NamedDependency[Keyring],
    engine: NamedDependency[AsyncEngine],
) -> Response[bytes]:
    scope = _scope(request, keyring)
    try:
        period = activity_period(_param(request, "date"), datetime.now(UTC).date())
    except PeriodError as exc:
        raise BadRequest(str(exc), metadata={"parameter": exc.parameter}) from exc
    rows = await run_report(engine, ReportQuery(period, ACTIVITY_GROUPS, scope))
    return Response(
        encode({"data": [activity_item(row) for row in rows]}), media_type="application/json"
    )


@get(STATEMENT_PATHS)
async def statement(
    request: Request[Any, Any, Any],
    keyring: NamedDependency[Keyring],
    engine: NamedDependency[AsyncEngine],
) -> Response[bytes]:
    """One key's month; a user key gets its own (`key_id` defaults to it), admin names one."""
    scope = _scope(request, keyring)
    if scope is ALL_KEYS:
        raise BadRequest(
            "a statement is for one key: pass `key_id`", metadata={"parameter": "key_id"}
        )
    fmt = _param(request, "format") or "json"
    if fmt not in STATEMENT_FORMATS:
        raise BadRequest("`format` must be json, csv or html", metadata={"parameter": "format"})
    now = datetime.now(UTC)
    try:
        period = parse_month(_param(request, "month") or now.strftime("%Y-%m"))
    except PeriodError as exc:
        raise BadRequest(str(exc), metadata={"parameter": exc.parameter}) from exc
    made = await build_statement(engine, scope, period, now)
    safe = "".join(c for c in scope if c.isascii() and (c.isalnum() or c in "-_"))
    name = f"statement-{made.month}-{safe}"
    if fmt == "csv":
        return Response(
            made.csv().encode(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if fmt == "html":
        return Response(made.html().encode(), media_type="text/html; charset=utf-8")
    return Response(made.json().encode(), media_type="application/json")
