"""A gateway started the way production starts it (``python -m producer``) on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.emulator import wait_for_http
from devstack.resources import provision
from tests.support import ROOT, announced_gateway_port, unique_settings


@dataclass
class GatewayProcess:
    url: str
    token: str
    stream: str
    process: subprocess.Popen[bytes]
    log: Path


def start_gateway_process(log: Path, module: str = "producer", **env: str) -> GatewayProcess:
    """Provision unique resources and run ``python -m <module>`` against the session's emulator."""
    settings = unique_settings()
    token = provision(settings, shard_count=1).token
    # Port 0: the OS picks a free port (no window for another process to take it) and the gateway
    # logs which (python -m producer in JSON, producer.multiworker through gunicorn).
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", "0"],
            cwd=ROOT,
            env={
                **os.environ,
                "DEVOPS_STREAM_NAME": settings.devops_stream_name,
                "SECRET_STORE_NAME": settings.secret_store_name,
                "LOG_LEVEL": "INFO",  # at least: the "gateway listening" line names the port
                **env,
            },
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    port = announced_gateway_port(log, lambda: process.poll() is None)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/healthz")
    return GatewayProcess(url, token, settings.devops_stream_name, process, log)


@pytest.fixture(scope="module")
def gateway_process(emulator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gateway = start_gateway_process(tmp_path_factory.mktemp("gateway") / "gateway.log")
    yield gateway
    gateway.process.terminate()
    gateway.process.wait(20)
