"""The consumer's logic, independent of who drives it: decode a batch, write it to every sink,
dead-letter what can never succeed, and say whether the batch may be checkpointed.

A ``Batch`` remembers, per sink, which events that sink has not taken yet. ``handle`` makes one
pass and only ever resends what is still pending, so when Timestream is down and New Relic is up,
retries go to Timestream alone and New Relic never receives an event twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from consumer.sinks.base import Sink, WriteResult
from consumer.sinks.dead_letter import DeadLetter
from devops_core.events import DevOpsEvent

__all__ = ["Batch", "BatchHandler", "DeadLetterTarget", "InRecord", "Outcome", "decode"]

logger = logging.getLogger(__name__)

# Per-batch INFO lines name the events they are about, at most this many ids per line (a sink
# takes a batch in one pass, so a 10,000-record batch gives 100 lines per sink, not 10,000).
EVENT_IDS_PER_LINE = 100


@dataclass(frozen=True, slots=True)
class InRecord:
    """A Kinesis record as any driver hands it over (KCL message or boto3 GetRecords)."""

    data: bytes
    sequence_number: str
    sub_sequence_number: int = 0
    partition_key: str | None = None

    @classmethod
    def from_kcl(cls, record: Any) -> InRecord:
        """From an ``amazon_kclpy.messages.Record`` (base64 data as the daemon sends it)."""
        return cls(
            data=record.binary_data,
            sequence_number=record.sequence_number,
            sub_sequence_number=int(record.sub_sequence_number or 0),
            partition_key=record.partition_key,
        )


@dataclass(slots=True)
class _Entry:
    record: InRecord
    event: DevOpsEvent


@dataclass
class Batch:
    shard_id: str
    records: list[InRecord]
    entries: list[_Entry]
    pending: dict[str, list[_Entry]]
    dead_letters: list[DeadLetter] = field(default_factory=list)
    poison: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    attempts: int = 0

    @property
    def last(self) -> InRecord | None:
        return self.records[-1] if self.records else None

    @property
    def complete(self) -> bool:
        return not self.dead_letters and not any(self.pending.values())


@dataclass(frozen=True, slots=True)
class Outcome:
    complete: bool
    records: int
    events: int
    poison: int
    dead_lettered: int
    pending: dict[str, int]
    retry_after: float | None = None
    errors: tuple[str, ...] = ()


class DeadLetterTarget(Protocol):
    async def send(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]: ...


def _letter(shard_id: str, record: InRecord, stage: str, reason: str, event_id: str | None) -> DeadLetter:
    return DeadLetter.for_data(
        record.data,
        reason=reason,
        stage=stage,
        shard_id=shard_id,
        sequence_number=record.sequence_number,
        sub_sequence_number=record.sub_sequence_number,
        partition_key=record.partition_key,
        event_id=event_id,
    )


def _reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "record"
        parts.append(f"{where}: {item['msg']}")
    return "invalid record: " + "; ".join(parts)


def decode(records: Iterable[InRecord], shard_id: str, sink_names: Iterable[str]) -> Batch:
    """Validate every record; poison becomes a dead letter, a repeated event_id is written once."""
    records = list(records)
    entries: list[_Entry] = []
    letters: list[DeadLetter] = []
    seen: set[str] = set()
    duplicates = 0
    for record in records:
        try:
            event = DevOpsEvent.from_record_data(record.data)
        except ValidationError as error:
            letters.append(_letter(shard_id, record, "decode", _reason(error), None))
            continue
        if event.event_id in seen:
            duplicates += 1
            continue
        seen.add(event.event_id)
        entries.append(_Entry(record, event))
    return Batch(
        shard_id=shard_id,
        records=records,
        entries=entries,
        pending={name: list(entries) for name in sink_names},
        dead_letters=letters,
        poison=len(letters),
        duplicates=duplicates,
    )


def _log_event_ids(message: str, event_ids: list[str], **extra: Any) -> None:
    """INFO lines carrying ``event_ids`` (all of them, EVENT_IDS_PER_LINE per line), so one event can
    be traced from the gateway's "event accepted" line to each sink."""
    for start in range(0, len(event_ids), EVENT_IDS_PER_LINE):
        chunk = event_ids[start : start + EVENT_IDS_PER_LINE]
        logger.info(message, extra={**extra, "events": len(chunk), "event_ids": chunk})


class BatchHandler:
    def __init__(self, sinks: Sequence[Sink], dead_letters: DeadLetterTarget) -> None:
        self.sinks = list(sinks)
        self._dead_letters = dead_letters

    def new_batch(self, records: Iterable[InRecord], shard_id: str) -> Batch:
        return decode(records, shard_id, [sink.name for sink in self.sinks])

    async def handle(self, batch: Batch) -> Outcome:
        """One pass: each sink gets what it has not taken yet; then the dead letters are sent."""
        batch.attempts += 1
        active = [sink for sink in self.sinks if batch.pending.get(sink.name)]
        results = await asyncio.gather(*(self._write(sink, batch.pending[sink.name]) for sink in active))
        retry_after: float | None = None
        errors: list[str] = []
        for sink, (entries, result) in zip(active, results, strict=True):
            by_event = {id(entry.event): entry for entry in entries}
            batch.pending[sink.name] = [by_event[id(event)] for event in result.pending]
            not_taken = {id(event) for event in result.pending} | {id(r.event) for r in result.rejected}
            _log_event_ids(
                f"events written to {sink.name}",
                [entry.event.event_id for entry in entries if id(entry.event) not in not_taken],
                sink=sink.name,
                shard_id=batch.shard_id,
                attempt=batch.attempts,
            )
            for rejection in result.rejected:
                entry = by_event[id(rejection.event)]
                batch.dead_letters.append(
                    _letter(batch.shard_id, entry.record, sink.name, rejection.reason, entry.event.event_id)
                )
            if result.error:
                errors.append(f"{sink.name}: {result.error}")
            if result.retry_after is not None:
                retry_after = max(retry_after or 0.0, result.retry_after)
        if batch.dead_letters:
            before = len(batch.dead_letters)
            batch.dead_letters = await self._dead_letters.send(batch.dead_letters)
            batch.dead_lettered += before - len(batch.dead_letters)
            if batch.dead_letters:
                errors.append(f"dead_letter: {len(batch.dead_letters)} not sent")
        return Outcome(
            complete=batch.complete,
            records=len(batch.records),
            events=len(batch.entries),
            poison=batch.poison,
            dead_lettered=batch.dead_lettered,
            pending={name: len(entries) for name, entries in batch.pending.items() if entries},
            retry_after=retry_after,
            errors=tuple(errors),
        )

    @staticmethod
    async def _write(sink: Sink, entries: list[_Entry]) -> tuple[list[_Entry], WriteResult]:
        try:
            result = await sink.write([entry.event for entry in entries])
        except Exception as error:  # a sink bug must not lose events: keep them pending, log loudly
            logger.exception("sink raised", extra={"sink": sink.name})
            result = WriteResult(pending=[entry.event for entry in entries], error=repr(error))
        return entries, result
