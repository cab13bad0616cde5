"""The KCL v3 record processor: thin glue between the KCL lifecycle and ``BatchHandler``.

Checkpoints only after every sink took the batch (or what never can was dead-lettered). While a
sink is down it blocks inside ``process_records`` with capped, jittered backoff instead of returning:
returning would let the KCL hand over the next batch, whose checkpoint would cover this one.
Never checkpoints after lease loss. The KCL process swallows processor exceptions, so every
decision (retry, park, give up) is made here.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from amazon_kclpy.v3.processor import RecordProcessorBase

from consumer.handler import Batch, InRecord
from consumer.runtime import ConsumerRuntime
from devops_core.kcl import checkpoint

__all__ = ["ConsumerProcessor"]

logger = logging.getLogger(__name__)

_BACKOFF_BASE = 0.2
_MAX_RETRY_AFTER = 300.0


def _pending_ids(batch: Batch, limit: int) -> list[str]:
    ids: dict[str, None] = {}
    for entries in batch.pending.values():
        for entry in entries:
            ids[entry.event.event_id] = None
            if len(ids) >= limit:
                return list(ids)
    return list(ids)


class ConsumerProcessor(RecordProcessorBase):
    def __init__(self, runtime: ConsumerRuntime) -> None:
        self._runtime = runtime
        self.shard_id = "unknown"
        self.lease_lost_flag = False
        # The last record every sink has taken; shutdown checkpoints here, not at "latest delivered".
        self._done: InRecord | None = None
        self._checkpointed: InRecord | None = None

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        logger.info(
            "consumer initialized",
            extra={"shard_id": self.shard_id, "from_sequence": initialize_input.sequence_number},
        )

    def process_records(self, process_records_input: Any) -> None:
        records = [InRecord.from_kcl(record) for record in process_records_input.records]
        if not records:
            return
        batch = self._runtime.handler.new_batch(records, self.shard_id)
        if not self._deliver(batch):
            return  # stopping with the batch unfinished: no checkpoint, it will be redelivered
        self._done = batch.last
        self._checkpoint(process_records_input.checkpointer, batch.last)

    def lease_lost(self, lease_lost_input: Any) -> None:
        self.lease_lost_flag = True
        logger.info("lease lost; not checkpointing", extra={"shard_id": self.shard_id})

    def shard_ended(self, shard_ended_input: Any) -> None:
        # Every batch of the shard was delivered before this call; the KCL requires this checkpoint.
        logger.info("shard ended", extra={"shard_id": self.shard_id})
        checkpoint(shard_ended_input.checkpointer, shard_id=self.shard_id)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        if self._done is not None and self._done != self._checkpointed:
            self._checkpoint(shutdown_requested_input.checkpointer, self._done)
        logger.info("shutdown requested", extra={"shard_id": self.shard_id})

    def _checkpoint(self, checkpointer: Any, record: InRecord | None) -> None:
        if record is None:
            return
        if checkpoint(
            checkpointer,
            record.sequence_number,
            sub_sequence_number=record.sub_sequence_number or None,
            shard_id=self.shard_id,
        ):
            self._checkpointed = record

    def _deliver(self, batch: Batch) -> bool:
        """Retry the batch until every sink took it; False if told to stop first."""
        runtime = self._runtime
        cap = runtime.settings.consumer_max_backoff_seconds
        failures = 0
        while True:
            outcome = runtime.run(runtime.handler.handle(batch))
            if outcome.complete:
                if failures:
                    logger.info(
                        "sinks back; batch delivered",
                        extra={"shard_id": self.shard_id, "attempts": batch.attempts},
                    )
                if outcome.poison or outcome.dead_lettered:
                    logger.info(
                        "batch had dead letters",
                        extra={"poison": outcome.poison, "dead_lettered": outcome.dead_lettered},
                    )
                return True
            failures += 1
            delay = min(cap, _BACKOFF_BASE * 2 ** min(failures - 1, 16)) * random.uniform(0.5, 1.0)
            if outcome.retry_after is not None:
                delay = max(delay, min(outcome.retry_after, _MAX_RETRY_AFTER))
            if failures == 1 or failures % 10 == 0:
                logger.warning(
                    "sink unavailable; backing off, not checkpointing",
                    extra={
                        "shard_id": self.shard_id,
                        "pending": outcome.pending,
                        # bounded: enough to find a stuck event, not a wall of ids per retry
                        "pending_event_ids": _pending_ids(batch, 20),
                        "errors": list(outcome.errors)[:3],
                        "delay_s": round(delay, 2),
                        "failures": failures,
                    },
                )
            if runtime.stopping.wait(delay):
                logger.warning("stopping with an undelivered batch", extra={"shard_id": self.shard_id})
                return False
