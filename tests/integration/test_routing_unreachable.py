"""An enabled endpoint nobody listens on: the client hears so at once, with the generation id."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.conftest import embedded_settings
from tests.support.gateway import free_port, run_gateway, write_catalog

BODY = {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "hi"}]}


async def test_a_lone_unpinned_endpoint_that_is_down_fails_fast_with_headers(
    tmp_path: Path,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    catalog = write_catalog(tmp_path / "c.toml", {"local": dead})
    async with run_gateway(embedded_settings(tmp_path, catalog)) as gw:
        # A 10 s client timeout: a gateway waiting out the open breaker would time out here.
        async with httpx.AsyncClient(timeout=10) as client:
            statuses = []
            for _ in range(8):  # enough to open the breaker, then some while it is open
                resp = await client.post(f"{gw.v1}/chat/completions", json=BODY)
                statuses.append(resp.status_code)
                error = resp.json()["error"]
                assert resp.headers["x-generation-id"].startswith("gen-")
                assert resp.headers["x-route-mode"] == "balanced"
                assert set(error) >= {"code", "message", "metadata"}
    assert statuses[0] == 502
    assert all(s in (502, 503) for s in statuses)
    assert statuses[-1] == 503  # the breaker took the endpoint out of rotation: no wait


async def test_connect_error_names_the_url_it_tried(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    catalog = write_catalog(tmp_path / "c.toml", {"local": dead})
    async with (
        run_gateway(embedded_settings(tmp_path, catalog)) as gw,
        httpx.AsyncClient(timeout=10) as client,
    ):
        resp = await client.post(f"{gw.v1}/chat/completions", json=BODY)
    assert resp.status_code == 502
    assert dead in resp.json()["error"]["message"]
