"""TLS settings from the catalog: an endpoint with its own CA bundle is reached over https with
a certificate the system doesn't trust; without it the same upstream is refused."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import embedded_settings
from tests.integration.test_http1_client import tls_files  # noqa: F401 (a fixture)
from tests.integration.test_upstream_cut import BODY, good
from tests.support.gateway import run_gateway, write_catalog
from tests.support.scripted_http import scripted_server


@pytest.mark.parametrize("transport", ["http1", "httpx"])
async def test_an_endpoint_trusts_its_own_ca_bundle(
    tmp_path: Path,
    tls_files: tuple[Path, Path],  # noqa: F811
    transport: str,
) -> None:
    cert, key = tls_files
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    async with scripted_server(server_side, host="localhost") as upstream:
        good(upstream)
        own = f'ca_bundle = "{cert}"\n'
        catalog = write_catalog(
            tmp_path / "c.toml",
            {"trusting": upstream.url("/v1"), "untrusting": upstream.url("/v1")},
            transports={"trusting": transport, "untrusting": transport},
        )
        text = catalog.read_text().replace(
            'provider = "trusting"', 'provider = "trusting"\n' + own.strip()
        )
        catalog.write_text(text)
        async with (
            run_gateway(embedded_settings(tmp_path, catalog)) as gw,
            httpx.AsyncClient(timeout=30) as client,
        ):
            trusted = await client.post(
                f"{gw.v1}/chat/completions",
                json={**BODY, "provider": {"only": ["trusting"]}},
            )
            refused = await client.post(
                f"{gw.v1}/chat/completions",
                json={**BODY, "provider": {"only": ["untrusting"]}},
            )
    assert trusted.status_code == 200, trusted.text
    assert refused.status_code == 502
    assert len(upstream.requests) == 1
