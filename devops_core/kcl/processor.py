"""One record processor for every KCL application (the consumer and the aggregator).

After powertools' batch processor: the core decodes a batch, parks poison records in the dead-letter
queue, hands the rest to the application as a ``Job`` and retries the job's ``attempt()`` with the one
backoff policy until it is complete, then checkpoints exactly the last record of the batch. The
application only says, per attempt, what is done, what can never succeed (dead letters) and what
must be retried.

The KCL's rules, implemented once here:

- Returning from ``process_records`` lets the KCL deliver the next batch, and checkpointing that one
  would cover this one. So a batch is retried inside ``process_records`` until it is handled; the only
  way out without it is a stop request (SIGTERM to a daemon child, shutdown of the local driver), and
  then the batch is *abandoned*: never checkpointed, and neither is anything after it, for the rest
  of this processor's life (it is redelivered after the restart).
- ``shutdown_requested`` checkpoints the last fully handled record, never "the last delivered" (a
  checkpoint without a sequence number), which would skip an abandoned batch.
- ``shard_ended`` checkpoints SHARD_END (the KCL requires it to start the child shards), unless a batch
  was abandoned.
- ``lease_lost``: another worker owns the shard; no checkpoint.
- The KCL's process swallows processor exceptions and reports the action done, so nothing escapes
  ``process_records``: an attempt that raises is a failed attempt, retried like any other.
- A configuration error (401/403, AccessDenied) is an outage: retried and logged at ERROR with
  ``alarm=sink_misconfigured`` (the CloudWatch alarm's filter), never a reason to dead-letter events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from amazon_kclpy.v3.processor import RecordProcessorBase
from pydantic import ValidationError

from devops_core.aws import boto_client, client_config, is_configuration_error
from devops_core.dead_letters import DeadLetter, DeadLetterQueue
from devops_core.events import DevOpsEvent
from devops_core.kcl.checkpointing import checkpoint
from devops_core.retry import Backoff
from devops_core.settings import Settings

__all__ = [
    "EVENT_IDS_PER_LINE",
    "Application",
    "Attempt",
    "Batch",
    "DeadLetterWriter",
    "Entry",
    "InRecord",
    "Job",
    "ProcessorStats",
    "Rejection",
    "StreamProcessor",
    "build_stream_processor",
    "decode",
    "log_event_ids",
]

logger = logging.getLogger(__name__)

# Per-batch INFO lines name the events they are about, at most this many ids per line (a 10,000-record
# batch gives 100 lines, not 10,000), so one event can be traced by its id through every component.
EVENT_IDS_PER_LINE = 100


@dataclass(frozen=True, slots=True)
class InRecord:
    """A Kinesis record as any driver hands it over (the daemon's message or boto3 GetRecords)."""

    data: bytes
    sequence_number: str
    sub_sequence_number: int = 0
    partition_key: str | None = None

    @classmethod
    def from_kcl(cls, record: Any) -> InRecord:
        """From an ``amazon_kclpy.messages.Record`` (base64 data, as the daemon sends it)."""
        return cls(
            data=record.binary_data,
            sequence_number=record.sequence_number,
            sub_sequence_number=int(record.sub_sequence_number or 0),
            partition_key=record.partition_key,
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """A record that decoded into an event."""

    record: InRecord
    event: DevOpsEvent


@dataclass(frozen=True, slots=True)
class Rejection:
    """An entry that can never succeed; the core dead-letters it with ``stage`` and ``reason``."""

    entry: Entry
    stage: str
    reason: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one try of a job achieved."""

    complete: bool
    rejected: Sequence[Rejection] = ()
    retry_after: float | None = None  # a server's hint (Retry-After) for the next try
    errors: Sequence[str] = ()
    pending: Mapping[str, int] = field(default_factory=dict)  # per sink/step, for the logs
    misconfigured: bool = False  # 401/403, AccessDenied: an outage an operator must fix


class Job(Protocol):
    """One batch's work inside an application; ``attempt`` is called until it is complete and must
    only redo what is not done yet (each call may be a retry after a partial failure)."""

    def attempt(self) -> Attempt: ...


class Application(Protocol):
    name: str

    def begin(self, batch: Batch) -> Job: ...


class DeadLetterWriter(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]: ...


@dataclass
class Batch:
    shard_id: str
    records: list[InRecord]
    entries: list[Entry]
    poison: list[DeadLetter]

    @property
    def last(self) -> InRecord:
        return self.records[-1]

    @property
    def event_ids(self) -> list[str]:
        return [entry.event.event_id for entry in self.entries]


@dataclass
class ProcessorStats:
    batches: int = 0
    records: int = 0
    poison: int = 0
    rejected: int = 0
    retries: int = 0
    abandoned: int = 0


def _reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "record"
        parts.append(f"{where}: {item['msg']}")
    return "invalid record: " + "; ".join(parts)


def decode(records: Sequence[InRecord], shard_id: str, application: str) -> Batch:
    """Every record decodes into an event or becomes a dead letter (stage ``decode``)."""
    entries: list[Entry] = []
    poison: list[DeadLetter] = []
    for record in records:
        try:
            entries.append(Entry(record, DevOpsEvent.from_record_data(record.data)))
        except (ValidationError, ValueError) as error:
            reason = _reason(error) if isinstance(error, ValidationError) else f"invalid record: {error}"
            poison.append(_letter(application, shard_id, record, "decode", reason, None))
    return Batch(shard_id=shard_id, records=list(records), entries=entries, poison=poison)


def _letter(
    application: str, shard_id: str, record: InRecord, stage: str, reason: str, event_id: str | None
) -> DeadLetter:
    return DeadLetter.for_data(
        record.data,
        application=application,
        stage=stage,
        reason=reason,
        shard_id=shard_id,
        sequence_number=record.sequence_number,
        sub_sequence_number=record.sub_sequence_number,
        partition_key=record.partition_key,
        event_id=event_id,
    )


def log_event_ids(message: str, event_ids: Sequence[str], **extra: Any) -> None:
    """INFO lines carrying ``event_ids`` (all of them, EVENT_IDS_PER_LINE per line)."""
    for start in range(0, len(event_ids), EVENT_IDS_PER_LINE):
        chunk = list(event_ids[start : start + EVENT_IDS_PER_LINE])
        logger.info(message, extra={**extra, "events": len(chunk), "event_ids": chunk})


class StreamProcessor(RecordProcessorBase):  # type: ignore[misc]
    """The amazon_kclpy v3 processor shared by every application (see the module docstring)."""

    def __init__(
        self,
        application: Application,
        dead_letters: DeadLetterWriter,
        *,
        backoff: Backoff,
        escalate_after: float,
        stopping: threading.Event | None = None,
    ) -> None:
        self.application = application
        self._dead_letters = dead_letters
        self._backoff = backoff
        self._escalate_after = escalate_after
        # Set by stop(): a batch still failing is abandoned. Shared when one stop ends many processors.
        self._stopping = stopping or threading.Event()
        self.shard_id = "unknown"
        self.stats = ProcessorStats()
        self.lease_lost_flag = False
        self._handled: InRecord | None = None  # the last record of the last fully handled batch
        self._checkpointed: InRecord | None = None
        self._abandoned = False

    def stop(self) -> None:
        """Abandon a batch that is still being retried (no checkpoint); on SIGTERM in a daemon child, or
        by the owner of the local driver at shutdown."""
        self._stopping.set()

    @property
    def abandoned(self) -> bool:
        return self._abandoned

    # -- the KCL's seams -------------------------------------------------------------------------
    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        logger.info(
            "processor initialized",
            extra={
                "application": self.application.name,
                "shard_id": self.shard_id,
                "from_sequence": getattr(initialize_input, "sequence_number", None),
            },
        )

    def process_records(self, process_records_input: Any) -> None:
        records = [InRecord.from_kcl(record) for record in process_records_input.records]
        if not records:
            return
        if self._abandoned:
            # Handling (and checkpointing) a later batch would skip the abandoned one.
            logger.warning(
                "batch not handled: an earlier batch was abandoned; waiting for shutdown",
                extra={"shard_id": self.shard_id, "records": len(records)},
            )
            return
        if not self.handle(records):
            return
        self._checkpoint(process_records_input.checkpointer, records[-1])

    def lease_lost(self, lease_lost_input: Any) -> None:
        self.lease_lost_flag = True
        logger.info("lease lost; not checkpointing", extra={"shard_id": self.shard_id})

    def shard_ended(self, shard_ended_input: Any) -> None:
        if self._abandoned:
            logger.error(
                "shard ended after an abandoned batch; not checkpointing SHARD_END",
                extra={"shard_id": self.shard_id},
            )
            return
        logger.info("shard ended", extra={"shard_id": self.shard_id})
        checkpoint(shard_ended_input.checkpointer, shard_id=self.shard_id)  # SHARD_END: no sequence number

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        handled = self._handled
        if handled is not None and handled != self._checkpointed:
            self._checkpoint(shutdown_requested_input.checkpointer, handled)
        logger.info(
            "shutdown requested",
            extra={
                "shard_id": self.shard_id,
                "checkpointed": handled.sequence_number if handled else None,
                "abandoned": self._abandoned,
            },
        )

    # -- work ------------------------------------------------------------------------------------
    def handle(self, records: Sequence[InRecord]) -> bool:
        """Decode, dead-letter, run the job until complete; True if the batch may be checkpointed,
        False if a stop request abandoned it (it is then never checkpointed)."""
        batch = decode(records, self.shard_id, self.application.name)
        self.stats.poison += len(batch.poison)
        if batch.poison:
            logger.warning(
                "poison records",
                extra={
                    "shard_id": self.shard_id,
                    "count": len(batch.poison),
                    "sequence_numbers": [letter.sequence_number for letter in batch.poison][:10],
                },
            )
        log_event_ids(
            "events received", batch.event_ids, application=self.application.name, shard_id=self.shard_id
        )
        if not self._run(batch):
            self._abandoned = True
            self.stats.abandoned += 1
            logger.warning(
                "batch abandoned on stop; not checkpointing it or anything after it",
                extra={"shard_id": self.shard_id, "first_sequence": records[0].sequence_number},
            )
            return False
        self._handled = batch.last
        self.stats.batches += 1
        self.stats.records += len(records)
        return True

    def _run(self, batch: Batch) -> bool:
        letters: list[DeadLetter] = list(batch.poison)
        job: Job | None = None
        done = False
        failures = 0
        started = time.monotonic()
        while True:
            attempt = Attempt(complete=True)
            if not done:
                attempt = self._attempt(job := job or self.application.begin(batch), first=not failures)
                done = attempt.complete
                letters += [
                    _letter(
                        self.application.name,
                        batch.shard_id,
                        r.entry.record,
                        r.stage,
                        r.reason,
                        r.entry.event.event_id,
                    )
                    for r in attempt.rejected
                ]
                self.stats.rejected += len(attempt.rejected)
            if letters:
                letters = self._send_letters(letters)
            if done and not letters:
                if failures:
                    logger.info(
                        "batch handled after retries",
                        extra={"shard_id": self.shard_id, "failures": failures},
                    )
                return True
            failures += 1
            self.stats.retries += 1
            delay = self._backoff.delay(failures, attempt.retry_after)
            self._log_failure(batch, attempt, letters, failures, delay, time.monotonic() - started)
            if self._stopping.wait(delay):
                return False

    def _attempt(self, job: Job, *, first: bool) -> Attempt:
        try:
            return job.attempt()
        except Exception as error:  # retried: an exception must never skip a batch (module docstring)
            if first:  # the traceback once per batch; the retries are summarized by _log_failure
                logger.warning("attempt raised", extra={"shard_id": self.shard_id}, exc_info=True)
            return Attempt(
                complete=False,
                errors=(f"{type(error).__name__}: {error}"[:500],),
                misconfigured=is_configuration_error(error),
            )

    def _send_letters(self, letters: list[DeadLetter]) -> list[DeadLetter]:
        try:
            return self._dead_letters.send(letters)
        except Exception as error:  # kept and resent: the batch is not checkpointed until they are parked
            logger.warning("dead-letter send raised", extra={"error": repr(error)[:300]})
            return letters

    def _log_failure(
        self,
        batch: Batch,
        attempt: Attempt,
        letters: list[DeadLetter],
        failures: int,
        delay: float,
        elapsed: float,
    ) -> None:
        if not (failures == 1 or failures % 10 == 0 or attempt.misconfigured):
            return
        extra: dict[str, Any] = {
            "application": self.application.name,
            "shard_id": self.shard_id,
            "failures": failures,
            "delay_s": round(delay, 2),
            "pending": dict(attempt.pending),
            "errors": list(attempt.errors)[:3],
            "unsent_dead_letters": len(letters),
            # bounded: enough to find a stuck event, not a wall of ids per retry
            "event_ids": batch.event_ids[:20],
        }
        if attempt.misconfigured:
            extra["alarm"] = "sink_misconfigured"
            logger.error(
                "sink misconfigured (credentials or permissions); retrying, not checkpointing", extra=extra
            )
        elif elapsed > self._escalate_after:
            logger.error("batch still failing; the shard is blocked", extra=extra)
        else:
            logger.warning("batch failed; retrying, not checkpointing", extra=extra)

    def _checkpoint(self, checkpointer: Any, record: InRecord) -> None:
        if checkpoint(
            checkpointer,
            record.sequence_number,
            sub_sequence_number=record.sub_sequence_number or None,
            shard_id=self.shard_id,
        ):
            self._checkpointed = record


def build_stream_processor(
    application: Application, settings: Settings, *, stopping: threading.Event | None = None
) -> StreamProcessor:
    """A processor for ``application`` with the project's retry policy and dead-letter queue."""
    sqs = boto_client("sqs", config=client_config(max_attempts=3, connect_timeout=2, read_timeout=5))
    return StreamProcessor(
        application,
        DeadLetterQueue(sqs, settings.dead_letter_queue_name),
        backoff=Backoff(cap=settings.processor_max_backoff_seconds),
        escalate_after=settings.processor_alarm_after_seconds,
        stopping=stopping,
    )
