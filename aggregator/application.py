"""The aggregator as a stream application for the shared processor core: a batch's job is one call
of ``Aggregator.handle`` (idempotent, so a retry simply runs it again)."""

from __future__ import annotations

from aggregator.service import Aggregator
from devops_core.kcl.processor import Attempt, Batch

__all__ = ["AggregatorApplication", "AggregatorJob"]


class AggregatorApplication:
    name = "aggregator"

    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator

    def begin(self, batch: Batch) -> AggregatorJob:
        return AggregatorJob(self.aggregator, batch)


class AggregatorJob:
    def __init__(self, aggregator: Aggregator, batch: Batch) -> None:
        self._aggregator = aggregator
        self._batch = batch

    def attempt(self) -> Attempt:
        self._aggregator.handle([entry.event for entry in self._batch.entries])
        return Attempt(complete=True)
