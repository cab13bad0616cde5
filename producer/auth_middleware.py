"""Bearer-token check for every route except the public probes, the API description, and routes that
authenticate requests themselves (GitHub webhooks: an HMAC signature, since GitHub cannot send our token)."""

from __future__ import annotations

from aiohttp import web

from producer.errors import ApiError, Handler
from producer.state import TOKENS

__all__ = ["PUBLIC_PATHS", "SELF_AUTHENTICATED_PATHS", "auth_middleware"]

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
# Each of these verifies its own credential; see producer/github/routes.py (X-Hub-Signature-256).
SELF_AUTHENTICATED_PATHS = frozenset({"/webhooks/github"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="devops-metrics"'}


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (
        request.path in PUBLIC_PATHS
        or request.path in SELF_AUTHENTICATED_PATHS
        or request.method == "OPTIONS"
    ):
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
