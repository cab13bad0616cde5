"""The raw event routes (producer/fast_http.py): what they serve, what they hand to aiohttp, and that
both answer alike. aiohttp's answers carry its ``Server`` header and the raw route's do not, which
tells each test which one answered."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from producer.fast_http import parse_head
from tests.producer.conftest import open_gateway
from tests.support import Stack

Answer = tuple[int, dict[str, str], bytes]


@pytest_asyncio.fixture
async def gateway(stack: Stack) -> AsyncIterator[TestClient]:
    async with open_gateway(stack.settings) as client:
        yield client


def request(path: str, token: str, body: bytes, *extra: str, version: str = "HTTP/1.1") -> bytes:
    head = [
        f"POST {path} {version}",
        "Host: gateway",
        "Content-Type: application/json",
        f"Authorization: Bearer {token}",
        f"Content-Length: {len(body)}",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(path: str, token: str, body: bytes) -> bytes:
    """The same request with its body in one chunk: the raw route leaves it to aiohttp."""
    head = request(path, token, b"").replace(b"Content-Length: 0", b"Transfer-Encoding: chunked")
    return head + (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n")


def event(repo: str = "raw", **fields: Any) -> bytes:
    return json.dumps({"repo": repo, "event": "push", **fields}).encode()


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {
        name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)
    }
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


async def exchange(gateway: TestClient, *writes: bytes, answers: int) -> list[Answer]:
    """Send each write (a pause between them), then read ``answers`` answers off the connection."""
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    try:
        for number, data in enumerate(writes):
            if number:
                await asyncio.sleep(0.05)
            writer.write(data)
            await writer.drain()
        return [await read_answer(reader) for _ in range(answers)]
    finally:
        writer.close()


def by_aiohttp(answer: Answer) -> bool:
    return "aiohttp" in answer[1].get("server", "")


async def test_event_routes_are_answered_raw_everything_else_by_aiohttp(
    gateway: TestClient, stack: Stack
) -> None:
    [raw] = await exchange(gateway, request("/process-event", stack.token, event()), answers=1)
    [batch] = await exchange(gateway, request("/events", stack.token, b"[" + event() + b"]"), answers=1)
    [health] = await exchange(gateway, b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n", answers=1)
    assert (raw[0], batch[0], health[0]) == (202, 202, 200)
    assert not by_aiohttp(raw)
    assert not by_aiohttp(batch)
    assert by_aiohttp(health)
    assert raw[1]["content-type"] == "application/json"
    assert json.loads(raw[2])["status"] == "accepted"


async def test_pipelined_requests_are_answered_in_order(gateway: TestClient, stack: Stack) -> None:
    ids = [f"pipelined-{n}" for n in range(3)]
    data = b"".join(request("/process-event", stack.token, event(event_id=event_id)) for event_id in ids)
    answers = await exchange(gateway, data, answers=3)
    assert [json.loads(body)["event_id"] for _, _, body in answers] == ids
    assert not any(by_aiohttp(answer) for answer in answers)


async def test_a_connection_moves_to_aiohttp_at_its_first_other_request(
    gateway: TestClient, stack: Stack
) -> None:
    """Raw, then /healthz (handed over with the bytes after it), then aiohttp serves the rest."""
    post = request("/process-event", stack.token, event())
    health = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
    answers = await exchange(gateway, post + health + post, answers=3)
    assert [status for status, _, _ in answers] == [202, 200, 202]
    assert [by_aiohttp(answer) for answer in answers] == [False, True, True]


async def test_a_head_and_body_in_separate_writes_are_served_raw(gateway: TestClient, stack: Stack) -> None:
    data = request("/process-event", stack.token, event())
    split = data.index(b"\r\n\r\n") + 4
    [answer] = await exchange(gateway, data[:10], data[10:split], data[split:], answers=1)
    assert answer[0] == 202
    assert not by_aiohttp(answer)


async def test_connection_close_is_honoured(gateway: TestClient, stack: Stack) -> None:
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    try:
        writer.write(request("/process-event", stack.token, event(), "Connection: close"))
        status, headers, _ = await read_answer(reader)
        assert (status, headers["connection"]) == (202, "close")
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(request("/process-event", "wrong", event()), 401, id="wrong-token"),
        pytest.param(
            b"POST /process-event HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
            % (len(event()), event()),
            202,
            id="chunked",
        ),
        pytest.param(request("/process-event", "{token}", event(), version="HTTP/1.0"), 202, id="http-1.0"),
        pytest.param(request("/process-event?via=query", "{token}", event()), 422, id="query-string"),
        pytest.param(
            request("/process-event", "{token}", event()).replace(b"application/json", b"text/plain"),
            415,
            id="not-json",
        ),
        pytest.param(request("/process-event", "{token}", event(), "X-Folded: a\r\n b"), 400, id="obs-fold"),
        pytest.param(
            request("/process-event", "{token}", event(), f"Content-Length: {len(event())}"),
            400,
            id="two-content-lengths",
        ),
        pytest.param(request("/process-event", "{token}", b""), 400, id="empty-body"),
        pytest.param(
            request("/process-event", "{token}", event()).replace(b"Host: gateway\r\n", b""),
            400,
            id="no-host",
        ),
    ],
)
async def test_what_the_raw_route_does_not_serve_aiohttp_answers(
    gateway: TestClient, stack: Stack, data: bytes, status: int
) -> None:
    [answer] = await exchange(gateway, data.replace(b"{token}", stack.token.encode()), answers=1)
    assert answer[0] == status, answer
    assert by_aiohttp(answer)
    if status >= 400:
        assert answer[1]["content-type"].startswith("application/json")
        assert "error" in json.loads(answer[2])


def _comparable(body: bytes) -> Any:
    """An answer without what differs from call to call (generated ids, sequence numbers)."""
    value = json.loads(body)
    if isinstance(value, dict):
        value.pop("event_id", None), value.pop("sequence_number", None)
        for item in value.get("results", []):
            item.pop("event_id", None)
    return value


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/process-event", event()),
        ("/process-event", b'{"repo": "raw", "event": "push"'),
        ("/process-event", b'{"repo": "raw", "event": "deploy", "time": "0001-01-01T00:00:00Z"}'),
        ("/process-event", b'{"repo": "", "event": "nope", "extra": 1}'),
        ("/process-event", b"[]"),
        ("/events", b"[" + event() + b"]"),
        ("/events", b"[]"),
        ("/events", b'{"not": "a list"}'),
        (
            "/events",
            b"["
            + b",".join(
                [event(event_id="same-id"), event(event_id="same-id", metadata="other"), b'{"repo": 1}']
            )
            + b"]",
        ),
    ],
)
async def test_raw_and_aiohttp_answers_agree(
    gateway: TestClient, stack: Stack, path: str, body: bytes
) -> None:
    # The same request with a chunked body goes to aiohttp's route.
    raw, routed = await exchange(
        gateway, request(path, stack.token, body) + chunked(path, stack.token, body), answers=2
    )
    assert (by_aiohttp(raw), by_aiohttp(routed)) == (False, True)
    assert raw[0] == routed[0]
    assert _comparable(raw[2]) == _comparable(routed[2])
    assert raw[1]["content-type"] == routed[1]["content-type"]
    assert raw[1].get("retry-after") == routed[1].get("retry-after")


HAPPY = (
    b"POST /process-event HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
    b"Content-Type: application/json\r\nContent-Length: 10"
)


@pytest.mark.parametrize(
    "head",
    [
        HAPPY + b"\r\nX-Bad: a\x00b",
        HAPPY + b"\r\nTransfer-Encoding: chunked",
        HAPPY + b"\r\nExpect: 100-continue",
        HAPPY + b"\r\nConnection: Upgrade",
        HAPPY + b"\r\nX : y",
        HAPPY + b"\r\nX: a\nb",
        HAPPY.replace(b"Length: 10", b"Length: +10"),
        HAPPY.replace(b"Length: 10", b"Length: 1001"),
        HAPPY.replace(b"Host: x\r\n", b""),
        HAPPY + b"\r\nHost: y",
        HAPPY.replace(b"Content-Type: application/json\r\n", b""),
        HAPPY.replace(b"Authorization: Bearer t\r\n", b""),
        HAPPY + b"\r\nAuthorization: Bearer u",
        HAPPY + b"".join(b"\r\nX-%d: v" % n for n in range(70)),
        HAPPY.replace(b"HTTP/1.1", b"HTTP/1.0"),
        HAPPY.replace(b"/process-event", b"/process-event?x=1"),
    ],
    ids=[
        "nul-in-value",
        "transfer-encoding",
        "expect",
        "upgrade",
        "space-before-colon",
        "bare-lf",
        "signed-length",
        "over-max-body",
        "no-host",
        "two-hosts",
        "no-content-type",
        "no-authorization",
        "two-authorizations",
        "too-many-headers",
        "http-1.0",
        "query-string",
    ],
)
def test_parse_head_leaves_every_doubtful_request_to_aiohttp(head: bytes) -> None:
    assert parse_head(head, max_body=1000) is None


def test_parse_head_reads_the_happy_path() -> None:
    assert parse_head(HAPPY, max_body=1000) is not None
    head = parse_head(
        b"POST /events HTTP/1.1\r\nhost: x\r\nauthorization:  Bearer t \r\ncontent-type: "
        b"Application/JSON; charset=utf-8\r\ncontent-length: 10\r\nConnection: keep-alive, close",
        max_body=1000,
    )
    assert head is not None
    assert (head.route, head.length, head.authorization, head.close) == ("/events", 10, "Bearer t", True)


MALFORMED = b"{"  # answered 400 (or 429 past the rate limit) at once, without Kinesis


async def test_thousands_of_pipelined_requests_answered_at_once_are_all_answered(
    gateway: TestClient, stack: Stack
) -> None:
    """Answers given synchronously (400s) for a long pipeline: a loop, not a recursion per request."""
    answers = await exchange(gateway, request("/process-event", stack.token, MALFORMED) * 5000, answers=5000)
    assert {status for status, _, _ in answers} <= {400, 429}  # malformed, or over the token's rate
    assert not any(by_aiohttp(answer) for answer in answers)


async def test_a_client_that_never_reads_its_answers_is_not_read_either(
    gateway: TestClient, stack: Stack
) -> None:
    """asyncio's flow control: once the answers back up, the raw route stops reading, so the client's
    sends block instead of the gateway's buffers growing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((gateway.host, gateway.port))
    sock.setblocking(False)
    _, writer = await asyncio.open_connection(sock=sock)
    burst = request("/process-event", stack.token, MALFORMED) * 1000
    try:
        for _ in range(300):  # 300,000 requests (39 MB) at most
            writer.write(burst)
            try:
                await asyncio.wait_for(writer.drain(), 2)
            except TimeoutError:
                break
        else:
            pytest.fail("the gateway kept reading a client that reads none of its answers")
        runner = gateway.server.runner
        assert runner is not None
        assert runner.server is not None
        buffered = [transport.get_write_buffer_size() for transport in runner.server._connections.values()]
        assert buffered
        assert max(buffered) < 1024 * 1024
    finally:
        writer.transport.abort()
