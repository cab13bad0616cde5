"""The aggregator as a stream application for the shared processor core: a batch's job is one call
of ``Aggregator.handle`` (idempotent, so a retry simply runs it again). An event whose event_id
already names a different event is a conflict: handed back to the core to dead-letter."""

from __future__ import annotations

from aggregator.service import Aggregator
from devops_core.kcl.processor import Attempt, Batch, Entry, Rejection

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
        outcome = self._aggregator.handle([entry.event for entry in self._batch.entries])
        by_event = {id(entry.event): entry for entry in self._batch.entries}
        rejected = [
            Rejection(
                by_event.get(id(conflict.event)) or _entry_of(self._batch, conflict.event),
                "conflict",
                conflict.reason,
            )
            for conflict in outcome.conflicts
        ]
        return Attempt(complete=True, rejected=rejected)


def _entry_of(batch: Batch, event: object) -> Entry:
    return next(entry for entry in batch.entries if entry.event == event)
