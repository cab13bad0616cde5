"""Consumer fixtures: settings wired to the stand-in, and a started ConsumerRuntime."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from consumer.runtime import ConsumerRuntime
from devops_core.settings import Settings


@pytest.fixture
def api_key() -> str:
    """A per-test New Relic key: the shared stand-in scopes faults and logs by it."""
    return f"test-key-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def consumer_settings(stack: Any, newrelic_standin: str, api_key: str) -> Settings:
    return stack.settings.model_copy(
        update={
            "logger_api_key": SecretStr(api_key),
            "new_relic_log_endpoint": f"{newrelic_standin}/log/v1",
            "processor_max_backoff_seconds": 0.5,
        }
    )


@pytest.fixture
def make_runtime() -> Iterator[Callable[[Settings], ConsumerRuntime]]:
    started: list[ConsumerRuntime] = []

    def make(settings: Settings) -> ConsumerRuntime:
        runtime = ConsumerRuntime(settings).start()
        started.append(runtime)
        return runtime

    yield make
    for runtime in started:
        runtime.close()
