"""An in-process KCL driver for local runs and tests: the same processors, no Java.

It does what the MultiLangDaemon does for one worker: reads every shard of a stream with boto3 (one
thread per shard), hands each batch to a fresh amazon_kclpy v3 record processor as the very input
objects the daemon's JSON lines would produce (``amazon_kclpy.messages``), gives the processor a
checkpointer with ``Checkpointer.checkpoint(sequence_number=None, sub_sequence_number=None)`` that
raises ``CheckpointError`` with the KCL's exception names, and keeps checkpoints in the KCL's lease
table (DynamoDB, named after the application), so a restart resumes after the last checkpoint.

What it deliberately does not do: balance leases between several workers (it is one worker and takes
every lease), enhanced fan-out, KPL de-aggregation. A closed shard's children start only after the
parent was checkpointed at SHARD_END, as in the KCL.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from amazon_kclpy import messages
from amazon_kclpy.checkpoint_error import CheckpointError
from botocore.exceptions import BotoCoreError, ClientError

from devops_core.aws import boto_client
from devops_core.kcl.leases import SHARD_END, LeaseLostError, LeaseTable
from devops_core.retry import Backoff

__all__ = ["InitialPosition", "LocalCheckpointer", "LocalKclDriver", "ShardStatus"]

logger = logging.getLogger(__name__)

InitialPosition = Literal["TRIM_HORIZON", "LATEST"]
ProcessorFactory = Callable[[], Any]
"""Returns a new ``amazon_kclpy.v3.processor.RecordProcessorBase`` (one per shard, like the daemon)."""

_THROTTLING = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "LimitExceededException",
    "RequestLimitExceeded",
}
_ERROR_BACKOFF = Backoff(base=0.2, cap=5.0)


class _Failures:
    """Consecutive failures of one loop, turned into the project's backoff; reset on success."""

    def __init__(self) -> None:
        self._count = 0

    def next(self) -> float:
        self._count += 1
        return _ERROR_BACKOFF.delay(self._count)

    def reset(self) -> None:
        self._count = 0


def _is_sequence_number(value: str | None) -> bool:
    return bool(value) and value.isdigit()  # type: ignore[union-attr]


def _position(sequence_number: str, sub_sequence_number: int) -> tuple[int, int]:
    return int(sequence_number), sub_sequence_number


def _record_json(record: dict[str, Any]) -> dict[str, Any]:
    """One Kinesis record shaped exactly like the MultiLangDaemon's JSON (``JsonFriendlyRecord``)."""
    return {
        "action": "record",
        "data": base64.b64encode(record["Data"]).decode("ascii"),
        "partitionKey": record["PartitionKey"],
        "sequenceNumber": record["SequenceNumber"],
        "subSequenceNumber": 0,
        "approximateArrivalTimestamp": int(record["ApproximateArrivalTimestamp"].timestamp() * 1000),
    }


@dataclass(frozen=True)
class ShardStatus:
    shard_id: str
    state: str  # starting | running | finished | lease_lost | stopped | failed
    records_delivered: int
    checkpoint: str | None


class LocalCheckpointer:
    """Duck-type of ``amazon_kclpy.kcl.Checkpointer`` backed by the lease table.

    ``checkpoint()`` with no argument checkpoints the last record delivered (or SHARD_END when called
    from ``shard_ended``). Errors are ``CheckpointError`` carrying the KCL's names:
    ``ShutdownException`` (lease lost, or the driver already shut the shard down),
    ``ThrottlingException``, ``KinesisClientLibDependencyException`` (DynamoDB failed),
    ``IllegalArgumentException`` (sequence number not delivered yet or before the last checkpoint).
    """

    def __init__(self, reader: _ShardReader) -> None:
        self._reader = reader

    def checkpoint(self, sequence_number: str | None = None, sub_sequence_number: int | None = None) -> None:
        self._reader.checkpoint(sequence_number, sub_sequence_number)


