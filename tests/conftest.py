"""Shared fixtures: one real moto server (over HTTP) per session, unique resources per test,
a fault-injecting proxy, and the gateway built by its real factory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from devops_core.settings import Settings
from devstack.emulator import free_port
from devstack.resources import ProvisionResult, provision

ROOT = Path(__file__).resolve().parent.parent
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass
class Background:
    """A child process that announced itself with one JSON line ``{"ready": true, "url": ...}``."""

    process: subprocess.Popen[str]
    url: str

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_background(args: list[str], env: dict[str, str] | None = None, timeout: float = 30) -> Background:
    process = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError(f"{args} exited before it was ready")
    return Background(process, json.loads(line)["url"])


@pytest.fixture(scope="session")
def emulator() -> Iterator[str]:
    """The moto server (served by hypercorn), shared by the whole session."""
    server = start_background(["-m", "devstack.emulator", "--port", str(free_port())])
    saved = {key: os.environ.get(key) for key in [*AWS_TEST_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(AWS_TEST_ENV)
    os.environ["AWS_ENDPOINT_URL"] = server.url
    yield server.url
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


def unique_settings(**overrides: object) -> Settings:
    """Settings whose resource names are unique to one test, so tests never see each other's data."""
    suffix = uuid.uuid4().hex[:10]
    values: dict[str, object] = {
        "devops_stream_name": f"events-{suffix}",
        "devops_table_name": f"raw-{suffix}",
        "secret_store_name": f"secret-{suffix}",
        "dead_letter_queue_name": f"dlq-{suffix}",
        "aggregator_state_table": f"agg-{suffix}",
        "consumer_application_name": f"consumer-{suffix}",
        "aggregator_application_name": f"aggregator-{suffix}",
        "batch_linger_ms": 2.0,
        **overrides,
    }
    return Settings.model_validate(values)


@dataclass
class Stack:
    settings: Settings
    resources: ProvisionResult

    @property
    def token(self) -> str:
        return self.resources.token


@pytest.fixture
def stack(emulator: str) -> Stack:
    """Fresh stream, table, secret, queue and state table on the shared emulator."""
    settings = unique_settings()
    return Stack(settings, provision(settings, shard_count=2))


@pytest.fixture
def fault_proxy(emulator: str) -> Iterator[str]:
    """A fault-injecting proxy in front of the emulator; steer it with POST {url}/__faults__."""
    proxy = start_background(["-m", "devstack.faults", "--upstream", emulator, "--port", str(free_port())])
    yield proxy.url
    proxy.stop()


@pytest.fixture
async def gateway(stack: Stack) -> AsyncIterator[TestClient]:
    """The gateway built by its real factory, on a real port, reading its token from Secrets Manager."""
    app_settings = stack.settings.model_copy(update={"devops_events_secret_token": None})
    from producer.app import create_app

    async with TestClient(TestServer(create_app(app_settings))) as client:
        yield client


@pytest.fixture(scope="session")
def newrelic_standin() -> Iterator[str]:
    """The one New Relic Log API stand-in (devstack/newrelic_standin.py) for the whole session.

    Its log URL is ``{url}/log/v1``; scope faults and reads to your test with a unique Api-Key.
    """
    standin = start_background(["-m", "devstack.newrelic_standin", "--port", str(free_port())])
    yield standin.url
    standin.stop()
