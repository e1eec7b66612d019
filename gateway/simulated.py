"""`gateway serve --simulate`: the simulated fleet and a gateway routed to it, in one process.

The fleet listens on a free loopback port of its own; the catalog served is the configured one
with every endpoint of a simulated provider pointed at the fleet (keyless). Not for production.
"""

from __future__ import annotations

import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from gateway.settings import Settings
from gateway.startup import endpoint_table
from providers.catalog import DEFAULT_CATALOG, load_catalog
from providers.simulator.profile import default_fleet
from providers.simulator.server import Fleet, start_fleet


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return msgspec.json.encode(value).decode()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def simulated_catalog(fleet: Fleet, path: Path, source: Path | None = None) -> Path:
    """`source` (the shipped catalog by default) with every endpoint whose provider the fleet
    simulates pointed at it, keyless and spoken to as OpenAI-compatible; others are left out."""
    raw = tomllib.loads((source or DEFAULT_CATALOG).read_text(encoding="utf-8"))
    lines: list[str] = []
    for model_id, fields in raw["models"].items():
        lines.append(f"[models.{_toml_value(model_id)}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in fields.items()]
    for endpoint in raw["endpoints"]:
        if endpoint["provider"] not in fleet.providers:
            continue
        endpoint = {**endpoint, "base_url": fleet.url_for(endpoint["provider"]), "kind": "openai"}
        endpoint.pop("api_key_env", None)
        lines += ["", "[[endpoints]]"] + [f"{k} = {_toml_value(v)}" for k, v in endpoint.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def serve_simulated(settings: Settings) -> None:
    """Start the fleet, print the endpoint table, serve until a signal stops uvicorn."""
    import uvicorn

    from gateway.app import create_app

    fleet = await start_fleet(default_fleet(), host="127.0.0.1", port=0)
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-simulate-") as tmp:
            settings.catalog.catalog = simulated_catalog(
                fleet, Path(tmp) / "catalog.toml", settings.catalog.catalog
            )
            table = await endpoint_table(load_catalog(settings.catalog.catalog))
            sys.stdout.write(
                f"gateway serve --simulate: simulated providers at {fleet.base_url}/<provider>/v1"
                f" (control API: {fleet.base_url}/_control/providers)\n{table}\n"
            )
            sys.stdout.flush()
            server = settings.server
            config = uvicorn.Config(
                create_app(settings),
                host=server.host,
                port=server.port,
                http="httptools",
                log_level=server.log_level,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=server.shutdown_timeout_s,
            )
            await uvicorn.Server(config).serve()
    finally:
        await fleet.close()
