"""Bearer-token check for every route except the public probes, the API description, the dashboard page
and its static assets (they hold no data; the page sends the token to /metrics), and routes that
authenticate requests themselves (GitHub webhooks: an HMAC signature, since GitHub cannot send our token)."""

from __future__ import annotations

import posixpath

from aiohttp import web

from producer.errors import ApiError, Handler
from producer.state import TOKENS

__all__ = ["PUBLIC_PATHS", "PUBLIC_PREFIXES", "SELF_AUTHENTICATED_PATHS", "auth_middleware", "is_public"]

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/dashboard"})
# Public path prefixes (static files only). A path matches only in normalised form, so no
# "..", "." or "//" segment can step from a public prefix to a protected route.
PUBLIC_PREFIXES = ("/dashboard/static/",)
# Each of these verifies its own credential; see producer/github/routes.py (X-Hub-Signature-256).
SELF_AUTHENTICATED_PATHS = frozenset({"/webhooks/github"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="devops-metrics"'}


def is_public(path: str) -> bool:
    if path in PUBLIC_PATHS:
        return True
    return path.startswith(PUBLIC_PREFIXES) and posixpath.normpath(path) == path


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_public(request.path) or request.path in SELF_AUTHENTICATED_PATHS or request.method == "OPTIONS":
        return await handler(request)
    tokens = request.app[TOKENS]
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(401, "send 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    if not tokens.loaded:
        raise ApiError(503, "no token loaded yet; retry shortly", headers={"Retry-After": "2"})
    if not tokens.is_valid(presented.strip()):
        raise ApiError(401, "token is not valid", headers=_CHALLENGE)
    return await handler(request)
