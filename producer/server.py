"""How the gateway is served: the one function that builds its aiohttp runner with the production limits
(``producer/limits.py``), used by ``python -m producer``, the gunicorn workers of
``python -m producer.multiworker``, ``make run`` (devstack) and the tests.

The runner serves the two event routes, ``POST /process-event`` and ``POST /events``, by a direct call:
the same handler behind the same checks as the app's middlewares (``authenticate`` and
``error_answer``, which the middlewares call too), without aiohttp's router, match-info object and
middleware chain, which cost about a fifth of a small request's CPU (docs/performance.md). Every other
request, and these when a request carries ``Expect`` or the app gains another middleware or a
response-prepare signal, goes through ``Application._handle`` as usual.

The runner also replaces aiohttp's answer to requests its HTTP parser refuses (a header over 8,190
bytes, too many headers, a malformed request line). aiohttp logs those at ERROR with the offending
bytes and echoes the first ~100 of them in a plain-text 400: an ``Authorization`` header that is too
long would put the start of its token in the logs and in the response. Here the answer is our JSON
error body and the log line names only the status, the kind of error and the peer.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_urldispatcher import UrlMappingMatchInfo

from devops_core.settings import Settings
from producer.app import create_app
from producer.auth_middleware import auth_middleware, authenticate
from producer.errors import Handler, error_answer, error_middleware, json_error
from producer.limits import server_kwargs

__all__ = ["FAST_ROUTES", "GatewayRunner", "gateway_runner", "start_gateway"]

logger = logging.getLogger(__name__)

_PARSER_ERRORS = {
    400: ("bad_request", "the request could not be parsed (request line or headers too long or malformed)"),
    413: ("payload_too_large", "the request is too large"),
    431: ("request_header_fields_too_large", "the request headers are too large"),
}


class _GatewayRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Refusals of the HTTP parser: JSON, without a byte of what the client sent (it may hold a
        token), logged as one line without the exception's text. Everything else as aiohttp does it
        (the app's own errors never get here: producer.errors answers them)."""
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        logger.warning(
            "request refused by the HTTP parser",
            extra={"status": status, "reason": type(exc).__name__, "remote": request.remote},
        )
        if request.writer.output_size > 0:
            raise ConnectionError("response already sent, cannot send the error")
        error, detail = _PARSER_ERRORS.get(status, ("bad_request", "the request could not be parsed"))
        return json_error(status, error, detail, close=True)


class _GatewayServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _GatewayRequestHandler(self, loop=self._loop, **self._kwargs)


FAST_ROUTES = frozenset({"/process-event", "/events"})  # POST only


class _Dispatch:
    """The server's request handler: the event routes called directly, everything else by the app."""

    def __init__(self, app: web.Application) -> None:
        self._handle = app._handle
        self._fast: dict[str, tuple[UrlMappingMatchInfo, Handler]] = {}
        if tuple(app.middlewares) != (error_middleware, auth_middleware) or app.on_response_prepare:
            return  # the direct call would skip something the app does: serve everything the usual way
        for route in app.router.routes():
            resource = route.resource
            if route.method == hdrs.METH_POST and resource is not None and resource.canonical in FAST_ROUTES:
                # Static routes have an empty match dict: one frozen match info serves every request.
                match = UrlMappingMatchInfo({}, route)
                match.add_app(app)
                match.freeze()
                self._fast[resource.canonical] = (match, route.handler)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        fast = self._fast.get(request.path) if request.method == hdrs.METH_POST else None
        if fast is None or hdrs.EXPECT in request.headers:
            return await self._handle(request)  # type: ignore[arg-type]
        assert isinstance(request, web.Request)
        request._match_info, handler = fast  # what the router would have found (request.app works)
        try:
            authenticate(request)
            return await handler(request)
        except Exception as exc:
            return error_answer(request, exc)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer parser errors without echoing the request, and whose
    server calls the event routes directly."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds the Server itself (Application._make_handler); only its protocol factory and
        # its request handler change, so the instance keeps every setting.
        server.__class__ = _GatewayServer
        server.request_handler = _Dispatch(self.app)
        return server


def gateway_runner(
    settings: Settings, *, shutdown_timeout: float = 15.0, app: web.Application | None = None, **kwargs: Any
) -> GatewayRunner:
    """The gateway's runner with the production limits; ``app`` defaults to ``create_app(settings)``
    (the in-memory benchmark passes its own)."""
    return GatewayRunner(
        app if app is not None else create_app(settings),
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        **server_kwargs(settings),
        **kwargs,
    )


async def start_gateway(
    settings: Settings,
    host: str,
    port: int,
    *,
    shutdown_timeout: float = 15.0,
    app: web.Application | None = None,
) -> GatewayRunner:
    """Build, set up and start the gateway on ``host:port``; stop it with ``await runner.cleanup()``
    (stops accepting, lets in-flight requests finish, drains the batcher)."""
    runner = gateway_runner(settings, shutdown_timeout=shutdown_timeout, app=app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
