"""Raw-event store on S3: Amazon Data Firehose (DirectPut) delivers JSON lines to S3, Athena queries them.

One JSON object per line per event (``to_raw_record``): every field of the event, the times as
``YYYY-MM-DD HH:MM:SS.fff`` (UTC; what Hive/Athena's JSON SerDe and DuckDB read as TIMESTAMP), and the
event's ``content_digest`` so a resend can be told from a conflict. Firehose delivers at least once and
so does the KCL: the store keeps duplicates, and the shipped ``events_deduped`` view (Athena, see
cdk/devops_metrics_cdk/athena/) keeps exactly one row per ``event_id``, the first received.

PutRecordBatch takes at most 500 records and 4 MiB per call, 1,000 KiB per record. A partly failed call
reports per-record errors (``FailedPutCount``, ``RequestResponses[i].ErrorCode``): only those records
are pending, so the processor resends only them. Whole-call throttling/5xx are retried by botocore's
standard mode; what still fails is pending. Credentials, permissions, a missing delivery stream or an
unusable KMS key are pending and flagged ``misconfigured`` (an outage to fix, never the events' fault).
Only a record Firehose can never take (over 1,000 KiB, or refused as invalid on its own) is rejected.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.sinks.base import Rejection, WriteResult
from devops_core.aws import error_code, is_configuration_error
from devops_core.events import DevOpsEvent

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_RECORDS",
    "MAX_RECORD_BYTES",
    "FirehoseSink",
    "encode_raw_record",
    "to_raw_record",
]

logger = logging.getLogger(__name__)

MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024
# Errors about the delivery stream's set-up (its KMS key, its source), not about a record.
_MISCONFIGURED_CODES = frozenset(
    {
        "InvalidKMSResourceException",
        "InvalidSourceException",
        "KMS.AccessDeniedException",
        "KMS.DisabledException",
        "KMS.InvalidStateException",
        "KMS.NotFoundException",
        "KMS.OptInRequired",
        "KMS.ThrottlingException",
    }
)


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def to_raw_record(event: DevOpsEvent) -> dict[str, Any]:
    """The stored row: every field, null when unset (one schema for every line)."""
    return {
        "event_id": event.event_id,
        "time": _timestamp(event.time),
        "received_at": _timestamp(event.received_at),
        "repo": event.repo,
        "event": event.event.value,
        "source": event.source,
        "metadata": event.metadata,
        "sha": event.sha,
        "before": event.before,
        "environment": event.environment,
        "outcome": event.outcome,
        "remediation": event.remediation,
        "deployment_id": event.deployment_id,
        "incident_id": event.incident_id,
        "team": event.team,
        "service": event.service,
        "commits": (
            [
                {"sha": commit.sha, "time": _timestamp(commit.time) if commit.time else None}
                for commit in event.commits
            ]
            if event.commits
            else None
        ),
        "digest": event.content_digest(),
    }


def encode_raw_record(event: DevOpsEvent) -> bytes:
    """One JSON line (newline-terminated: Firehose concatenates records as they are)."""
    return (json.dumps(to_raw_record(event), separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _chunks(items: list[tuple[DevOpsEvent, bytes]]) -> list[list[tuple[DevOpsEvent, bytes]]]:
    chunks: list[list[tuple[DevOpsEvent, bytes]]] = [[]]
    size = 0
    for item in items:
        if chunks[-1] and (len(chunks[-1]) >= MAX_BATCH_RECORDS or size + len(item[1]) > MAX_BATCH_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += len(item[1])
    return [chunk for chunk in chunks if chunk]


class FirehoseSink:
    name = "s3"

    def __init__(self, client: Any, delivery_stream: str, *, concurrency: int = 4) -> None:
        self._client = client
        self._delivery_stream = delivery_stream
        self._limit = asyncio.Semaphore(concurrency)

    async def write(self, events: Sequence[DevOpsEvent]) -> WriteResult:
        total = WriteResult()
        encoded: list[tuple[DevOpsEvent, bytes]] = []
        for event in events:
            data = encode_raw_record(event)
            if len(data) > MAX_RECORD_BYTES:
                total.rejected.append(
                    Rejection(event, f"raw record is {len(data)} bytes; Firehose takes {MAX_RECORD_BYTES}")
                )
            else:
                encoded.append((event, data))
        results = await asyncio.gather(*(self._put(chunk) for chunk in _chunks(encoded)))
        for result in results:
            total.rejected += result.rejected
            total.pending += result.pending
            total.error = total.error or result.error
            total.misconfigured = total.misconfigured or result.misconfigured
        return total

    async def _put(self, chunk: list[tuple[DevOpsEvent, bytes]]) -> WriteResult:
        events = [event for event, _ in chunk]
        try:
            async with self._limit:
                response = await self._client.put_record_batch(
                    DeliveryStreamName=self._delivery_stream,
                    Records=[{"Data": data} for _, data in chunk],
                )
        except ClientError as error:
            return await self._sort_failure(chunk, error)
        except BotoCoreError as error:  # connection refused/reset, timeouts after botocore's retries
            return WriteResult(pending=events, error=f"{type(error).__name__}: {error}")
        if not response.get("FailedPutCount"):
            return WriteResult()
        result = WriteResult()
        for event, entry in zip(events, response.get("RequestResponses", []), strict=True):
            code = entry.get("ErrorCode")
            if code:
                result.pending.append(event)
                result.error = f"{code}: {entry.get('ErrorMessage', '')}"
                result.misconfigured = result.misconfigured or code in _MISCONFIGURED_CODES
        return result

    async def _sort_failure(self, chunk: list[tuple[DevOpsEvent, bytes]], error: ClientError) -> WriteResult:
        events = [event for event, _ in chunk]
        code = error_code(error)
        message = str(error.response.get("Error", {}).get("Message", error))
        if code == "InvalidArgumentException" and len(chunk) > 1:
            # One bad record must not take the others with it: find it by halves.
            half = len(chunk) // 2
            first, second = await asyncio.gather(self._put(chunk[:half]), self._put(chunk[half:]))
            return WriteResult(
                rejected=first.rejected + second.rejected,
                pending=first.pending + second.pending,
                error=first.error or second.error,
                misconfigured=first.misconfigured or second.misconfigured,
            )
        if code == "InvalidArgumentException":
            logger.warning("firehose refused a record", extra={"event_id": events[0].event_id})
            return WriteResult(
                rejected=[Rejection(events[0], f"firehose InvalidArgumentException: {message}")]
            )
        # Throttling or 5xx after botocore's retries, a missing stream, credentials, KMS: kept, retried.
        return WriteResult(
            pending=events,
            error=f"{code}: {message}",
            misconfigured=is_configuration_error(error) or code in _MISCONFIGURED_CODES,
        )
