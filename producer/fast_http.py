"""``POST /process-event`` and ``POST /events`` answered straight from the socket.

Written by hand because it is faster: aiohttp's request machinery (its parser building a URL and a
header multidict, the ``Request`` and ``Response`` objects, the handler task, header serialization)
costs more per small request than all of the gateway's own work (docs/performance.md). A connection
starts here; a request takes the raw route only when it is plainly the happy path of an event route:

- ``POST /process-event HTTP/1.1`` or ``POST /events HTTP/1.1`` (no query, no HTTP/1.0);
- well-formed header lines within aiohttp's limits (``producer/limits.py``), one ``Host``, one
  ``Content-Length`` (1 byte to ``MAX_BODY_BYTES``), a JSON ``Content-Type``, a valid bearer token, no
  ``Transfer-Encoding``, ``Content-Encoding``, ``Expect`` or ``Upgrade``;
- the whole head within 16 KiB.

Anything else (another route, a refused token, an odd header, a chunked body) hands the connection
to aiohttp with every byte received so far, unread: aiohttp parses the request as if it had been
there from the start and gives its usual answer (JSON errors, 401s with a challenge, 413 with
lingering, parser refusals without echo: producer/server.py), and keeps the connection from then on.
So the raw route decides only what is certain, and every limit keeps its one implementation, except
what this module must enforce itself while it holds the connection:

- a head not complete within ``KEEPALIVE_TIMEOUT_SECONDS`` of the connection opening or of the last
  answer: disconnected, as aiohttp does;
- a body not complete within ``BODY_READ_TIMEOUT_SECONDS``: 408 JSON, then read and drop for
  ``LINGERING_SECONDS`` and close, as ``producer.limits.read_body`` does;
- graceful shutdown: a request in flight is answered (``Connection: close``), an idle connection closes;
- flow control: no reading while the client does not read its answers or while a pipelined request
  waits behind the one in flight.

The handlers' logic (validation, rate limit, batcher, answers) is the same code as the aiohttp routes
(``producer.handlers.submit_event`` / ``event_accepted`` / ``accept_events``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from producer.auth_middleware import bearer_caller, charge
from producer.batcher import PutResult
from producer.errors import ApiError, error_json, internal_error
from producer.handlers import accept_events, event_accepted, submit_event
from producer.limits import LINGERING_SECONDS, MAX_FIELD_SIZE, MAX_HEADERS
from producer.state import SETTINGS

if TYPE_CHECKING:
    from aiohttp.web_server import Server

__all__ = ["MAX_HEAD_BYTES", "RawEventConnection"]

MAX_HEAD_BYTES = 16 * 1024
_REQUEST_LINES = {b"POST /process-event HTTP/1.1": "/process-event", b"POST /events HTTP/1.1": "/events"}
_PREFIXES = tuple(line + b"\r\n" for line in _REQUEST_LINES)
# Header lines, each an RFC 9110 field-name token, ':', and a value of visible characters, spaces,
# tabs and obs-text (aiohttp accepts those too), ending in CRLF: no CR, LF, NUL or other control byte
# anywhere else. One match checks the whole block (a regex call per line costs more than the split).
_FIELDS = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*\r\n)*")
# A Content-Encoding goes to aiohttp, whose route answers 415 (producer.limits: nothing is inflated).
_NOT_RAW = frozenset({b"transfer-encoding", b"expect", b"upgrade", b"content-encoding"})
_JSON_TYPE = b"application/json"
_CONTENT_TYPES = {
    "json": b"Content-Type: application/json\r\n",
    "error": b"Content-Type: application/json; charset=utf-8\r\n",
}
_READING, _WAITING_BODY, _ANSWERING, _LINGERING, _DONE = range(5)


class _Head:
    __slots__ = ("authorization", "close", "length", "route")

    def __init__(self, route: str, length: int, authorization: str, close: bool) -> None:
        self.route, self.length, self.authorization, self.close = route, length, authorization, close


def parse_head(head: bytes, max_body: int) -> _Head | None:
    """The request's route, body length, ``Authorization`` and ``Connection: close``, when the head
    (without its final blank line) is one the raw route serves; None hands it to aiohttp."""
    request_line, _, fields = head.partition(b"\r\n")
    route = _REQUEST_LINES.get(request_line)
    if route is None or _FIELDS.fullmatch(fields + b"\r\n") is None:
        return None
    lines = fields.split(b"\r\n")
    if len(lines) > MAX_HEADERS:
        return None
    length: int | None = None
    content_type: bytes | None = None
    authorization: bytes | None = None
    hosts = 0  # HTTP/1.1 requires exactly one (aiohttp's parser refuses a request without)
    close = False
    for line in lines:
        if len(line) > MAX_FIELD_SIZE:
            return None
        name, _, value = line.partition(b":")
        name, value = name.lower(), value.strip(b" \t")
        if name == b"content-length":
            if length is not None or not value.isdigit() or len(value) > 12:
                return None
            length = int(value)
        elif name == b"content-type":
            if content_type is not None:
                return None
            content_type = value
        elif name == b"authorization":
            if authorization is not None:
                return None
            authorization = value
        elif name == b"host":
            hosts += 1
        elif name == b"connection":
            tokens = {token.strip() for token in value.lower().split(b",")}
            if b"upgrade" in tokens:
                return None
            close = close or b"close" in tokens
        elif name in _NOT_RAW:
            return None
    if length is None or not 0 < length <= max_body or authorization is None or content_type is None:
        return None
    if hosts != 1:
        return None
    if content_type.partition(b";")[0].strip().lower() != _JSON_TYPE:
        return None
    # As aiohttp decodes header values, so that the token check sees what it would see.
    return _Head(route, length, authorization.decode("utf-8", "surrogateescape"), close)


_date: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True).encode())
    return _date[1]


def _answer(status: int, body: bytes, kind: str, headers: dict[str, str] | None, close: bool) -> bytes:
    head = [
        b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode()),
        _CONTENT_TYPES[kind],
        b"Content-Length: %d\r\nDate: %s\r\n" % (len(body), _http_date()),
    ]
    if headers:
        head.extend(f"{name}: {value}\r\n".encode() for name, value in headers.items())
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    head.append(body)
    return b"".join(head)


class RawEventConnection(asyncio.Protocol):
    """One client connection: event requests answered here until a request needs aiohttp."""

    def __init__(
        self, server: Server, app: web.Application, aiohttp_handler: Callable[[], RequestHandler]
    ) -> None:
        settings = app[SETTINGS]
        self._server = server
        self._app = app
        self._aiohttp_handler = aiohttp_handler
        self._max_body = settings.max_body_bytes
        self._body_timeout = settings.body_read_timeout_seconds
        self._idle_timeout = settings.keepalive_timeout_seconds
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._state = _READING
        self._head: _Head | None = None
        self._caller = ""
        self._body_start = 0
        # One deadline at a time (the head's, the body's or the lingering's) and one timer that checks
        # it: moving the deadline is a float store, the timer is re-armed only when it fires early.
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        # Reading stops while a pipelined request waits behind the one in flight (``_held``) or the
        # client does not read its answers (``_write_blocked``, asyncio's flow control).
        self._held = False
        self._write_blocked = False
        self._reading = True
        self._advancing = False
        self._closing = False  # the server is stopping: answer what is in flight, take nothing new
        self._lost: asyncio.Future[None] = self._loop.create_future()

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        # aiohttp's Server tracks connections for its graceful shutdown (close, then shutdown).
        self._server._connections[self] = transport  # type: ignore[index,assignment]
        self._expect_by(self._idle_timeout)

    def data_received(self, data: bytes) -> None:
        if self._state == _LINGERING:
            return  # read and dropped after a 408
        self._buffer += data
        if self._state != _ANSWERING:
            self._advance()
        if self._state == _ANSWERING:
            self._hold_if_full()  # pipelined requests wait for the answer in flight

    def _hold_if_full(self) -> None:
        """Stop reading while more than one more request is buffered; read again once it is not."""
        held = len(self._buffer) > MAX_HEAD_BYTES + self._max_body
        if held != self._held:
            self._held = held
            self._update_reading()

    def eof_received(self) -> bool | None:
        if self._state == _ANSWERING:
            self._closing = True  # a client that half-closed still gets its answer
            return True
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timer()
        self._state = _DONE
        self._server._connections.pop(self, None)  # type: ignore[call-overload]
        if not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._write_blocked = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_blocked = False
        self._update_reading()

    def _update_reading(self) -> None:
        """Read only while the client reads its answers and no pipelined request is held back, so a
        client that sends without reading cannot grow the buffers."""
        wanted = not (self._held or self._write_blocked)
        if wanted != self._reading and self._transport is not None and self._state != _DONE:
            self._reading = wanted
            if wanted:
                self._transport.resume_reading()
            else:
                self._transport.pause_reading()

    # -- aiohttp's Server calls these at shutdown ---------------------------------------------
    def close(self) -> None:
        self._closing = True
        if self._state == _READING and self._transport is not None:
            self._transport.close()

    async def shutdown(self, timeout: float | None) -> None:  # noqa: ASYNC109 (aiohttp's Server calls it so)
        self.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._lost), timeout)
        except TimeoutError:
            if self._transport is not None:
                self._transport.abort()

    # -- requests ------------------------------------------------------------------------------
    def _advance(self) -> None:
        """Take the requests in the buffer, as far as they have arrived, one at a time. A loop, not a
        recursion: answers given at once (a 400, a 429) call back here, and a client may pipeline
        thousands of them."""
        if self._advancing:
            return  # the loop below goes on once the current step returns
        self._advancing = True
        try:
            while self._step():
                pass
        finally:
            self._advancing = False

    def _step(self) -> bool:
        """One request taken as far as it has arrived; True when it was answered at once and the
        next may follow."""
        buffer = self._buffer
        if self._state == _READING:
            if not buffer:
                return False
            end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES)
            if end < 0:
                if len(buffer) >= MAX_HEAD_BYTES or not any(
                    prefix.startswith(buffer[: len(prefix)]) for prefix in _PREFIXES
                ):
                    self._hand_off()
                return False  # the head is still arriving (the idle timer bounds how long)
            head = parse_head(bytes(buffer[:end]), self._max_body)
            if head is None:
                self._hand_off()
                return False
            try:
                self._caller = bearer_caller(self._app, head.authorization)
            except ApiError:
                self._hand_off()  # aiohttp answers it (401 with its challenge, 503 before a token)
                return False
            self._head, self._body_start = head, end + 4
            self._state = _WAITING_BODY
            if len(buffer) < self._body_start + head.length:
                self._expect_by(self._body_timeout)
        if self._state == _WAITING_BODY:
            assert self._head is not None
            end = self._body_start + self._head.length
            if len(buffer) < end:
                return False
            body = bytes(buffer[self._body_start : end])
            del buffer[:end]
            self._state = _ANSWERING
            self._serve(self._head, body)
            return self._state == _READING
        return False

    def _serve(self, head: _Head, body: bytes) -> None:
        try:
            charge(self._app, self._caller, 1, head.route)
            if head.route == "/events":
                task = self._loop.create_task(accept_events(self._app, self._caller, body))
                task.add_done_callback(self._events_answered)
                return
            event_id, put = submit_event(self._app, body)
        except Exception as exc:
            self._fail(exc)
            return
        put.add_done_callback(lambda done: self._event_answered(event_id, done))

    def _event_answered(self, event_id: str, put: asyncio.Future[PutResult]) -> None:
        try:
            body = event_accepted(event_id, put)
        except Exception as exc:
            self._fail(exc)
            return
        self._respond(202, body, "json")

    def _events_answered(self, task: asyncio.Task[tuple[int, bytes, dict[str, str] | None]]) -> None:
        try:
            status, body, headers = task.result()
        except Exception as exc:
            self._fail(exc)
            return
        self._respond(status, body, "json", headers)

    def _fail(self, exc: BaseException) -> None:
        if not isinstance(exc, ApiError):
            exc = internal_error(exc, self._head.route if self._head else "")
        self._respond(exc.status, error_json(exc.error, exc.detail), "error", exc.headers, exc.close)

    def _respond(
        self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None, close: bool = False
    ) -> None:
        transport = self._transport
        if self._state == _DONE or transport is None or transport.is_closing():
            return  # the client went away; the event (if accepted) is still sent
        assert self._head is not None
        close = close or self._head.close or self._closing
        transport.write(_answer(status, body, kind, headers, close))
        if close:
            self._state = _DONE
            transport.close()
            return
        self._state, self._head = _READING, None
        self._expect_by(self._idle_timeout)
        self._advance()
        # Only now: resuming before the buffered requests were taken let a client that never reads
        # its answers add a read (up to 256 KiB) per answer, without bound.
        self._hold_if_full()

    # -- handing over, timers ------------------------------------------------------------------
    def _hand_off(self) -> None:
        """From now on aiohttp serves this connection, starting with the bytes not yet answered."""
        transport = self._transport
        assert transport is not None
        self._cancel_timer()
        self._server._connections.pop(self, None)  # type: ignore[call-overload]
        if self._closing:  # the server is stopping: aiohttp would take no new request either
            self._state = _DONE
            transport.close()
            return
        handler = self._aiohttp_handler()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._write_blocked:  # the transport will not say it again: aiohttp's writes must wait
            handler.pause_writing()
        if not self._reading:
            transport.resume_reading()
        data, self._buffer = bytes(self._buffer), bytearray()
        self._state = _DONE
        handler.data_received(data)

    def _expect_by(self, seconds: float) -> None:
        """The current state must end within ``seconds`` from now (see ``_check_deadline``)."""
        self._deadline = self._loop.time() + seconds
        if self._timer is None or self._timer_at > self._deadline:
            self._cancel_timer()
            self._timer_at = self._deadline
            self._timer = self._loop.call_at(self._deadline, self._check_deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_deadline(self) -> None:
        self._timer = None
        if self._loop.time() < self._deadline:  # moved on since the timer was armed
            self._timer_at = self._deadline
            self._timer = self._loop.call_at(self._deadline, self._check_deadline)
            return
        transport = self._transport
        if transport is None or self._state in (_ANSWERING, _DONE):
            return  # a handler's time is the batcher's deadline, not this one
        if self._state == _WAITING_BODY:
            self._body_too_slow(transport)
        else:  # no complete head in time (slow or idle), as aiohttp does; or lingering after a 408
            transport.close()

    def _body_too_slow(self, transport: asyncio.Transport) -> None:
        """408 as ``producer.limits.body_deadline`` answers it, then drop what still comes, then close."""
        detail = f"request body not received within {self._body_timeout:g} s"
        transport.write(_answer(408, error_json("request_timeout", detail), "error", None, True))
        self._state = _LINGERING
        self._buffer.clear()
        self._expect_by(LINGERING_SECONDS)
