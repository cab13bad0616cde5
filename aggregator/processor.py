"""The KCL record processor (amazon_kclpy v3 interface): thin; decoding, dead-lettering and
checkpointing here, everything else in ``Aggregator.handle``.

The KCL process swallows processor exceptions and moves on to the next batch, whose checkpoint
would then skip the failed records. So this class owns retries and never gives up on a batch: it is
retried (capped backoff) until state writes and emits succeed, and only then checkpointed. Past
``retry_deadline`` each failure is logged as an error (the shard is blocked: page someone). Only a
stop request (``stop()``, used by the local driver's owner on shutdown) abandons the batch, without a
checkpoint, so it is delivered again after the restart.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from amazon_kclpy.v3 import processor
from pydantic import ValidationError

from aggregator.deadletters import DeadLetter, DeadLetterQueue
from aggregator.service import Aggregator, HandleOutcome
from devops_core.events import DevOpsEvent
from devops_core.kcl import checkpoint

__all__ = ["AggregatorProcessor", "BatchAbandoned", "ProcessorStats"]

logger = logging.getLogger(__name__)

# Per-batch INFO lines list the event ids they are about, this many per line (all of them).
EVENT_IDS_PER_LINE = 100


class BatchAbandoned(Exception):
    """The processor was stopped while a batch was still failing; it was not checkpointed."""


class ProcessorStats:
    def __init__(self) -> None:
        self.batches = 0
        self.records = 0
        self.poison = 0
        self.retries = 0


class AggregatorProcessor(processor.RecordProcessorBase):  # type: ignore[misc]
    def __init__(
        self,
        aggregator: Aggregator,
        dead_letters: DeadLetterQueue,
        *,
        retry_deadline: float = 300.0,  # after this, failures are logged as errors
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._aggregator = aggregator
        self._dead_letters = dead_letters
        self._retry_deadline = retry_deadline
        self._sleep = sleep
        self.shard_id: str | None = None
        self.stats = ProcessorStats()
        self._batch_ids: list[str] = []
        # Set by stop(): on SIGTERM in a daemon child, or by the local driver's owner. A failing
        # batch stops retrying, so a shutdown request is answered in time; it is not checkpointed.
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Abandon a batch that is still being retried (no checkpoint); called on shutdown
        (by the local driver's owner, or on a signal in a daemon child)."""
        self._stopping.set()

    @property
    def aggregator(self) -> Aggregator:
        return self._aggregator

    # -- KCL seams -----------------------------------------------------------------------------
    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        logger.info("aggregator processor started", extra={"shard_id": self.shard_id})

    def process_records(self, process_records_input: Any) -> None:
        records = process_records_input.records
        if not records:
            return
        try:
            self.process_batch(records)
        except BatchAbandoned:
            logger.warning("batch abandoned on stop; not checkpointing", extra={"shard_id": self.shard_id})
            return
        checkpoint(process_records_input.checkpointer, records[-1].sequence_number, shard_id=self.shard_id)

    def lease_lost(self, lease_lost_input: Any) -> None:
        logger.info("lease lost; not checkpointing", extra={"shard_id": self.shard_id})

    def shard_ended(self, shard_ended_input: Any) -> None:
        checkpoint(shard_ended_input.checkpointer, shard_id=self.shard_id)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        # Every processed batch was checkpointed already; this only confirms the position.
        checkpoint(shutdown_requested_input.checkpointer, shard_id=self.shard_id)

    # -- work ----------------------------------------------------------------------------------
    def process_batch(self, records: list[Any]) -> HandleOutcome:
        """Decode, dead-letter poison, aggregate with retries; returns only when all succeeded."""
        events: list[DevOpsEvent] = []
        poison: list[DeadLetter] = []
        for record in records:
            try:
                events.append(DevOpsEvent.from_record_data(record.binary_data))
            except (ValidationError, ValueError) as error:
                poison.append(
                    DeadLetter(
                        reason=_reason(error),
                        sequence_number=record.sequence_number,
                        partition_key=record.partition_key,
                        data=record.binary_data.decode("utf-8", errors="replace"),
                        shard_id=self.shard_id,
                    )
                )
        if poison:
            logger.warning(
                "poison records",
                extra={"count": len(poison), "sequence_numbers": [p.sequence_number for p in poison][:10]},
            )
        for start in range(0, len(events), EVENT_IDS_PER_LINE):
            chunk = [event.event_id for event in events[start : start + EVENT_IDS_PER_LINE]]
            logger.info(
                "events received",
                extra={"shard_id": self.shard_id, "events": len(chunk), "event_ids": chunk},
            )
        self.stats.poison += len(poison)
        self._batch_ids = [event.event_id for event in events]
        outcome = self._with_retries(lambda: self._work(events, poison))
        self.stats.batches += 1
        self.stats.records += len(records)
        return outcome

    def _work(self, events: list[DevOpsEvent], poison: list[DeadLetter]) -> HandleOutcome:
        self._dead_letters.send(poison)
        poison.clear()  # sent: a retry of the aggregation must not send them again
        return self._aggregator.handle(events)

    def _with_retries(self, work: Callable[[], HandleOutcome]) -> HandleOutcome:
        escalate_at = time.monotonic() + self._retry_deadline
        attempt = 0
        while True:
            if self._stopping.is_set():
                raise BatchAbandoned(f"stopped after {attempt} failed attempts")
            try:
                return work()
            except Exception as error:  # retried below; never skipped (see module docstring)
                attempt += 1
                delay = min(10.0, 0.2 * 2**attempt) * random.uniform(0.5, 1.0)
                self.stats.retries += 1
                log = logger.error if time.monotonic() > escalate_at else logger.warning
                log(
                    "batch failed; retrying, not checkpointing",
                    extra={
                        "shard_id": self.shard_id,
                        "attempt": attempt,
                        "error": repr(error),
                        "event_ids": self._batch_ids[:20],  # bounded: enough to find the batch
                    },
                )
                if self._sleep is time.sleep:
                    self._stopping.wait(delay)  # a stop request cuts the wait short
                else:
                    self._sleep(delay)


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in error.errors()
        )[:1000]
    return str(error)[:1000]
