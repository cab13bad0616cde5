"""Every error leaves the gateway as JSON ``{"error": ..., "detail": ...}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from producer.api_models import ErrorBody

__all__ = ["ApiError", "error_answer", "error_json", "error_middleware", "internal_error", "json_error"]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    412: "precondition_failed",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """An answer for the client; ``close`` drops the connection after it (e.g. a half-read body)."""

    def __init__(
        self,
        status: int,
        detail: Any,
        *,
        error: str | None = None,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error or _CODES.get(status, "error")
        self.detail = detail
        self.headers = headers or {}
        self.close = close


def error_json(error: str, detail: Any) -> bytes:
    """The body of every error answer, on aiohttp's routes and on the raw event routes alike."""
    return ErrorBody(error=error, detail=detail).model_dump_json().encode()


def json_error(
    status: int, error: str, detail: Any, headers: dict[str, str] | None = None, *, close: bool = False
) -> web.Response:
    body = error_json(error, detail)
    response = web.Response(
        status=status, body=body, content_type="application/json", charset="utf-8", headers=headers
    )
    if close:
        response.force_close()
    return response


def internal_error(exc: BaseException, path: str) -> ApiError:
    """An exception no handler expected: logged with its traceback, answered as a bare 500 (its text
    may hold anything). aiohttp's routes (``error_answer``) and the raw event routes
    (producer/fast_http.py) both answer it so."""
    logger.error("unhandled error", exc_info=exc, extra={"path": path})
    return ApiError(500, "unexpected server error; it has been logged", error="internal_error")


def error_answer(request: web.BaseRequest, exc: Exception) -> web.StreamResponse:
    """The JSON answer to an exception raised by a handler (re-raised when it is not an error: a
    redirect), for ``error_middleware``."""
    if isinstance(exc, ApiError):
        return json_error(exc.status, exc.error, exc.detail, exc.headers, close=exc.close)
    if isinstance(exc, ConnectionResetError):  # the client left mid-body: nobody reads an answer
        logger.info("client disconnected before its body arrived", extra={"path": request.path})
        return json_error(400, "bad_request", "the connection closed before the body arrived", close=True)
    if isinstance(exc, RequestPayloadError | HttpProcessingError):
        # The body's framing is broken (a bad chunk size): answered, and the stream marked ended so
        # that aiohttp does not read on into the same error after the answer and log it as unhandled.
        logger.info("request body refused", extra={"path": request.path, "reason": type(exc).__name__})
        request.content.feed_eof()
        return json_error(400, "bad_request", "the request body is malformed (its framing)", close=True)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return json_error(
            413, "payload_too_large", f"request body is larger than {request.client_max_size} bytes"
        )
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after"}}
        return json_error(exc.status, _CODES.get(exc.status, "error"), exc.reason, headers)
    error = internal_error(exc, request.path)
    return json_error(error.status, error.error, error.detail)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:
        return error_answer(request, exc)