class _ShardReader:
    """Reads one shard and drives its processor; runs on its own thread."""

    def __init__(
        self,
        driver: LocalKclDriver,
        shard_id: str,
        parents: list[str],
    ) -> None:
        self.shard_id = shard_id
        self.parents = parents
        self.state = "starting"
        self.records_delivered = 0
        self._driver = driver
        self._stop = driver._stop
        self._kinesis = boto_client("kinesis")
        self._checkpoint: tuple[str, int] | None = None
        # Set by the driver's shard sync once the shard is closed (after a split or merge).
        self.ending_sequence_number: str | None = None
        self._last_delivered: tuple[str, int] | None = None
        self._at_shard_end = False
        self._lease_lost = False
        self._closed = False
        self._checkpointer = LocalCheckpointer(self)
        self._processor_errors = _Failures()
        self.thread = threading.Thread(target=self._run_safely, name=f"kcl-{shard_id}", daemon=True)

    @property
    def checkpoint_value(self) -> str | None:
        return self._checkpoint[0] if self._checkpoint else None

    # --- checkpointing (called by the processor, on this reader's thread) ------------------------
    def checkpoint(self, sequence_number: str | None, sub_sequence_number: int | None) -> None:
        if self._lease_lost or self._closed:
            raise CheckpointError("ShutdownException")
        if sequence_number is None:
            if self._at_shard_end:
                target = (SHARD_END, 0)
            elif self._last_delivered is None:
                return  # nothing delivered since the last checkpoint: nothing to record
            else:
                target = self._last_delivered
        else:
            target = (sequence_number, sub_sequence_number or 0)
            self._check_range(target)
        try:
            self._driver._leases.checkpoint(self.shard_id, target[0], target[1])
        except LeaseLostError:
            self._lease_lost = True
            raise CheckpointError("ShutdownException") from None
        except ClientError as error:
            code = error.response["Error"]["Code"]
            name = "ThrottlingException" if code in _THROTTLING else "KinesisClientLibDependencyException"
            raise CheckpointError(name) from error
        except BotoCoreError as error:
            raise CheckpointError("KinesisClientLibDependencyException") from error
        self._checkpoint = target

    def _check_range(self, target: tuple[str, int]) -> None:
        """The KCL accepts only: last checkpoint <= target <= last record delivered."""
        if not _is_sequence_number(target[0]) or self._last_delivered is None:
            raise CheckpointError("IllegalArgumentException")
        wanted = _position(*target)
        if wanted > _position(*self._last_delivered):
            raise CheckpointError("IllegalArgumentException")
        checkpointed = self._checkpoint
        if checkpointed and _is_sequence_number(checkpointed[0]) and wanted < _position(*checkpointed):
            raise CheckpointError("IllegalArgumentException")

    # --- the shard loop -----------------------------------------------------------------------
    def _run_safely(self) -> None:
        try:
            self._run()
        except Exception:
            # The driver restarts failed readers at its next shard sync; nothing is lost because
            # reading resumes at the checkpoint.
            self.state = "failed"
            logger.exception("shard reader failed; retried at the next shard sync", extra=self._log())
        finally:
            self._closed = True

    def _run(self) -> None:
        driver = self._driver
        lease = driver._leases.take(
            self.shard_id, initial_checkpoint=driver.initial_position, parents=self.parents
        )
        self._checkpoint = (lease.checkpoint, lease.sub_sequence_number)
        if lease.checkpoint == SHARD_END:
            self.state = "finished"
            self._release()
            return
        processor = driver._processor_factory()
        self.state = "running"
        self._dispatch(
            processor,
            messages.InitializeInput(
                {
                    "action": "initialize",
                    "shardId": self.shard_id,
                    "sequenceNumber": lease.checkpoint,
                    "subSequenceNumber": lease.sub_sequence_number,
                }
            ),
        )
        try:
            self._read(processor)
        finally:
            self._release()

    def _read(self, processor: Any) -> None:
        iterator = self._iterator()
        errors = _Failures()
        limit = self._driver.max_records_per_call
        while True:
            if self._lease_lost:
                self.state = "lease_lost"
                self._dispatch(processor, messages.LeaseLostInput({"action": "leaseLost"}))
                return
            if self._stop.is_set():
                self._dispatch(processor, messages.ShutdownRequestedInput({"action": "shutdownRequested"}))
                self.state = "stopped"
                return
            try:
                response = self._kinesis.get_records(ShardIterator=iterator, Limit=limit)
            except ClientError as error:
                code = error.response["Error"]["Code"]
                if code == "ExpiredIteratorException":
                    iterator = self._iterator()
                    continue
                logger.warning("GetRecords failed; backing off", extra={**self._log(), "error": code})
                self._stop.wait(errors.next())
                continue
            except BotoCoreError as error:
                logger.warning("GetRecords failed; backing off", extra={**self._log(), "error": str(error)})
                self._stop.wait(errors.next())
                continue
            errors.reset()
            records = response["Records"]
            if records:
                self._deliver(processor, records, response.get("MillisBehindLatest", 0))
            iterator = response.get("NextShardIterator")
            if iterator is None or (not records and self._read_to_end()):
                self._end_shard(processor)
                return
            if not records:
                self._stop.wait(self._driver.poll_interval)

    def _read_to_end(self) -> bool:
        """A closed shard read up to its ending sequence number. Kinesis ends a closed shard with a
        null NextShardIterator; emulators (moto) keep returning iterators, hence this check."""
        ending = self.ending_sequence_number
        if ending is None:
            return False
        position = self._last_delivered or self._checkpoint
        reached = int(position[0]) if position and _is_sequence_number(position[0]) else 0
        return not _is_sequence_number(ending) or reached >= int(ending)

    def _iterator(self) -> str:
        """Resume after the last record delivered, else after the checkpoint, else at the sentinel."""
        position = self._last_delivered or self._checkpoint
        kwargs: dict[str, Any] = {"StreamName": self._driver.stream_name, "ShardId": self.shard_id}
        if position and _is_sequence_number(position[0]):
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=position[0])
        elif position and position[0] == "LATEST":
            kwargs["ShardIteratorType"] = "LATEST"
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        return str(self._kinesis.get_shard_iterator(**kwargs)["ShardIterator"])

    def _deliver(self, processor: Any, records: list[dict[str, Any]], millis_behind: int) -> None:
        batch = [messages.Record(_record_json(record)) for record in records]
        self._last_delivered = (records[-1]["SequenceNumber"], 0)
        self.records_delivered += len(records)
        ok = self._dispatch(
            processor,
            messages.ProcessRecordsInput(
                {"action": "processRecords", "records": batch, "millisBehindLatest": millis_behind}
            ),
        )
        if ok:
            self._processor_errors.reset()
        else:
            # Like the daemon: the batch is not delivered again; the processor owns retries.
            self._stop.wait(self._processor_errors.next())

    def _end_shard(self, processor: Any) -> None:
        """The shard is closed and fully read: the processor must checkpoint SHARD_END."""
        self._at_shard_end = True
        retry = _Failures()
        while not self._stop.is_set() and not self._lease_lost:
            self._dispatch(processor, messages.ShardEndedInput({"action": "shardEnded"}))
            if self.checkpoint_value == SHARD_END:
                self.state = "finished"
                logger.info("shard finished", extra=self._log())
                self._driver._wake.set()  # children may start now
                return
            logger.warning(
                "processor did not checkpoint SHARD_END; calling shard_ended again", extra=self._log()
            )
            self._stop.wait(retry.next())
        self.state = "lease_lost" if self._lease_lost else "stopped"

    def _dispatch(self, processor: Any, message: Any) -> bool:
        """Call the processor; like KCLProcess, an exception is logged and the shard keeps going."""
        try:
            message.dispatch(self._checkpointer, processor)
        except Exception:
            logger.exception("record processor raised", extra={**self._log(), "action": message.action})
            return False
        return True

    def _release(self) -> None:
        self._closed = True
        if self._lease_lost:
            return
        try:
            self._driver._leases.release(self.shard_id)
        except (ClientError, BotoCoreError):
            logger.warning("lease not released; the next run takes it over", extra=self._log(), exc_info=True)

    def _log(self) -> dict[str, Any]:
        return {"application": self._driver.application_name, "shard_id": self.shard_id}


