"""Bearer-token check for every route except the public probes, the API description, the dashboard page
and its static assets (they hold no data; the page sends the token to /metrics), and routes that
authenticate requests themselves (GitHub webhooks: an HMAC signature, since GitHub cannot send our token).

A request that passes also passes the per-token rate limit (see ``producer.rate_limit``).
"""

from __future__ import annotations

import logging
import posixpath

from aiohttp import web

from producer.errors import ApiError, Handler
from producer.rate_limit import RateLimiter, token_key
from producer.state import CALLER, LOG_THROTTLE, RATE_LIMITER, TOKENS

__all__ = [
    "PUBLIC_PATHS",
    "PUBLIC_PREFIXES",
    "SELF_AUTHENTICATED_PATHS",
    "auth_middleware",
    "authenticate",
    "bearer_caller",
    "charge",
    "is_public",
]

logger = logging.getLogger(__name__)

# "/" only redirects to the dashboard page (producer/dashboard).
PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/openapi.json", "/dashboard"})
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


def authenticate(request: web.Request) -> None:
    """The bearer-token check and the first event's rate-limit charge (ApiError 401/429/503); nothing
    for public and self-authenticated routes. The raw event routes (producer/fast_http.py) do the same
    with ``bearer_caller`` and ``charge``."""
    if is_public(request.path) or request.path in SELF_AUTHENTICATED_PATHS:
        return
    caller = bearer_caller(request.app, request.headers.get("Authorization", ""))
    request[CALLER] = caller
    charge(request.app, caller, 1, request.path)


def bearer_caller(app: web.Application, header: str) -> str:
    """The caller's rate-limit key for an ``Authorization`` header value (ApiError 401/503). The
    aiohttp routes and the raw event routes (producer/fast_http.py) both check tokens here."""
    tokens = app[TOKENS]
    scheme, _, presented = header.partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise ApiError(401, "send 'Authorization: Bearer <token>'", headers=_CHALLENGE)
    if not presented.isascii():
        # aiohttp hands over undecodable header bytes as surrogates; a bearer token is ASCII (RFC 6750).
        raise ApiError(401, "the bearer token must be ASCII", headers=_CHALLENGE)
    if not tokens.loaded:
        raise ApiError(503, "no token loaded yet; retry shortly", headers={"Retry-After": "2"})
    if not tokens.is_valid(presented):
        raise ApiError(401, "token is not valid", headers=_CHALLENGE)
    return token_key(presented)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    authenticate(request)
    return await handler(request)


def charge(app: web.Application, caller: str, cost: int, path: str, *, charged: int = 0) -> None:
    """Charge ``cost`` events to the caller's token (``charged`` taken already for this request); a
    429 with Retry-After when over the limit."""
    limiter = app[RATE_LIMITER]
    wait = limiter.take(caller, cost, charged=charged)
    if wait:
        retry_after = RateLimiter.retry_after(wait)
        if refused := app[LOG_THROTTLE].due(f"rate limited {caller}"):
            logger.warning(
                "rate limited",
                extra={"token_key": caller, "path": path, "cost": cost, "wait_s": wait, "refused": refused},
            )
        raise ApiError(
            429,
            f"rate limit of {limiter.rate:g} events/s per token exceeded; retry after {retry_after} s",
            headers={"Retry-After": retry_after},
        )
