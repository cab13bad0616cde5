"""Micro-batching of Kinesis PutRecords.

Each HTTP request puts its record in a queue and awaits a future; a flusher sends up to 500 records
/ 5 MiB per PutRecords: a full batch as soon as one of ``max_in_flight`` calls is free, a partial one
as soon as no other partial batch is in flight (Nagle's rule; after ``linger`` seconds when that is
set). Records that arrive meanwhile ride along in the next call, so batches grow with the load and
Kinesis's latency without making a lone request wait. A request is answered 202 only when its own
entry came back with a sequence number.

Retries are split by who can see the failure: botocore's standard retry mode retries whole calls
(throttling, 5xx, connection errors); only this class can see entries that failed inside a
successful PutRecords (FailedRecordCount > 0), so it resends exactly those, with capped, jittered
backoff.

Every record has a deadline, ``retry_deadline`` seconds after it was submitted, and its future is
settled by then whatever Kinesis does: each PutRecords call (botocore's own retries and timeouts
included) is cut off at the earliest deadline of its entries, and a record still queued at its
deadline is not sent. A black-holed Kinesis therefore costs a request at most ``retry_deadline``.

Accepted records are logged per PutRecords call, ``EVENT_IDS_PER_LINE`` event ids per line with their
shard and sequence number (one line per event was the largest fixed cost of a request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

__all__ = [
    "EVENT_IDS_PER_LINE",
    "BatcherClosed",
    "BatcherStats",
    "KinesisBatcher",
    "KinesisUnavailable",
    "PutResult",
    "QueueFull",
]

logger = logging.getLogger(__name__)

# Kinesis PutRecords limits: 500 entries, 5 MiB in total, 1 MiB per entry (data + partition key).
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
# Accepted event ids per "events accepted" log line (as the consumer's per-batch lines).
EVENT_IDS_PER_LINE = 100


class KinesisUnavailable(Exception):
    """Kinesis did not accept the record in time; the client should retry (HTTP 503)."""


class QueueFull(KinesisUnavailable):
    """Too many records are waiting; shed load instead of growing memory (HTTP 503)."""


class BatcherClosed(KinesisUnavailable):
    """The gateway is shutting down."""


@dataclass(frozen=True, slots=True)
class PutResult:
    shard_id: str
    sequence_number: str


@dataclass(slots=True)
class _Entry:
    data: bytes
    partition_key: str
    future: asyncio.Future[PutResult]
    deadline: float  # loop time by which the future is settled
    event_id: str | None
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.data) + len(self.partition_key.encode("utf-8"))


@dataclass
class BatcherStats:
    """Counters, and the latest final outcomes (loop time) that readiness reports."""

    calls: int = 0
    records_sent: int = 0
    entries_retried: int = 0
    calls_failed: int = 0
    records_failed: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_success_at: float | None = None

    def failing_since(self, now: float, window: float) -> str | None:
        """Why records are being refused, when the latest outcome within ``window`` s was a failure."""
        if self.last_error_at is None or now - self.last_error_at > window:
            return None
        if self.last_success_at is not None and self.last_success_at >= self.last_error_at:
            return None
        return self.last_error


class KinesisBatcher:
    def __init__(
        self,
        client: Any,
        stream_name: str,
        *,
        max_records: int = MAX_BATCH_RECORDS,
        max_bytes: int = MAX_BATCH_BYTES,
        linger: float = 0.0,
        max_pending: int = 20_000,
        max_in_flight: int = 4,
        retry_deadline: float = 10.0,
        backoff_base: float = 0.05,
        backoff_cap: float = 2.0,
    ) -> None:
        self._client = client
        self._stream = stream_name
        self._max_records = min(max_records, MAX_BATCH_RECORDS)
        self._max_bytes = min(max_bytes, MAX_BATCH_BYTES)
        self._linger = linger
        self._max_pending = max_pending
        self._retry_deadline = retry_deadline
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._pending: deque[_Entry] = deque()
        self._pending_bytes = 0
        self._has_work = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        # The partial batch in flight (see _run), and an event set while there is none.
        self._partial_batch: list[_Entry] | None = None
        self._no_partial_in_flight = asyncio.Event()
        self._no_partial_in_flight.set()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = BatcherStats()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._flusher = asyncio.create_task(self._run(), name="kinesis-batcher")

    async def close(self, drain_seconds: float = 30.0) -> None:
        """Stop taking records, send everything queued, wait for in-flight calls (drain)."""
        self._closing = True
        self._has_work.set()
        self._batch_full.set()
        if self._flusher:
            try:
                await asyncio.wait_for(asyncio.shield(self._flusher), drain_seconds)
            except TimeoutError:
                logger.error("batcher drain timed out", extra={"pending": len(self._pending)})
                self._flusher.cancel()
        for entry in self._pending:  # only after a timed-out drain
            _fail(entry, BatcherClosed("gateway shut down before the record was sent"))
        self._pending.clear()

    def stop_lingering(self) -> None:
        """Send what is queued at once, and every later record without waiting for a fuller batch.

        Called when the gateway starts to stop: the requests still in flight wait for their records'
        puts, and the server waits for those requests before the batcher is closed, so a long linger
        would hold the whole shutdown (past its timeout: disconnected clients) for no gain.
        """
        self._linger = 0.0
        self._batch_full.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def retry_deadline(self) -> float:
        return self._retry_deadline

    # -- producer side -------------------------------------------------------------------------
    def submit(
        self, data: bytes, partition_key: str, *, event_id: str | None = None
    ) -> asyncio.Future[PutResult]:
        """Queue one record; the future resolves once Kinesis has accepted it, or fails with
        KinesisUnavailable within ``retry_deadline`` seconds. ``event_id`` names the record in the
        "events accepted" log lines."""
        if self._closing:
            raise BatcherClosed("gateway is shutting down")
        if len(self._pending) >= self._max_pending:
            raise QueueFull(f"{len(self._pending)} records are waiting for Kinesis")
        loop = asyncio.get_running_loop()
        entry = _Entry(
            data, partition_key, loop.create_future(), loop.time() + self._retry_deadline, event_id
        )
        if entry.size > MAX_RECORD_BYTES:
            raise ValueError("record larger than Kinesis' 1 MiB limit")
        self._pending.append(entry)
        self._pending_bytes += entry.size
        self._has_work.set()
        if len(self._pending) >= self._max_records or self._pending_bytes >= self._max_bytes:
            self._batch_full.set()
        return entry.future

    async def put(self, data: bytes, partition_key: str, *, event_id: str | None = None) -> PutResult:
        return await self.submit(data, partition_key, event_id=event_id)

    # -- flusher -------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self._has_work.wait()
            if not self._pending:
                self._has_work.clear()
                if self._closing:
                    break
                continue
            if not self._batch_full.is_set() and not self._closing and self._linger > 0:
                # Wait for a full batch, or the linger time, whichever comes first.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_full.wait(), self._linger)
            if not self._batch_full.is_set() and not self._no_partial_in_flight.is_set():
                # Nagle's rule: one partial batch in flight at a time. The next waits for it (or for a
                # full batch), and the records arriving meanwhile ride along: batches grow with the
                # load and the call latency, a lone request is sent at once, full batches use every slot.
                await _first_of(self._batch_full, self._no_partial_in_flight)
            await self._slots.acquire()
            partial = not self._batch_full.is_set()
            batch = self._take_batch()
            if not batch:
                self._slots.release()
                continue
            if partial:
                self._partial_batch = batch
                self._no_partial_in_flight.clear()
            task = asyncio.create_task(self._send(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _take_batch(self) -> list[_Entry]:
        batch: list[_Entry] = []
        size = 0
        now = asyncio.get_running_loop().time()
        while self._pending and len(batch) < self._max_records:
            entry = self._pending[0]
            if batch and size + entry.size > self._max_bytes:
                break
            self._pending.popleft()
            if entry.future.done() or entry.deadline <= now:
                # The caller gave up (cancelled), or the record waited its whole deadline behind calls
                # Kinesis did not answer: not sent.
                self._pending_bytes -= entry.size
                if not entry.future.done():
                    self._record_failure(1, "not sent in time: Kinesis calls are not being answered")
                    _fail(entry, KinesisUnavailable(self._late_message()))
                continue
            batch.append(entry)
            size += entry.size
        self._pending_bytes -= size
        if len(self._pending) < self._max_records and self._pending_bytes < self._max_bytes:
            self._batch_full.clear()
        return batch

    async def _send(self, batch: list[_Entry]) -> None:
        try:
            await self._send_with_retries(batch)
        except Exception as error:  # never leave a request waiting forever
            logger.exception("unexpected batcher failure")
            for entry in batch:
                _fail(entry, KinesisUnavailable(str(error)))
        finally:
            self._slots.release()
            self._partial_answered(batch)

    def _partial_answered(self, batch: list[_Entry]) -> None:
        """The next partial batch may go, if ``batch`` is the partial one in flight. Called when its
        PutRecords is answered and again when it is done; only the first call counts, so a later
        partial batch already in flight keeps its place."""
        if self._partial_batch is batch:
            self._partial_batch = None
            self._no_partial_in_flight.set()

    def _late_message(self) -> str:
        return f"Kinesis did not accept the record within {self._retry_deadline:g} s"

    def _record_failure(self, records: int, reason: str) -> None:
        self.stats.records_failed += records
        self.stats.last_error = reason
        self.stats.last_error_at = asyncio.get_running_loop().time()

    async def _send_with_retries(self, batch: list[_Entry]) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        entries = batch
        refused: str | None = None  # the error code of entries refused in an earlier round
        while entries:
            deadline = min(entry.deadline for entry in entries)
            self.stats.calls += 1
            try:
                # botocore retries and times out on its own; the deadline bounds all of it.
                async with asyncio.timeout_at(deadline):
                    response = await self._client.put_records(
                        StreamName=self._stream,
                        Records=[{"Data": e.data, "PartitionKey": e.partition_key} for e in entries],
                    )
            except TimeoutError:
                self.stats.calls_failed += 1
                logger.warning(
                    "PutRecords not answered in time",
                    extra={"records": len(entries), "deadline_s": self._retry_deadline, "refused": refused},
                )
                if refused is not None:  # resending refused entries ran into the deadline
                    self._give_up(entries, refused)
                    return
                self._record_failure(len(entries), "PutRecords not answered in time")
                for entry in entries:
                    _fail(entry, KinesisUnavailable(self._late_message()))
                return
            except (ClientError, BotoCoreError) as error:
                # botocore has already retried this call with its standard retry mode.
                self.stats.calls_failed += 1
                self._record_failure(len(entries), f"PutRecords failed: {type(error).__name__}")
                logger.warning("PutRecords failed", extra={"error": str(error), "records": len(entries)})
                for entry in entries:
                    _fail(entry, KinesisUnavailable(f"Kinesis is unavailable: {type(error).__name__}"))
                return
            self._partial_answered(batch)  # the next partial batch may go while refused entries back off
            failed: list[_Entry] = []
            accepted: list[tuple[_Entry, PutResult]] = []
            for entry, result in zip(entries, response["Records"], strict=True):
                if "ErrorCode" in result:
                    failed.append(entry)
                else:
                    put = PutResult(result["ShardId"], result["SequenceNumber"])
                    accepted.append((entry, put))
                    if not entry.future.done():
                        entry.future.set_result(put)
            if accepted:
                self.stats.records_sent += len(accepted)
                self.stats.last_success_at = loop.time()
                _log_accepted(accepted)
            if not failed:
                return
            self.stats.entries_retried += len(failed)
            refused = next((r["ErrorCode"] for r in response["Records"] if "ErrorCode" in r), "")
            attempt += 1
            delay = min(self._backoff_cap, self._backoff_base * 2**attempt) * random.uniform(0.5, 1.0)
            if loop.time() + delay > min(entry.deadline for entry in failed):
                self._give_up(failed, refused)
                return
            logger.info(
                "resending failed PutRecords entries",
                extra={"failed": len(failed), "attempt": attempt, "delay_s": round(delay, 3)},
            )
            await asyncio.sleep(delay)
            entries = failed

    def _give_up(self, entries: list[_Entry], code: str) -> None:
        """Entries Kinesis kept refusing until their deadline."""
        self._record_failure(len(entries), f"records refused: {code}")
        logger.warning("giving up on records after retries", extra={"records": len(entries), "error": code})
        for entry in entries:
            _fail(entry, KinesisUnavailable("Kinesis kept rejecting the record (throughput exceeded)"))


def _log_accepted(accepted: list[tuple[_Entry, PutResult]]) -> None:
    """One INFO line per EVENT_IDS_PER_LINE accepted records that carry an event id (parallel lists:
    ``event_ids[i]`` was written to ``shard_ids[i]`` at ``sequence_numbers[i]``)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    named = [(entry.event_id, put) for entry, put in accepted if entry.event_id is not None]
    for start in range(0, len(named), EVENT_IDS_PER_LINE):
        chunk = named[start : start + EVENT_IDS_PER_LINE]
        logger.info(
            "events accepted",
            extra={
                "events": len(chunk),
                "event_ids": [event_id for event_id, _ in chunk],
                "shard_ids": [put.shard_id for _, put in chunk],
                "sequence_numbers": [put.sequence_number for _, put in chunk],
            },
        )


def _fail(entry: _Entry, error: Exception) -> None:
    if not entry.future.done():
        entry.future.set_exception(error)


async def _first_of(*events: asyncio.Event) -> None:
    """Until one of ``events`` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
