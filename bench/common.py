"""Shared plumbing for the benchmarks: child processes on free ports, percentiles, a summary table."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from producer.intake import WireRecord

ROOT = Path(__file__).resolve().parent.parent
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# The per-token rate limit stays in the path but far above any offered load.
UNLIMITED_RATE = {"RATE_LIMIT_PER_SECOND": "1000000", "RATE_LIMIT_BURST": "1000000"}


@dataclass
class Child:
    process: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[Any], timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()


def start_announcing(args: list[str], env: dict[str, str] | None = None) -> Child:
    """Start ``python <args>`` that prints one ``{"ready": true, "url": ...}`` line when ready."""
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{args} exited before it was ready")
    return Child(process, json.loads(line)["url"])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_http_server(argv: list[str], port: int, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``argv`` (listening on 127.0.0.1:``port``); return it and its URL once /healthz answers."""
    process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz")
    except OSError:
        process.kill()
        raise
    return process, url


def start_gateway(stream: str, secret: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m producer`` on a free port for ``stream``/``secret``; returns it and its URL once
    /healthz answers. The per-token rate limit stays in the path but far above any offered load
    (one token drives all of a benchmark's traffic)."""
    from devstack.emulator import free_port

    port = free_port()
    return start_http_server(
        [sys.executable, "-m", "producer", "--port", str(port)],
        port,
        DEVOPS_STREAM_NAME=stream,
        SECRET_STORE_NAME=secret,
        **UNLIMITED_RATE,
        **env,
    )


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


@dataclass
class LoadRun:
    """What one load run measured: requests answered per second, and each request's latency."""

    requests: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def p(self, pct: float) -> float:
        """Latency percentile in milliseconds."""
        return percentile(self.latencies, pct) * 1000


def http_request(path: str, token: str, body: bytes, host: str = "127.0.0.1") -> bytes:
    """One pre-encoded HTTP/1.1 keep-alive POST of a JSON body."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def http_load(url: str, requests: list[bytes], concurrency: int) -> LoadRun:
    """Send ``requests`` (pre-encoded by ``http_request``) over ``concurrency`` keep-alive connections,
    each waiting for its answer before the next (closed loop).

    A raw-socket client rather than aiohttp's: on a 2-core machine the load generator shares the CPU
    with the servers it measures, and this one costs a fraction of aiohttp's client per request, so
    more of the CPU goes to the servers under test (all of them alike)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    pending = iter(requests)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for request in pending:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length, close = 0, False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True  # gunicorn's sync workers close after every answer
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                status = int(head[9:12])
                statuses[status] = statuses.get(status, 0) + 1
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return LoadRun(len(requests), time.perf_counter() - started, latencies, statuses)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children alive now (gunicorn's workers), from
    Linux /proc: robust to a machine shared with others."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(cpu_seconds(int(child)) for child in children)


def gateway_records(count: int) -> list[WireRecord]:
    """``count`` records as the gateway writes them to Kinesis (deploys of 16 repos, received now)."""
    from datetime import UTC, datetime

    from devops_core.events import EventIn
    from producer.intake import iso_time, wire_record

    now = iso_time(datetime.now(UTC))
    return [
        wire_record(EventIn(repo=f"repo-{i % 16}", event="deploy"), received_at=now) for i in range(count)
    ]
