"""Watches llama.cpp servers: loading or ready (`/health`), context (`/props`), busy slots.

Background polling only; it answers "can this endpoint take a request now?" from memory and
never decides routing (the planner asks it through `unavailable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import msgspec

from providers.background import stop_task
from providers.catalog import Endpoint, Secret
from providers.http1 import HttpClientError, HttpTimeouts, Timeout
from providers.transport import UpstreamTransport

log = logging.getLogger("providers.llamacpp")

POLL_INTERVAL_S = 0.5  # how stale the busy-slot view may get
CHECK_TIMEOUT_S = 2.0  # one server's whole check (health, props, load)
Status = Literal["unknown", "loading", "ready", "down"]
LoadSource = Literal["slots", "metrics", "none"]


@dataclass(frozen=True, slots=True)
class ServerState:
    """One llama-server as last seen."""

    status: Status = "unknown"
    detail: str = ""
    total_slots: int | None = None  # `/props` total_slots (`--parallel`)
    slot_ctx: int | None = None  # tokens of context per slot (`/props` n_ctx)
    busy_slots: int | None = None  # processing now (`/slots`, else `/metrics`)
    deferred: int = 0  # requests waiting for a slot (`/metrics` only)
    checked_at: float = 0.0  # monotonic

    @property
    def saturated(self) -> bool:
        """Every slot is taken (or requests already queue for one)."""
        if self.deferred > 0:
            return True
        total, busy = self.total_slots, self.busy_slots
        return total is not None and busy is not None and busy >= total

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "detail": self.detail or None,
            "total_slots": self.total_slots,
            "busy_slots": self.busy_slots,
            "deferred": self.deferred,
            "slot_ctx": self.slot_ctx,
        }


def unavailable_reason(state: ServerState, spill_over: bool) -> str | None:
    """Why an endpoint on this server should not take a request now; None when it may."""
    if state.status == "loading":
        return "the server is loading the model"
    if state.status == "down":
        return f"the server is down ({state.detail})"
    if spill_over and state.status == "ready" and state.saturated:
        if state.deferred:
            return f"every slot is busy, {state.deferred} waiting"
        return f"every slot is busy ({state.busy_slots}/{state.total_slots})"
    return None


def health_of(status: int, body: Any) -> tuple[Status, str]:
    """`/health`: 200 is ready; 503 (`unavailable_error`, "Loading model") is loading."""
    if status == 200:
        return "ready", ""
    message = ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        message = error["message"]
    if status == 503:
        return "loading", message or "loading"
    return "down", f"/health answered {status}" + (f": {message}" if message else "")


def props_of(body: Any) -> tuple[int | None, int | None]:
    """(total slots, context per slot) from `/props`."""
    if not isinstance(body, dict):
        return None, None
    total = body.get("total_slots")
    settings = body.get("default_generation_settings")
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    return (
        total if isinstance(total, int) and total > 0 else None,
        n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None,
    )


def busy_from_slots(body: Any) -> tuple[int, int] | None:
    """(busy, total) from `/slots`: a list of `{"id", "is_processing", ...}`."""
    if not isinstance(body, list):
        return None
    slots = [s for s in body if isinstance(s, dict)]
    return sum(1 for s in slots if s.get("is_processing") is True), len(slots)


def busy_from_metrics(text: str) -> tuple[int, int] | None:
    """(processing, deferred) from the Prometheus text of `/metrics`."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("llamacpp:requests_processing", "llamacpp:requests_deferred"):
            with contextlib.suppress(ValueError):
                values[name] = int(float(value))
    if "llamacpp:requests_processing" not in values:
        return None
    return values["llamacpp:requests_processing"], values.get("llamacpp:requests_deferred", 0)


def server_root(endpoint: Endpoint) -> str:
    """The server's own URL: the endpoint's base URL without its `/v1`."""
    url = endpoint.url
    return url[: -len("/v1")] if url.endswith("/v1") else url


@dataclass
class _Server:
    root: str
    headers: dict[str, str] = field(repr=False)  # may carry the server's API key
    state: ServerState = field(default_factory=ServerState)
    load_source: LoadSource = "slots"
    context_lengths: dict[str, int] = field(default_factory=dict)  # endpoint id -> catalog


class _Unsupported(Exception):
    """The server does not offer this endpoint (started without `--slots` / `--metrics`)."""


