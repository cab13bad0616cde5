"""Shared fixtures: one real moto server (over HTTP) per session, unique resources per test,
a fault-injecting proxy, and the gateway built by its real factory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import TestClient

from devstack.resources import provision
from tests.support import AWS_TEST_ENV, Stack, start_background, unique_settings


@pytest.fixture(scope="session")
def emulator() -> Iterator[str]:
    """The moto server (served by hypercorn), shared by the whole session."""
    server = start_background(["-m", "devstack.emulator", "--port", "0"])
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


@pytest.fixture
def stack(emulator: str) -> Stack:
    """Fresh stream, table, secret, queue and state table on the shared emulator."""
    settings = unique_settings()
    return Stack(settings, provision(settings, shard_count=2))


@pytest.fixture
def fault_proxy(emulator: str) -> Iterator[str]:
    """A fault-injecting proxy in front of the emulator; steer it with POST {url}/__faults__."""
    proxy = start_background(["-m", "devstack.faults", "--upstream", emulator, "--port", "0"])
    yield proxy.url
    proxy.stop()


@pytest.fixture
async def gateway(stack: Stack) -> AsyncIterator[TestClient]:
    """The gateway built by its real factory, on a real port, reading its token from Secrets Manager."""
    app_settings = stack.settings.model_copy(update={"devops_events_secret_token": None})
    from producer.app import create_app
    from tests.producer.conftest import start_test_gateway

    server = await start_test_gateway(create_app(app_settings), app_settings)
    async with TestClient(server) as client:
        yield client


@pytest.fixture(scope="session")
def newrelic_standin() -> Iterator[str]:
    """The one New Relic Log API stand-in (devstack/newrelic_standin.py) for the whole session.

    Its log URL is ``{url}/log/v1``; scope faults and reads to your test with a unique Api-Key.
    """
    standin = start_background(["-m", "devstack.newrelic_standin", "--port", "0"])
    yield standin.url
    standin.stop()
