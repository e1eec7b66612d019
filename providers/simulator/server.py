"""The simulated fleet as a running HTTP server: start it in-process (tests) or run it (CLI).

Owns the listening socket and open connections; behaviour lives in `provider` and `routes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from types import TracebackType
from typing import Any

from providers.simulator.profile import Profile, ProfileError, check_name
from providers.simulator.protocol import HttpConnection
from providers.simulator.provider import SimulatedProvider
from providers.simulator.routes import FleetRoutes
from providers.simulator.stats import ProviderStats

logger = logging.getLogger(__name__)


class Fleet:
    """A running simulator: one HTTP server, many providers under `/{provider}/v1`."""

    def __init__(
        self,
        server: asyncio.Server,
        providers: dict[str, SimulatedProvider],
        connections: set[HttpConnection],
    ) -> None:
        self._server = server
        self._providers = providers
        self._connections = connections
        host, port = server.sockets[0].getsockname()[:2]
        self.host: str = host
        self.port: int = port
        self.base_url = f"http://{_url_host(host)}:{port}"

    def url_for(self, provider: str) -> str:
        """The OpenAI base URL of one provider: `{base_url}/{provider}/v1`."""
        if provider not in self._providers:
            raise KeyError(f"unknown provider {provider!r}")
        return f"{self.base_url}/{provider}/v1"

    @property
    def providers(self) -> list[str]:
        return list(self._providers)

    def profile(self, name: str) -> Profile:
        return self._providers[name].profile

    async def set_profile(self, name: str, **changes: Any) -> Profile:
        """Change a provider's profile now (`failures` may be partial); raise `ProfileError`."""
        return self._providers[name].update(changes)

    def stats(self) -> dict[str, ProviderStats]:
        """A snapshot of every provider's counters."""
        return {name: provider.stats.snapshot() for name, provider in self._providers.items()}

    def reset(self) -> None:
        """Zero the counters, clear the prompt caches, replay every seed from its start."""
        for provider in self._providers.values():
            provider.reset()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def close(self) -> None:
        """Stop listening and drop every open connection (hung ones included)."""
        self._server.close()
        for connection in list(self._connections):
            connection.reset()
        await self._server.wait_closed()

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def start_fleet(
    profiles: dict[str, Profile], host: str = "127.0.0.1", port: int = 0
) -> Fleet:
    """Serve `profiles` on host:port (0 picks a free port) in the running event loop."""
    providers = {check_name(name): SimulatedProvider(name, p) for name, p in profiles.items()}
    if not providers:
        raise ProfileError("a fleet needs at least one provider")
    connections: set[HttpConnection] = set()
    routes = FleetRoutes(providers)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpConnection(routes, connections), host, port, backlog=1024
    )
    return Fleet(server, providers, connections)


def run_fleet(profiles: dict[str, Profile], host: str = "127.0.0.1", port: int = 9100) -> None:
    """Serve `profiles` until SIGINT or SIGTERM, on uvloop when it is installed."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve_until_stopped(profiles, host, port))


async def _serve_until_stopped(profiles: dict[str, Profile], host: str, port: int) -> None:
    fleet = await start_fleet(profiles, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(sig, stop.set)
    logger.info(
        "simulated fleet listening",
        extra={"base_url": fleet.base_url, "providers": fleet.providers},
    )
    logger.info("providers at %s/{%s}/v1", fleet.base_url, ",".join(fleet.providers))
    try:
        await stop.wait()
    finally:
        await fleet.close()
        logger.info("simulated fleet stopped")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
