"""`GET /dashboard` and its assets: files shipped in the package, read once, served with a
strict Content-Security-Policy (the page runs only its own script and talks only to us).

No front-end build step and no template: the page reads everything through the stats API with
the admin token the operator types in (kept in `sessionStorage`).
"""

from __future__ import annotations

from functools import cache
from importlib import resources as package_files

from litestar import Response, get
from litestar.params import FromPath

from gateway.errors import NotFound

ASSETS = {  # name -> media type; nothing else under /dashboard/assets is served
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "charts.js": "text/javascript",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the login link may carry the token in its fragment
    "Cache-Control": "no-cache",
}


@cache
def _asset(name: str) -> bytes:
    return package_files.files("gateway.dashboard").joinpath("static", name).read_bytes()


@get("/dashboard", sync_to_thread=False, include_in_schema=False)
def dashboard() -> Response[bytes]:
    return Response(
        _asset("index.html"), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS
    )


@get("/dashboard/assets/{name:str}", sync_to_thread=False, include_in_schema=False)
def dashboard_asset(name: FromPath[str]) -> Response[bytes]:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no dashboard asset {name!r}", metadata={"asset": name})
    return Response(
        _asset(name), media_type=f"{media_type}; charset=utf-8", headers=SECURITY_HEADERS
    )
