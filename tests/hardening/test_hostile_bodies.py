"""Bodies no client should send, and clients that misbehave around them, against ``python -m producer``
(the raw event routes and aiohttp's): compressed bodies, broken chunk framing, a client that leaves
mid-body, a client that pipelines without reading. None may answer a 500, log at ERROR, or make the
gateway hold more than one request's worth of bytes per connection."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hardening.conftest import GatewayProcess, start_gateway_process

EVENT = json.dumps({"repo": "bodies", "event": "push"}).encode()


@pytest.fixture(scope="module")
def gateway(emulator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    served = start_gateway_process(
        tmp_path_factory.mktemp("bodies") / "gateway.log",
        GITHUB_WEBHOOK_SECRET="hostile-bodies-secret",
        RATE_LIMIT_PER_SECOND="0",
    )
    yield served
    served.process.terminate()
    served.process.wait(30)


def head(path: str, token: str, *fields: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", "Content-Type: application/json", *fields]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def answer_of(url: str, data: bytes) -> tuple[int, bytes]:
    """Send raw bytes; the status and body of the first answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        lines = raw_head.decode("latin-1").split("\r\n")
        length = next(int(ln.split(":", 1)[1]) for ln in lines if ln.lower().startswith("content-length"))
        return int(lines[0].split()[1]), await asyncio.wait_for(reader.readexactly(length), 20)
    finally:
        writer.close()


def errors_logged(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if '"level": "error"' in line]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/process-event", gzip.compress(EVENT), id="event-gzip"),
        pytest.param("/process-event", EVENT, id="event-not-really-gzip"),
        pytest.param("/events", gzip.compress(b"[" + EVENT + b"]"), id="batch-gzip"),
        pytest.param("/webhooks/github", b"\x1f\x8b not gzip at all", id="webhook-anonymous"),
    ],
)
async def test_a_compressed_body_is_a_415_and_never_inflated(
    gateway: GatewayProcess, path: str, body: bytes
) -> None:
    """aiohttp inflated Content-Encoding bodies (on the anonymous webhook route too: a bomb to unpack
    before the signature check); one that did not inflate was a 500 with two ERROR tracebacks, and the
    raw route read the compressed bytes as JSON (a 400 where aiohttp said 202)."""
    before = len(errors_logged(gateway.log))
    token = "" if path.startswith("/webhooks") else gateway.token
    extra = ["X-GitHub-Event: push", "X-GitHub-Delivery: 1", "X-Hub-Signature-256: sha256=00"]
    fields = [f"Content-Length: {len(body)}", "Content-Encoding: gzip", *(extra if not token else [])]
    status, answer = await answer_of(gateway.url, head(path, token, *fields) + body)
    assert status == 415, answer
    assert "Content-Encoding is not supported" in json.loads(answer)["detail"]
    await asyncio.sleep(0.5)  # aiohttp logs after the answer, if it does
    assert errors_logged(gateway.log)[before:] == []


async def test_broken_chunk_framing_is_a_400_not_an_error(gateway: GatewayProcess) -> None:
    before = len(errors_logged(gateway.log))
    data = head("/process-event", gateway.token, "Transfer-Encoding: chunked") + b"zz\r\n" + EVENT + b"\r\n"
    status, answer = await answer_of(gateway.url, data)
    assert status == 400, answer
    await asyncio.sleep(0.5)
    assert errors_logged(gateway.log)[before:] == []


@pytest.mark.parametrize("route", ["raw", "aiohttp", "webhook"])
async def test_a_client_leaving_mid_body_is_not_an_error(gateway: GatewayProcess, route: str) -> None:
    """An ERROR traceback per disconnect (on the anonymous webhook route too) would let anyone fill
    the logs and trip the error alarms."""
    before = len(errors_logged(gateway.log))
    path, token, fields = {
        "raw": ("/process-event", gateway.token, []),
        "aiohttp": ("/process-event", gateway.token, []),
        "webhook": (
            "/webhooks/github",
            "",
            ["X-GitHub-Event: push", "X-GitHub-Delivery: 1", "X-Hub-Signature-256: sha256=00"],
        ),
    }[route]
    if route == "aiohttp":  # a chunked body is aiohttp's to read
        data = head(path, token, "Transfer-Encoding: chunked") + b"400\r\n" + EVENT
    else:
        data = head(path, token, "Content-Length: 1000", *fields) + EVENT
    host, port = gateway.url.removeprefix("http://").rsplit(":", 1)
    for _ in range(3):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(data)
        await asyncio.sleep(0.2)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset, mid-body
    await asyncio.sleep(0.5)
    assert errors_logged(gateway.log)[before:] == []
    one = head("/process-event", gateway.token, f"Content-Length: {len(EVENT)}") + EVENT
    status, _ = await answer_of(gateway.url, one)
    assert status == 202


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_pipelining_without_reading_the_answers_holds_one_request_not_all(
    gateway: GatewayProcess,
) -> None:
    """Each answer used to resume reading although the buffer was full: one read (up to 256 KiB) per
    answer, so a token holder grew the gateway by 1.1 GB in 12 s. Now the client's sends block."""
    host, port = gateway.url.removeprefix("http://").rsplit(":", 1)
    one = head("/process-event", gateway.token, f"Content-Length: {len(EVENT)}") + EVENT
    burst = one * 1000
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(2)
    start = rss_kib(gateway.process.pid)
    sent = 0
    try:
        while sent < 200 * 1024 * 1024:
            try:
                sock.sendall(burst)
            except TimeoutError:
                break  # the gateway stopped reading: what it holds is bounded
            sent += len(burst)
        else:
            pytest.fail("the gateway read 200 MiB from a client that reads none of its answers")
        grown = rss_kib(gateway.process.pid) - start
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    assert sent < 64 * 1024 * 1024, sent
    assert grown < 48 * 1024, f"{grown} KiB"


async def test_a_connection_handed_to_aiohttp_while_its_answers_back_up_still_waits_for_the_client(
    gateway: GatewayProcess,
) -> None:
    """aiohttp's handler was never told that writing was paused when it took over (the transport says
    so once, on the transition): a client sending /events batches then GETs, never reading, grew the
    gateway by 270 MB in 8 s, every answer piling up in the write buffer."""
    host, port = gateway.url.removeprefix("http://").rsplit(":", 1)
    invalid = b"[" + b",".join([b'{"repo":"r","event":"nope"}'] * 500) + b"]"  # a 207 of ~150 KB
    batch = head("/events", gateway.token, f"Content-Length: {len(invalid)}") + invalid
    spec = b"GET /openapi.json HTTP/1.1\r\nHost: gateway\r\n\r\n" * 50  # aiohttp's: ~32 KB answers
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.settimeout(0.5)
    start = rss_kib(gateway.process.pid)
    try:
        # The batches' answers pass the write buffer's high-water mark; the GETs in the same read then
        # hand the connection over.
        sock.sendall(batch * 30 + spec)
        await asyncio.sleep(1)
        loop = asyncio.get_running_loop()
        until = loop.time() + 5
        while loop.time() < until:
            try:
                sock.sendall(spec)
            except TimeoutError:
                await asyncio.sleep(0.1)
        grown = rss_kib(gateway.process.pid) - start
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    assert grown < 48 * 1024, f"{grown} KiB"
