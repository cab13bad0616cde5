"""GET /dashboard: one self-contained page (no CDN) that shows GET /metrics. The page holds no data, so it
and its assets are public (producer/auth_middleware.py); the page asks for the token and sends it on
every /metrics call. The chart library (uPlot) is vendored under static/, see static/README.md."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _File:
    """A page file held in memory (a few small files): served with its ETag, a 304 when the browser
    has it. Not ``web.FileResponse``: its 412 and 416 answers are empty, not the API's JSON errors."""

    body: bytes
    content_type: str
    etag: str

    @classmethod
    def load(cls, path: Path) -> _File:
        body = path.read_bytes()
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return cls(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:20]}"')

    def answer(self, request: web.Request, headers: dict[str, str]) -> web.Response:
        """200, or 304 for a matching If-None-Match, or a JSON 412 for an If-Match that does not match.
        A Range is ignored (the whole file, as RFC 9110 allows); If-Unmodified-Since is ignored as the
        files carry no modification date."""
        tagged = {**headers, "ETag": self.etag}
        if_match = request.headers.get("If-Match")
        if if_match is not None and not _matches(if_match, self.etag):
            raise ApiError(412, "If-Match names another version of this file", error="precondition_failed")
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None and _matches(if_none_match, self.etag):
            return web.Response(status=304, headers=tagged)
        text = self.content_type.startswith("text/") or self.content_type.endswith("javascript")
        return web.Response(
            body=self.body, content_type=self.content_type, charset="utf-8" if text else None, headers=tagged
        )


def _matches(header: str, etag: str) -> bool:
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


_PAGE = _File.load(_HERE / "index.html")


async def dashboard(request: web.Request) -> web.Response:
    return _PAGE.answer(request, _HEADERS)


async def root(request: web.Request) -> web.Response:
    """``/`` is where a person opens the gateway: send them to the dashboard (the API has no root)."""
    raise web.HTTPFound(DASHBOARD_PATH, headers={"Cache-Control": "no-cache"})


# The page's assets, listed once: a request names one of them or gets the API's JSON 404 (aiohttp's
# static route answers a missing file with an empty octet-stream 404 that no middleware sees).
_ASSETS = {path.name: _File.load(path) for path in (_HERE / "static").iterdir() if path.is_file()}
_ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    file = _ASSETS.get(name)
    if file is None:
        raise ApiError(404, f"no dashboard asset named {name[:100]!r}")
    return file.answer(request, _ASSET_HEADERS)


def setup_dashboard(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get(DASHBOARD_PATH, dashboard)
    app.router.add_get(STATIC_PREFIX + "{name}", asset)
