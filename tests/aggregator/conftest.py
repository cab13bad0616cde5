"""Aggregator fixtures: the real aggregator on the real (moto) DynamoDB and Kinesis, with a fixed
clock, and a factory for a second one on the same table (a restart, a second task)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from aggregator.app import build_aggregator
from aggregator.service import Aggregator
from tests.aggregator.helpers import NOW
from tests.support import Stack

AggregatorFactory = Callable[..., Aggregator]


@pytest.fixture
def new_aggregator(stack: Stack) -> AggregatorFactory:
    def build(clock: Callable[[], datetime] = lambda: NOW, **settings: object) -> Aggregator:
        return build_aggregator(stack.settings.model_copy(update=settings), clock=clock)

    return build
