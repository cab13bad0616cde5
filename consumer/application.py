"""The consumer as a stream application: every event of a batch to every sink (the raw-event store,
New Relic), each sink retried alone until it took its part.

A ``ConsumerJob`` remembers, per sink, which events that sink has not taken yet, and each attempt only
resends those: when Timestream is down and New Relic is up, retries go to Timestream alone and New
Relic never receives an event twice. What a sink refuses for good comes back as a rejection, which the
processor core dead-letters. Decoding, retry, dead letters and checkpoints are the core's
(devops_core.kcl.processor).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from consumer.sinks.base import Sink, WriteResult
from devops_core.events import conflict_reason
from devops_core.kcl.processor import Attempt, Batch, Entry, Rejection, log_event_ids

__all__ = ["ConsumerApplication", "ConsumerJob"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, Any]], Any]


class ConsumerApplication:
    name = "consumer"

    def __init__(self, sinks: Sequence[Sink], run: Runner) -> None:
        self.sinks = list(sinks)
        self._run = run  # runs a coroutine on the runtime's event loop and returns its result

    def begin(self, batch: Batch) -> ConsumerJob:
        return ConsumerJob(self.sinks, batch, self._run)


class ConsumerJob:
    def __init__(self, sinks: Sequence[Sink], batch: Batch, run: Runner) -> None:
        # A repeated event_id within one batch (a producer retry) is written once; a different event
        # under an id the batch already used is a conflict: dead-lettered with the reason (as the
        # aggregator's event log does), never dropped without a word.
        unique: dict[str, Entry] = {}
        self.conflicts: list[Rejection] = []
        for entry in batch.entries:
            first = unique.setdefault(entry.event.event_id, entry)
            if first is not entry and first.event.content_digest() != entry.event.content_digest():
                reason = conflict_reason(
                    entry.event.event_id, "earlier in the same batch", outcome="not written"
                )
                self.conflicts.append(Rejection(entry, "conflict", reason))
        self.duplicates = len(batch.entries) - len(unique) - len(self.conflicts)
        self._sinks = list(sinks)
        self._shard_id = batch.shard_id
        self._run = run
        self.pending: dict[str, list[Entry]] = {sink.name: list(unique.values()) for sink in sinks}
        self.attempts = 0

    def attempt(self) -> Attempt:
        result: Attempt = self._run(self._attempt())
        return result

    async def _attempt(self) -> Attempt:
        """One pass: each sink gets what it has not taken yet."""
        self.attempts += 1
        active = [sink for sink in self._sinks if self.pending[sink.name]]
        results = await asyncio.gather(*(self._write(sink, self.pending[sink.name]) for sink in active))
        rejected: list[Rejection] = list(self.conflicts) if self.attempts == 1 else []
        errors: list[str] = []
        retry_after: float | None = None
        misconfigured = False
        for sink, (entries, result) in zip(active, results, strict=True):
            by_event = {id(entry.event): entry for entry in entries}
            self.pending[sink.name] = [by_event[id(event)] for event in result.pending]
            not_taken = {id(event) for event in result.pending} | {id(r.event) for r in result.rejected}
            log_event_ids(
                f"events written to {sink.name}",
                [entry.event.event_id for entry in entries if id(entry.event) not in not_taken],
                sink=sink.name,
                shard_id=self._shard_id,
                attempt=self.attempts,
            )
            rejected += [Rejection(by_event[id(r.event)], sink.name, r.reason) for r in result.rejected]
            if result.error:
                errors.append(f"{sink.name}: {result.error}")
            if result.retry_after is not None:
                retry_after = max(retry_after or 0.0, result.retry_after)
            misconfigured = misconfigured or result.misconfigured
        pending = {name: len(entries) for name, entries in self.pending.items() if entries}
        return Attempt(
            complete=not pending,
            rejected=rejected,
            retry_after=retry_after,
            errors=errors,
            pending=pending,
            misconfigured=misconfigured,
        )

    @staticmethod
    async def _write(sink: Sink, entries: list[Entry]) -> tuple[list[Entry], WriteResult]:
        try:
            result = await sink.write([entry.event for entry in entries])
        except Exception as error:  # a sink bug must not lose events: keep them pending, log loudly
            logger.exception("sink raised", extra={"sink": sink.name})
            result = WriteResult(pending=[entry.event for entry in entries], error=repr(error)[:300])
        return entries, result
