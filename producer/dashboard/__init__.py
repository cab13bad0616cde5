"""GET /dashboard: one self-contained page (no CDN) that shows GET /metrics. The page holds no data, so it
and its assets are public (producer/auth_middleware.py); the page asks for the token and sends it on
every /metrics call. The chart library (uPlot) is vendored under static/, see static/README.md."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from producer.errors import ApiError

__all__ = ["DASHBOARD_PATH", "STATIC_PREFIX", "setup_dashboard"]

DASHBOARD_PATH = "/dashboard"
STATIC_PREFIX = "/dashboard/static/"
_HERE = Path(__file__).parent
# Everything comes from this origin; no inline script or style, no framing.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(_HERE / "index.html", headers=_HEADERS)


async def root(request: web.Request) -> web.Response:
    """``/`` is where a person opens the gateway: send them to the dashboard (the API has no root)."""
    raise web.HTTPFound(DASHBOARD_PATH, headers={"Cache-Control": "no-cache"})


# The page's assets, listed once: a request names one of them or gets the API's JSON 404 (aiohttp's
# static route answers a missing file with an empty octet-stream 404 that no middleware sees).
_ASSETS = {path.name: path for path in (_HERE / "static").iterdir() if path.is_file()}


async def asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    path = _ASSETS.get(name)
    if path is None:
        raise ApiError(404, f"no dashboard asset named {name[:100]!r}")
    return web.FileResponse(path, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


def setup_dashboard(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get(DASHBOARD_PATH, dashboard)
    app.router.add_get(STATIC_PREFIX + "{name}", asset)