class LlamaCppMonitor:
    """Polls every llama.cpp server of the catalog; `unavailable(endpoint_id)` reads the result."""

    def __init__(
        self,
        client: UpstreamTransport,
        endpoints: Iterable[tuple[Endpoint, Secret | None]],
        *,
        interval_s: float = POLL_INTERVAL_S,
        timeout_s: float = CHECK_TIMEOUT_S,
    ) -> None:
        self._client = client
        self._timeouts = HttpTimeouts(timeout_s, timeout_s, timeout_s)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._servers: dict[str, _Server] = {}
        self._of: dict[str, tuple[_Server, bool]] = {}  # endpoint id -> (server, spill_over)
        for endpoint, secret in endpoints:
            root = server_root(endpoint)
            server = self._servers.get(root)
            if server is None:
                headers = dict(endpoint.headers)
                if secret is not None:
                    headers["Authorization"] = f"Bearer {secret.reveal()}"
                server = self._servers[root] = _Server(root, headers)
            server.context_lengths[endpoint.id] = endpoint.context_length
            self._of[endpoint.id] = (server, endpoint.spill_over)
        self._task: asyncio.Task[None] | None = None

    # -- what routing reads

    def state(self, endpoint_id: str) -> ServerState | None:
        entry = self._of.get(endpoint_id)
        return None if entry is None else entry[0].state

    def unavailable(self, endpoint_id: str) -> str | None:
        """Why the endpoint can't take a request now (loading, down, every slot busy)."""
        entry = self._of.get(endpoint_id)
        if entry is None:
            return None
        server, spill_over = entry
        return unavailable_reason(server.state, spill_over)

    def states(self) -> dict[str, dict[str, Any]]:
        """Per endpoint id, its server's state for listings and dashboards."""
        return {
            endpoint_id: server.state.to_json() for endpoint_id, (server, _) in self._of.items()
        }

    # -- polling

    async def poll(self) -> None:
        """Check every server once, side by side."""
        await asyncio.gather(*(self._poll_one(s) for s in self._servers.values()))

    async def _poll_one(self, server: _Server) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                state = await self._check(server)
        except (TimeoutError, Timeout):
            state = _timed_out(server.state, self.timeout_s)
        except (HttpClientError, ValueError) as exc:  # ValueError: a URL it can't call
            state = ServerState("down", f"unreachable: {type(exc).__name__}")
        state = replace(state, checked_at=time.monotonic())
        self._transition(server, state)
        server.state = state

    async def _check(self, server: _Server) -> ServerState:
        status, body = await self._get(server, "/health")
        health, detail = health_of(status, _json(body))
        if health != "ready":
            return ServerState(health, detail)
        previous = server.state
        total, slot_ctx = previous.total_slots, previous.slot_ctx
        if previous.status != "ready" or total is None:
            # Read once per start: a restarted server may have other slots or context.
            status, body = await self._get(server, "/props")
            total, slot_ctx = props_of(_json(body)) if status == 200 else (None, None)
            self._check_context(server, slot_ctx)
        state = ServerState("ready", "", total, slot_ctx)
        return await self._load(server, state)

    async def _load(self, server: _Server, state: ServerState) -> ServerState:
        """Busy slots from `/slots`, else `/metrics`; unknown when the server offers neither."""
        if server.load_source == "slots":
            try:
                body = await self._get_ok(server, "/slots")
            except _Unsupported:
                server.load_source = "metrics"
            else:
                found = busy_from_slots(_json(body)) if body is not None else None
                if found is not None:
                    busy, total = found
                    return replace(state, busy_slots=busy, total_slots=state.total_slots or total)
        if server.load_source == "metrics":
            try:
                body = await self._get_ok(server, "/metrics")
            except _Unsupported:
                server.load_source = "none"
                log.warning(
                    "llama.cpp server offers neither /slots nor /metrics: no spill-over",
                    extra={"server": server.root},
                )
            else:
                text = body.decode("utf-8", "replace") if body is not None else ""
                metrics = busy_from_metrics(text)
                if metrics is not None:
                    return replace(state, busy_slots=metrics[0], deferred=metrics[1])
        return state

    async def _get(self, server: _Server, path: str) -> tuple[int, bytes]:
        resp = await self._client.request(
            "GET", server.root + path, server.headers, timeouts=self._timeouts
        )
        try:
            return resp.status, await resp.read()
        finally:
            await resp.aclose()

    async def _get_ok(self, server: _Server, path: str) -> bytes | None:
        """The body of a 200; None for another answer; `_Unsupported` when the route is off."""
        status, body = await self._get(server, path)
        if status in (404, 501):
            raise _Unsupported(path)
        return body if status == 200 else None

    def _check_context(self, server: _Server, slot_ctx: int | None) -> None:
        if slot_ctx is None:
            return
        for endpoint_id, catalog_ctx in server.context_lengths.items():
            if catalog_ctx > slot_ctx:
                log.warning(
                    "catalog context_length exceeds the llama.cpp server's context per slot; "
                    "longer prompts will be refused with 400",
                    extra={"endpoint": endpoint_id, "catalog": catalog_ctx, "server": slot_ctx},
                )

    def _transition(self, server: _Server, state: ServerState) -> None:
        before = server.state.status
        if state.status == before:
            return
        level = logging.INFO if state.status == "ready" else logging.WARNING
        log.log(
            level,
            "llama.cpp server is %s",
            state.status,
            extra={"server": server.root, "previous": before, "detail": state.detail},
        )

    # -- lifecycle

    async def run(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception:
                log.exception("llama.cpp health poll failed unexpectedly; continuing")
            await asyncio.sleep(self.interval_s)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The background loop (for readiness: a loop that ended is reported)."""
        return self._task

    async def start(self) -> None:
        """Check every server once, then keep checking in the background."""
        if not self._servers:
            return
        await self.poll()
        self._task = asyncio.create_task(self.run(), name="llamacpp-monitor")

    async def aclose(self) -> None:
        await stop_task(self._task)
        self._task = None


def _json(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None


def _timed_out(previous: ServerState, timeout_s: float) -> ServerState:
    """No full answer in time: a ready server is busy past answering; otherwise it is down."""
    if previous.status == "ready" and previous.total_slots is not None:
        return replace(
            previous,
            busy_slots=previous.total_slots,
            detail=f"no load report within {timeout_s:g}s",
        )
    return ServerState("down", f"no answer within {timeout_s:g}s")