class LocalKclDriver:
    """Run KCL record processors in-process against every shard of a stream.

    ``start()`` creates the lease table if needed, starts one thread per readable shard and returns;
    ``stop(timeout)`` asks each processor to checkpoint (``shutdown_requested``), releases the
    leases and returns True when every thread has finished. Also a context manager, and
    ``astart()`` / ``astop()`` for asyncio callers.
    """

    def __init__(
        self,
        *,
        stream_name: str,
        application_name: str,
        processor_factory: ProcessorFactory,
        poll_interval: float = 1.0,
        max_records_per_call: int = 10_000,
        initial_position: InitialPosition = "TRIM_HORIZON",
        shard_sync_interval: float = 10.0,
        worker_id: str | None = None,
    ) -> None:
        if initial_position not in ("TRIM_HORIZON", "LATEST"):
            raise ValueError(f"initial_position must be TRIM_HORIZON or LATEST, not {initial_position!r}")
        if not 1 <= max_records_per_call <= 10_000:
            raise ValueError("max_records_per_call must be between 1 and 10000 (the GetRecords limit)")
        self.stream_name = stream_name
        self.application_name = application_name
        self.poll_interval = poll_interval
        self.max_records_per_call = max_records_per_call
        self.initial_position: InitialPosition = initial_position
        self.shard_sync_interval = shard_sync_interval
        self.worker_id = worker_id or f"{socket.gethostname()}:{uuid.uuid4()}"
        self._processor_factory = processor_factory
        self._leases = LeaseTable(application_name, self.worker_id)
        self._kinesis = boto_client("kinesis")
        self._readers: dict[str, _ShardReader] = {}
        self._skipped: set[str] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._coordinator: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._coordinator is not None:
            raise RuntimeError("LocalKclDriver.start() called twice")
        self._leases.ensure()
        self._sync_shards()
        self._coordinator = threading.Thread(target=self._coordinate, name="kcl-coordinator", daemon=True)
        self._coordinator.start()
        logger.info(
            "local KCL driver started",
            extra={
                "application": self.application_name,
                "stream": self.stream_name,
                "shards": sorted(self._readers),
                "worker_id": self.worker_id,
            },
        )

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop reading, let processors checkpoint, release leases. False if a thread is still busy."""
        self._stop.set()
        self._wake.set()
        threads = [reader.thread for reader in self._readers.values()]
        if self._coordinator is not None:
            threads.append(self._coordinator)
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            for thread in threads:
                while thread.is_alive() and not deadline.is_set():
                    thread.join(0.05)
        finally:
            timer.cancel()
        stuck = [thread.name for thread in threads if thread.is_alive()]
        if stuck:
            logger.warning("local KCL driver: threads still running after stop", extra={"threads": stuck})
        return not stuck

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self, grace_seconds: float = 30.0) -> bool:
        return await asyncio.to_thread(self.stop, grace_seconds)

    def __enter__(self) -> LocalKclDriver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- observation --------------------------------------------------------------------------
    def status(self) -> dict[str, ShardStatus]:
        return {
            shard_id: ShardStatus(shard_id, r.state, r.records_delivered, r.checkpoint_value)
            for shard_id, r in self._readers.items()
        }

    @property
    def records_delivered(self) -> int:
        return sum(reader.records_delivered for reader in self._readers.values())

    # --- shard discovery ----------------------------------------------------------------------
    def _coordinate(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.shard_sync_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._sync_shards()
            except (ClientError, BotoCoreError):
                logger.warning(
                    "shard sync failed; retried next interval",
                    extra={"application": self.application_name},
                    exc_info=True,
                )

    def _list_shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        response = self._kinesis.list_shards(StreamName=self.stream_name)
        shards += response["Shards"]
        while token := response.get("NextToken"):
            response = self._kinesis.list_shards(NextToken=token)
            shards += response["Shards"]
        return shards

    def _sync_shards(self) -> None:
        """Start a reader for every shard that is readable now (parents done, not running)."""
        shards = self._list_shards()
        known = {shard["ShardId"] for shard in shards}
        for shard in sorted(shards, key=lambda s: s["ShardId"]):
            shard_id = shard["ShardId"]
            reader = self._readers.get(shard_id)
            ending = shard["SequenceNumberRange"].get("EndingSequenceNumber")
            if reader is not None:
                reader.ending_sequence_number = ending
            if shard_id in self._skipped or (reader and reader.state != "failed"):
                continue
            closed = ending is not None
            if self.initial_position == "LATEST" and closed and self._leases.get(shard_id) is None:
                self._skipped.add(shard_id)  # LATEST starts at the open shards, as the KCL does
                continue
            parents = [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]
            if not all(self._parent_done(parent, known) for parent in parents):
                continue
            if self._stop.is_set():
                return
            reader = _ShardReader(self, shard_id, parents)
            reader.ending_sequence_number = ending
            self._readers[shard_id] = reader
            reader.thread.start()

    def _parent_done(self, parent: str, known: set[str]) -> bool:
        if parent not in known or parent in self._skipped:
            return True  # trimmed from the stream, or never read (LATEST)
        reader = self._readers.get(parent)
        if reader is not None:
            return reader.state == "finished"
        lease = self._leases.get(parent)
        return lease is not None and lease.checkpoint == SHARD_END
