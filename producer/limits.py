"""Bounds on what one HTTP client can make the gateway hold, for ``run_app`` and tests alike.

- Headers: aiohttp's parser refuses a request line or header field above ``MAX_LINE_SIZE`` /
  ``MAX_FIELD_SIZE`` bytes and more than ``MAX_HEADERS`` headers (400/431), so one connection buffers
  at most about ``MAX_HEADERS * MAX_FIELD_SIZE`` bytes of headers.
- Slow headers: aiohttp arms its keep-alive timer when a connection opens, so a client that has not
  finished its headers within ``keepalive_timeout`` is disconnected.
- Slow bodies: aiohttp has no body timeout; ``read_body`` puts a deadline on reading it (408), and
  ``client_max_size`` (the app's MAX_BODY_BYTES) caps its size (413).
- Compressed bodies: none. aiohttp would inflate a ``Content-Encoding`` body as it arrives (for the
  anonymous webhook route too: a decompression bomb to parse before the signature is checked), and
  no client of this API compresses (GitHub, the CI scripts); ``refuse_content_encoding`` answers 415.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from devops_core.settings import Settings
from producer.errors import ApiError

__all__ = [
    "MAX_FIELD_SIZE",
    "MAX_HEADERS",
    "MAX_LINE_SIZE",
    "body_deadline",
    "read_body",
    "refuse_content_encoding",
    "server_kwargs",
]

MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 64
# After an error answered before the body was read (413, 408), read and drop the rest this long
# so the client sees the answer, then close.
LINGERING_SECONDS = 2.0


def server_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``web.run_app`` / ``AppRunner`` / ``TestServer`` (one source of truth)."""
    return {
        "auto_decompress": False,  # bodies are read as sent; a Content-Encoding is refused (415)
        "max_line_size": MAX_LINE_SIZE,
        "max_field_size": MAX_FIELD_SIZE,
        "max_headers": MAX_HEADERS,
        "keepalive_timeout": settings.keepalive_timeout_seconds,
        "lingering_time": LINGERING_SECONDS,
    }


def refuse_content_encoding(request: web.BaseRequest) -> None:
    """ApiError 415 for a body with a ``Content-Encoding`` other than identity (before it is read)."""
    encoding = request.headers.get("Content-Encoding")
    if encoding is not None and encoding.strip().lower() != "identity":
        raise ApiError(
            415,
            "Content-Encoding is not supported; send the body uncompressed (no Content-Encoding header)",
        )


@contextlib.asynccontextmanager
async def body_deadline(deadline_seconds: float) -> AsyncIterator[None]:
    """Around any body read: a 408 (connection closed) when it takes longer than ``deadline_seconds``."""
    try:
        async with asyncio.timeout(deadline_seconds):
            yield
    except TimeoutError:
        raise ApiError(408, f"request body not received within {deadline_seconds:g} s", close=True) from None


async def read_body(request: web.Request, deadline_seconds: float) -> bytes:
    """The whole body, or a 408 (connection closed) when it does not arrive within ``deadline_seconds``."""
    if request.content.is_eof():  # already received (most small bodies come with the headers):
        return await request.read()  # no deadline to arm, which costs ~10% of a small request's CPU
    async with body_deadline(deadline_seconds):
        return await request.read()
