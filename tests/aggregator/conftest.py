"""Aggregator fixtures: a fresh state table (real moto DynamoDB), a fixed clock, event factories."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from aggregator.state import StateRepository
from devops_core.aws import boto_client
from devops_core.settings import Settings
from devstack.resources import dynamodb_table_specs
from tests.aggregator.helpers import NOW


def create_state_table(name: str) -> None:
    settings = Settings(aggregator_state_table=name)
    spec = {k: v for k, v in dynamodb_table_specs(settings)[0].items() if not k.startswith("_")}
    client = boto_client("dynamodb")
    client.create_table(**spec)
    client.get_waiter("table_exists").wait(TableName=name)


@pytest.fixture
def state_table(emulator: str) -> str:
    name = f"agg-state-{uuid.uuid4().hex[:10]}"
    create_state_table(name)
    return name


@pytest.fixture
def new_state(state_table: str) -> Callable[..., StateRepository]:
    """A factory, so a test can build a second repository on the same table (a restart, a 2nd task)."""

    def build(
        window_days: int = 30, clock: Callable[[], datetime] = lambda: NOW, **kw: Any
    ) -> StateRepository:
        return StateRepository(
            boto_client("dynamodb"), state_table, window_days=window_days, clock=clock, **kw
        )

    return build
