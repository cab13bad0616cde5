"""Reading a webhook body before anyone knows who sent it, with bounded memory.

Until the HMAC is checked a delivery is anonymous, and the route must hold its bytes (the signature
covers the whole body, and GitHub's limit is far above the API's 1 MiB). Two things bound what an
unauthenticated client can make the gateway hold:

- ``UnverifiedBytes``: one budget of bytes for all bodies not yet verified, per gateway process,
  charged as the bytes arrive: a delivery is refused with a 503 as soon as its body grows past what is
  left. (Reserving the announced ``Content-Length`` up front let four idle connections announcing
  10 MiB each hold the whole budget for the body deadline, and every genuine delivery got a 503.)
  The bytes go back to the budget once the signature is checked (either way) or the request ends.
- The HMAC is computed while the body streams in (``Verifier``), so the unverified bytes are held
  once, as the received chunks, and joined only after the signature matched.

aiohttp itself buffers at most a few hundred KiB per connection before it stops reading the socket
(flow control), so the budget plus that is what 48 or 480 slow anonymous senders can cost.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from aiohttp import web

from producer.errors import ApiError
from producer.github.signature import Verifier
from producer.state import LOG_THROTTLE

__all__ = ["SignedBody", "UnverifiedBytes", "read_signed_body"]

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_RETRY_AFTER = {"Retry-After": "5"}


class UnverifiedBytes:
    """A budget of bytes shared by every webhook body whose signature is not checked yet."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.peak = 0
        self.refused = 0

    def take(self, size: int) -> bool:
        if self.in_use + size > self.limit:
            self.refused += 1
            return False
        self.in_use += size
        self.peak = max(self.peak, self.in_use)
        return True

    def give_back(self, size: int) -> None:
        self.in_use -= size

    @contextlib.contextmanager
    def hold(self) -> Iterator[_Hold]:
        """What one request holds; everything is given back when the block ends, however it ends."""
        held = _Hold(self)
        try:
            yield held
        finally:
            held.release()


class _Hold:
    def __init__(self, budget: UnverifiedBytes) -> None:
        self._budget = budget
        self.size = 0

    def grow(self, size: int, request: web.Request) -> None:
        if not self._budget.take(size):
            if refused := request.app[LOG_THROTTLE].due("github webhook budget exhausted"):
                logger.warning(
                    "github webhook refused: unverified bytes budget exhausted",
                    extra={
                        "remote": request.remote,
                        "content_length": request.content_length,
                        "unverified_bytes": self._budget.in_use,
                        "limit": self._budget.limit,
                        "refused": refused,
                    },
                )
            raise ApiError(
                503,
                "the gateway is receiving too many unverified webhook deliveries at once; redeliver later",
                headers=_RETRY_AFTER,
                close=True,
            )
        self.size += size

    def release(self) -> None:
        self._budget.give_back(self.size)
        self.size = 0


class SignedBody:
    """A body read in full, with the HMAC computed on the way."""

    def __init__(self, chunks: list[bytes], verifier: Verifier) -> None:
        self._chunks = chunks
        self._verifier = verifier

    def matches(self, header: str) -> bool:
        return self._verifier.matches(header)

    def join(self) -> bytes:
        body = b"".join(self._chunks)
        self._chunks = []
        return body


async def read_signed_body(
    request: web.Request, *, limit: int, verifier: Verifier, hold: _Hold
) -> SignedBody:
    """Read the raw body (the HMAC covers these exact bytes) within ``limit`` and the shared budget."""
    announced = request.content_length
    if announced is not None and announced > limit:
        raise ApiError(413, f"delivery is {announced} bytes; the limit is {limit}", close=True)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        received += len(chunk)
        if received > limit:
            raise ApiError(413, f"delivery is larger than {limit} bytes", close=True)
        hold.grow(len(chunk), request)
        verifier.update(chunk)
        chunks.append(chunk)
    return SignedBody(chunks, verifier)
