"""Headers no client should send, against every way the gateway is served: ``python -m producer``,
the container's ``python -m producer.multiworker`` and ``make run`` (``python -m devstack``). None of
them may echo or log what the client sent in a refused header (it may be a token), answer a 500, or
serve without the production limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from producer.limits import MAX_FIELD_SIZE, MAX_HEADERS
from tests.hardening.conftest import GatewayProcess, start_gateway_process
from tests.support import LocalStackProcess, start_local_stack

# What would leak: a recognisable token prefix at the start of an oversized Authorization header.
LEAKED = "tok-SECRETPREFIX-must-not-be-echoed"


@pytest.fixture(scope="module", params=["producer", "producer.multiworker"])
def served(
    request: pytest.FixtureRequest, emulator: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    gateway = start_gateway_process(
        tmp_path_factory.mktemp("gateway") / "gateway.log", module=request.param, GATEWAY_WORKERS="1"
    )
    yield gateway
    gateway.process.terminate()
    gateway.process.wait(30)


async def _exchange(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the server closes after an error)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def _post(authorization: bytes, extra: bytes = b"") -> bytes:
    body = b'{"repo": "r", "event": "push"}'
    return (
        b"POST /process-event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + b"Authorization: "
        + authorization
        + b"\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


async def test_oversized_authorization_is_neither_echoed_nor_logged(served: GatewayProcess) -> None:
    token = b"Bearer " + LEAKED.encode() + b"x" * (MAX_FIELD_SIZE + 100)
    status, headers, body = await _exchange(served.url, _post(token))
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"] == "bad_request"
    assert LEAKED.encode() not in body
    await asyncio.sleep(0.2)  # the log line is written when the answer is
    logged = served.log.read_text()
    assert "request refused by the HTTP parser" in logged
    assert LEAKED not in logged
    assert '"level": "error"' not in logged


async def test_non_utf8_authorization_is_401_not_500(served: GatewayProcess) -> None:
    for authorization in (b"Bearer \xff\xfe" + LEAKED.encode(), b"Bearer caf\xc3\xa9", b"\xff\xff \xff"):
        status, headers, body = await _exchange(served.url, _post(authorization))
        assert status == 401, body
        assert headers["www-authenticate"].startswith("Bearer")
        assert json.loads(body)["error"] == "unauthorized"
    logged = served.log.read_text()
    assert "unhandled error" not in logged
    assert "Traceback" not in logged


@pytest.fixture(scope="module")
def make_run() -> Iterator[LocalStackProcess]:
    """``make run`` with only the emulator and the gateway (on free ports)."""
    stack = start_local_stack("--only-gateway")
    yield stack
    stack.stop()


async def test_make_run_serves_with_the_production_limits(make_run: LocalStackProcess) -> None:
    too_many = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 6))  # 70 headers in all
    status, _, body = await _exchange(make_run.gateway, _post(b"Bearer " + make_run.token.encode(), too_many))
    assert status == 400
    assert json.loads(body)["error"] == "bad_request"
    oversized = b"Bearer " + LEAKED.encode() + b"x" * (MAX_FIELD_SIZE + 100)
    status, _, body = await _exchange(make_run.gateway, _post(oversized))
    assert status == 400
    assert LEAKED.encode() not in body
    status, _, _ = await _exchange(make_run.gateway, _post(b"Bearer " + make_run.token.encode()))
    assert status == 202
