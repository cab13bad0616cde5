"""Hostile clients against the real app on a real port, over raw sockets: slow headers, slow bodies,
oversized headers, JSON bombs. Each is cut off quickly and without buffering what the client sends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from producer.limits import MAX_FIELD_SIZE, MAX_HEADERS
from tests.hardening.conftest import start_gateway_process
from tests.producer.conftest import bearer, open_gateway
from tests.support import Stack

BODY_TIMEOUT = 0.5
HEADER_TIMEOUT = 1.0


@pytest.fixture
async def strict_gateway(stack: Stack) -> AsyncIterator[TestClient]:
    settings = stack.settings.model_copy(
        update={
            "body_read_timeout_seconds": BODY_TIMEOUT,
            "keepalive_timeout_seconds": HEADER_TIMEOUT,
            "github_webhook_secret": SecretStr("webhook-secret"),
        }
    )
    async with open_gateway(settings) as client:
        yield client


async def _connect(client: TestClient) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(client.host, client.port)


async def _read_until_closed(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sends until it closes the connection (fails if it keeps it open).

    A reset is a close too: a client still writing (a slowloris trickle) after the server closed gets
    an RST from the server's kernel instead of a FIN (it failed make test under load)."""
    received = bytearray()

    async def read_all() -> None:
        while chunk := await reader.read(65536):
            received.extend(chunk)

    with contextlib.suppress(ConnectionResetError):
        await asyncio.wait_for(read_all(), within)
    return bytes(received)


def _split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("path", ["/process-event", "/events", "/webhooks/github"])
async def test_slow_body_gets_408_json_and_the_connection_is_closed(
    strict_gateway: TestClient, stack: Stack, path: str
) -> None:
    reader, writer = await _connect(strict_gateway)
    auth = bearer(stack.token)["Authorization"]
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
        + f"Authorization: {auth}\r\nContent-Length: 1000\r\n".encode()
        # what /webhooks/github checks before it reads a body (the others ignore these headers)
        + b"X-GitHub-Event: push\r\nX-GitHub-Delivery: slow-1\r\nX-Hub-Signature-256: sha256=00\r\n\r\n"
    )
    started = time.monotonic()

    async def trickle() -> None:
        for _ in range(200):  # one byte every 50 ms: would take 10 s
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(trickle())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BODY_TIMEOUT + 5)
        status, headers, _ = _split_response(head)
        body = await reader.readexactly(int(headers["content-length"]))
        # Then the server closes; unread trickled bytes may turn its FIN into a reset.
        with contextlib.suppress(ConnectionResetError):
            assert await _read_until_closed(reader, within=5) == b""
    finally:
        sender.cancel()
        writer.close()
    assert status == 408
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"] == "request_timeout"
    assert time.monotonic() - started < BODY_TIMEOUT + 4  # 408 at the deadline, close after lingering


async def test_slow_headers_are_disconnected(strict_gateway: TestClient) -> None:
    reader, writer = await _connect(strict_gateway)
    writer.write(b"POST /process-event HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()

    async def trickle() -> None:
        for byte in b"X-Slow: " + b"a" * 200:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(trickle())
    try:
        assert await _read_until_closed(reader, within=HEADER_TIMEOUT + 5) == b""
    finally:
        sender.cancel()
        writer.close()
    assert time.monotonic() - started < HEADER_TIMEOUT + 3


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(b"X-Big: " + b"a" * (MAX_FIELD_SIZE + 10) + b"\r\n", id="one-field-too-long"),
        pytest.param(b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 10)), id="too-many-headers"),
    ],
)
async def test_oversized_headers_are_refused(strict_gateway: TestClient, headers: bytes) -> None:
    reader, writer = await _connect(strict_gateway)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    try:
        raw = await _read_until_closed(reader, within=5)
    finally:
        writer.close()
    status, _, _ = _split_response(raw)
    assert status in {400, 431}


async def test_endless_header_stream_is_cut_off_without_buffering_it(strict_gateway: TestClient) -> None:
    """64 MB of one header line: the server must drop the connection long before it has read it all."""
    _, writer = await _connect(strict_gateway)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    sent = 0
    chunk = b"a" * 65536
    with pytest.raises((ConnectionResetError, BrokenPipeError)):  # noqa: PT012 - loop until refused
        while sent < 64 * 1024 * 1024:
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), 5)
            sent += len(chunk)
    writer.close()
    assert sent < 16 * 1024 * 1024  # socket buffers, not the server, account for what got through


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"[" * 200_000 + b"]" * 200_000, 400, id="deep-nesting"),
        pytest.param(
            b'{"repo":"r","event":"push","metadata":{"a":' * 900 + b"1" + b"}" * 1800, 400, id="deep-metadata"
        ),
        pytest.param(
            b'{"repo":"r","event":"push","metadata":{"n":' + b"9" * 500_000 + b"}}", 400, id="huge-number"
        ),
        pytest.param(b'{"repo":"r","event":"push","metadata":{"n":1e999}}', 422, id="infinite-number"),
        pytest.param(
            b'{"repo":"r","event":"push","metadata":"' + b"x" * 900_000 + b'"}', 422, id="huge-string"
        ),
        pytest.param(
            b'{"repo":"r","event":"push","metadata":"' + b"x" * 2_000_000 + b'"}', 413, id="over-limit"
        ),
    ],
)
async def test_json_bombs_are_rejected(
    strict_gateway: TestClient, stack: Stack, body: bytes, status: int
) -> None:
    """Each answered with its precise status (how fast is bench material, not a functional assertion:
    a 2 s bound here could fail on a loaded machine)."""
    response = await strict_gateway.post(
        "/process-event",
        data=body,
        headers={**bearer(stack.token), "Content-Type": "application/json"},
    )
    assert response.status == status, await response.text()
    assert set(await response.json()) == {"error", "detail"}


async def test_multiworker_serves_with_the_same_limits(emulator: str, tmp_path: Path) -> None:
    """The container's entry point (gunicorn + aiohttp workers) gets server_kwargs too."""
    gateway = start_gateway_process(
        tmp_path / "gateway.log",
        module="producer.multiworker",
        GATEWAY_WORKERS="1",
        KEEPALIVE_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        BODY_READ_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
    )
    try:
        port = int(gateway.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
            + b"\r\n"
        )
        status, _, _ = _split_response(await _read_until_closed(reader, within=5))
        writer.close()
        assert status == 400  # aiohttp's default allows 128 headers; ours allows 64
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        started = time.monotonic()
        assert await _read_until_closed(reader, within=HEADER_TIMEOUT + 5) == b""
        assert time.monotonic() - started < HEADER_TIMEOUT + 3
        writer.close()
    finally:
        gateway.process.terminate()
        gateway.process.wait(30)
