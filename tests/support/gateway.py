"""Run a real gateway (uvicorn + the app factory) inside the test's event loop."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from litestar import Litestar

from gateway.app import create_app
from gateway.embedded import serve_in_loop
from gateway.resources import Resources, resources_in
from gateway.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RunningGateway:
    url: str  # http://127.0.0.1:PORT
    app: Litestar
    settings: Settings

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    @property
    def resources(self) -> Resources:
        return resources_in(self.app.state)


@asynccontextmanager
async def run_gateway(settings: Settings) -> AsyncIterator[RunningGateway]:
    port = free_port()
    settings.server.port = port
    app = create_app(settings)
    async with serve_in_loop(app, "127.0.0.1", port, settings.server) as url:
        yield RunningGateway(url, app, settings)


def write_catalog(
    path: Path,
    endpoints: dict[str, str],
    *,
    model: str = "openai/gpt-oss-20b",
    exacto: str | None = None,
    extra: str = "",
    transports: dict[str, str] | None = None,
) -> Path:
    """A catalog TOML for one model; `endpoints` maps provider -> base_url; `transports` maps
    provider -> the catalog's `transport` (http1 when not named).

    Prices rise with position so tests know the cheapest: the first is cheapest.
    """
    lines = [f'[models."{model}"]', 'name = "Test model"', "context_length = 131072"]
    if exacto:
        lines.append(f'exacto = "{exacto}"')
    for i, (provider, base_url) in enumerate(endpoints.items()):
        lines += [
            "",
            "[[endpoints]]",
            f'model = "{model}"',
            f'provider = "{provider}"',
            f'base_url = "{base_url}"',
            'upstream_model = "gpt-oss-20b"',
            "context_length = 131072",
            'quantization = "mxfp4"',
            'supported_parameters = ["max_tokens", "temperature", "tools", "reasoning"]',
            f'price = {{ prompt = "0.0{i + 1}", completion = "0.{i + 1}", '
            f'cache_read = "0.00{i + 1}" }}',
        ]
        if transports and provider in transports:
            lines.append(f'transport = "{transports[provider]}"')
    path.write_text("\n".join(lines) + "\n" + extra)
    return path
