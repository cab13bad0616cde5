"""Shared plumbing for the benchmarks: child processes on free ports, percentiles, a summary table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
