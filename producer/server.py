"""How the gateway is served: the one function that builds its aiohttp runner with the production limits
(``producer/limits.py``), used by ``python -m producer``, the gunicorn workers of
``python -m producer.multiworker``, ``make run`` (devstack) and the tests.

Its connections start on the raw event routes (producer/fast_http.py): ``POST /process-event`` and
``POST /events`` answered from the socket with the same checks and handlers as the app's routes, at a
fraction of aiohttp's cost per request (docs/performance.md). The first request that is anything else
hands the connection to aiohttp, which serves it from then on. When the app gains another middleware
or a response-prepare signal, every connection is aiohttp's from the start.

The runner also replaces aiohttp's answer to requests its HTTP parser refuses (a header over 8,190
bytes, too many headers, a malformed request line). aiohttp logs those at ERROR with the offending
bytes and echoes the first ~100 of them in a plain-text 400: an ``Authorization`` header that is too
long would put the start of its token in the logs and in the response. Here the answer is our JSON
error body and the log line names only the status, the kind of error and the peer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from devops_core.settings import Settings
from producer.app import create_app
from producer.auth_middleware import auth_middleware
from producer.errors import error_middleware, json_error
from producer.fast_http import RawEventConnection
from producer.limits import server_kwargs

__all__ = ["GatewayRunner", "gateway_runner", "serves_raw_routes", "start_gateway"]

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
    raw_routes: web.Application | None = None  # the app whose event routes connections serve raw

    def __call__(self) -> asyncio.Protocol:  # type: ignore[override]
        if self.raw_routes is None:
            return self._aiohttp_handler()
        return RawEventConnection(self, self.raw_routes, self._aiohttp_handler)

    def _aiohttp_handler(self) -> RequestHandler:
        return _GatewayRequestHandler(self, loop=self._loop, **self._kwargs)


def serves_raw_routes(app: web.Application) -> bool:
    """Whether the raw event routes do all that aiohttp's would: only while the app's middlewares are
    the two whose checks they share and no response signal would be skipped."""
    return tuple(app.middlewares) == (error_middleware, auth_middleware) and not app.on_response_prepare


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer parser errors without echoing the request, and serve
    the event routes straight from the socket (producer/fast_http.py)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds the Server itself (Application._make_handler); only its protocol factory
        # changes, so the instance keeps every setting.
        server.__class__ = _GatewayServer
        if serves_raw_routes(self.app):
            server.raw_routes = self.app  # type: ignore[attr-defined]
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
