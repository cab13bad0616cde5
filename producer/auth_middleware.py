"""Bearer-token check for every route except the public probes, the API description, and routes that
authenticate requests themselves (GitHub webhooks: an HMAC signature, since GitHub cannot send our token).

A request that passes also passes the per-token rate limit (see ``producer.rate_limit``).
"""

from __future__ import annotations

import logging

from aiohttp import web

from producer.errors import ApiError, Handler
from producer.rate_limit import RateLimiter, token_key
from producer.state import CALLER, RATE_LIMITER, TOKENS

__all__ = ["PUBLIC_PATHS", "SELF_AUTHENTICATED_PATHS", "auth_middleware", "charge"]

logger = logging.getLogger(__name__)

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
    request[CALLER] = token_key(presented.strip())
    charge(request, 1)
    return await handler(request)


def charge(request: web.Request, cost: int) -> None:
    """Charge ``cost`` events to the request's token; a 429 with Retry-After when over the limit."""
    wait = request.app[RATE_LIMITER].take(request[CALLER], cost)
    if wait:
        retry_after = RateLimiter.retry_after(wait)
        logger.warning(
            "rate limited",
            extra={"token_key": request[CALLER], "path": request.path, "cost": cost, "wait_s": wait},
        )
        raise ApiError(
            429,
            f"rate limit of {request.app[RATE_LIMITER].rate:g} events/s per token exceeded; "
            f"retry after {retry_after} s",
            headers={"Retry-After": retry_after},
        )
