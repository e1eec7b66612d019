"""What `gateway serve` prints before it starts: the catalog's endpoints, enabled or why not,
and whether each enabled one answers a TCP connect now. A first-run aid, not a health check."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from providers.catalog import Catalog, Endpoint

CONNECT_TIMEOUT_S = 1.0  # all endpoints are probed at once: start-up waits at most this long
HINT = (
    "no enabled endpoint answers: set a provider's API key (e.g. GROQ_API_KEY), start "
    "llama-server (see README), or try `gateway serve --simulate` (simulated providers)"
)


async def reachable(endpoint: Endpoint, wait_s: float = CONNECT_TIMEOUT_S) -> str:
    """`yes`, or `no: <why>`: whether a TCP connection to the endpoint's host opens in time."""
    parts = urlsplit(endpoint.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(wait_s):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return f"no: no answer in {wait_s:g}s"
    except OSError as exc:
        return f"no: {exc.strerror or type(exc).__name__}"
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return "yes"


async def endpoint_table(catalog: Catalog) -> str:
    """One row per endpoint: model, provider, kind, status, reachable, URL; then a hint when
    nothing enabled answers."""
    endpoints = catalog.endpoints
    enabled = [catalog.status[ep.id].enabled for ep in endpoints]
    probes = await asyncio.gather(
        *(reachable(ep) for ep, on in zip(endpoints, enabled, strict=True) if on)
    )
    answers = iter(probes)
    rows = [("model", "provider", "kind", "status", "reachable", "url")]
    any_up = False
    for ep, on in zip(endpoints, enabled, strict=True):
        status = "enabled" if on else f"disabled: {catalog.status[ep.id].reason}"
        answer = next(answers) if on else "-"
        any_up = any_up or answer == "yes"
        rows.append((ep.model, ep.provider, ep.kind, status, answer, ep.url))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for i, row in enumerate(rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)] + [row[-1]]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  ---")
    if not any_up:
        lines.append(HINT)
    return "\n".join(lines)
