"""Timestream for LiveAnalytics sink: WriteRecords in chunks of at most 100, chunks in parallel.

One multi-measure record per event, so a redelivered event is an identical upsert:
- dimensions repo, event, source and event_id (event_id makes two different events at the same
  millisecond two records instead of a version conflict);
- time = the event's time in milliseconds; measure name ``devops_event``;
- Version = the gateway's receive time in milliseconds: a redelivery carries the same value (an
  identical record is accepted as a no-op), a client re-sending the same event_id later wins;
- every other field (sha, before, environment, outcome, remediation, deployment_id, incident_id, team,
  service) is a VARCHAR measure when set; ``commit_count`` always, and the commits themselves (JSON)
  as far as they fit the 2 KB record after the metadata (``commits_truncated`` when cut).
No CommonAttributes: every record is complete on its own (and moto stores records as sent).

Failures: whole-call throttling/5xx are retried by botocore's standard mode; what still fails is
reported pending (the handler backs off). RejectedRecordsException is sorted per record: a newer
version already stored counts as taken, transient-looking reasons are pending, the rest rejected.
A ValidationException is bisected so one malformed record does not take 99 others with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.sinks.base import Rejection, WriteResult
from devops_core.aws import is_configuration_error
from devops_core.events import DevOpsEvent

__all__ = ["MAX_RECORD_BYTES", "MEASURE_NAME", "TimestreamSink", "to_timestream_record"]

logger = logging.getLogger(__name__)

MAX_BATCH = 100
MAX_RECORD_BYTES = 2048
MEASURE_NAME = "devops_event"
_RETRYABLE_REASON = re.compile(r"throttl|internal|unavailable|timeout|timed out|try again|capacity", re.I)
_OUTAGE_CODES = {
    "ThrottlingException",
    "InternalServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ResourceNotFoundException",  # table not there (yet): an outage of ours, not the event's fault
    "AccessDeniedException",
    "InvalidEndpointException",
}


def _truncate_utf8(text: str, limit: int) -> str:
    return text.encode("utf-8")[: max(limit, 0)].decode("utf-8", errors="ignore")


# The event's optional fields, as VARCHAR measures when set (not dimensions: a dimension would change
# the series an event_id is written to, and a redelivery must stay an identical upsert).
_OPTIONAL_MEASURES = (
    "sha",
    "before",
    "environment",
    "outcome",
    "remediation",
    "deployment_id",
    "incident_id",
    "team",
    "service",
)
# Headroom per measure for its type and framing, and for the record's time and version.
_MEASURE_OVERHEAD = 8
_RECORD_OVERHEAD = 64


def _record_size(dimensions: list[dict[str, str]], measures: list[dict[str, str]]) -> int:
    return (
        len(MEASURE_NAME)
        + _RECORD_OVERHEAD
        + sum(
            len(item["Name"]) + len(item["Value"].encode("utf-8")) + _MEASURE_OVERHEAD
            for item in [*dimensions, *measures]
        )
    )


def _commits_that_fit(event: DevOpsEvent, budget: int) -> tuple[str, bool]:
    """The commits as a JSON array, cut to whole entries within ``budget`` bytes; and whether it was cut."""
    entries: list[str] = []
    size = 2  # []
    for commit in event.commits or ():
        entry = json.dumps(commit.model_dump(mode="json", exclude_none=True), separators=(",", ":"))
        if size + len(entry) + 1 > budget:
            return "[" + ",".join(entries) + "]", True
        entries.append(entry)
        size += len(entry) + 1
    return "[" + ",".join(entries) + "]", False


def to_timestream_record(event: DevOpsEvent) -> dict[str, Any]:
    """One multi-measure record under 2 KB: identity as dimensions, every other field as a measure;
    metadata and the commit list are cut to what fits (``commit_count`` always says how many there were)."""
    dimensions = [
        {"Name": "repo", "Value": event.repo},
        {"Name": "event", "Value": event.event.value},
        {"Name": "source", "Value": event.source},
        {"Name": "event_id", "Value": event.event_id},
    ]
    measures = [{"Name": "count", "Value": "1", "Type": "BIGINT"}]
    for name in _OPTIONAL_MEASURES:
        value = getattr(event, name)
        if value:
            measures.append({"Name": name, "Value": str(value), "Type": "VARCHAR"})
    if event.commits:
        measures.append({"Name": "commit_count", "Value": str(len(event.commits)), "Type": "BIGINT"})
    if event.metadata:
        budget = MAX_RECORD_BYTES - _record_size(dimensions, measures) - len("metadata") - _MEASURE_OVERHEAD
        metadata = event.metadata
        if len(metadata.encode("utf-8")) > budget:
            metadata = _truncate_utf8(metadata, budget - len("metadata_truncated") - 2 * _MEASURE_OVERHEAD)
            measures.append({"Name": "metadata_truncated", "Value": "true", "Type": "BOOLEAN"})
            logger.warning("metadata truncated for Timestream", extra={"event_id": event.event_id})
        if metadata:
            measures.append({"Name": "metadata", "Value": metadata, "Type": "VARCHAR"})
    if event.commits:
        budget = (
            MAX_RECORD_BYTES
            - _record_size(dimensions, measures)
            - len("commits")
            - len("commits_truncated")
            - 2 * _MEASURE_OVERHEAD
        )
        commits, cut = _commits_that_fit(event, budget)
        if commits != "[]":
            measures.append({"Name": "commits", "Value": commits, "Type": "VARCHAR"})
        if cut:
            measures.append({"Name": "commits_truncated", "Value": "true", "Type": "BOOLEAN"})
    return {
        "Dimensions": dimensions,
        "MeasureName": MEASURE_NAME,
        "MeasureValueType": "MULTI",
        "MeasureValues": measures,
        "Time": str(event.time_ms),
        "TimeUnit": "MILLISECONDS",
        "Version": int(event.received_at.timestamp() * 1000),
    }


class TimestreamSink:
    name = "timestream"

    def __init__(self, client: Any, database: str, table: str, *, concurrency: int = 4) -> None:
        self._client = client
        self._database = database
        self._table = table
        self._limit = asyncio.Semaphore(concurrency)

    async def write(self, events: Sequence[DevOpsEvent]) -> WriteResult:
        chunks = [list(events[i : i + MAX_BATCH]) for i in range(0, len(events), MAX_BATCH)]
        results = await asyncio.gather(*(self._write_chunk(chunk) for chunk in chunks))
        total = WriteResult()
        for result in results:
            total.rejected += result.rejected
            total.pending += result.pending
            total.error = total.error or result.error
            total.misconfigured = total.misconfigured or result.misconfigured
        return total

    async def _write_chunk(self, events: list[DevOpsEvent]) -> WriteResult:
        records = [to_timestream_record(event) for event in events]
        try:
            async with self._limit:
                await self._client.write_records(
                    DatabaseName=self._database, TableName=self._table, Records=records
                )
        except ClientError as error:
            return await self._sort_failure(events, records, error)
        except BotoCoreError as error:  # connection refused/reset, timeouts after retries
            return WriteResult(pending=events, error=f"{type(error).__name__}: {error}")
        return WriteResult()

    async def _sort_failure(
        self, events: list[DevOpsEvent], records: list[dict[str, Any]], error: ClientError
    ) -> WriteResult:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", str(error))
        if code == "RejectedRecordsException":
            return self._sort_rejections(events, records, error.response.get("RejectedRecords", []))
        if code == "ValidationException":
            if len(events) > 1:  # find the culprit instead of dead-lettering the whole chunk
                half = len(events) // 2
                first, second = await asyncio.gather(
                    self._write_chunk(events[:half]), self._write_chunk(events[half:])
                )
                return WriteResult(
                    rejected=first.rejected + second.rejected,
                    pending=first.pending + second.pending,
                    error=first.error or second.error,
                )
            return WriteResult(rejected=[Rejection(events[0], f"timestream ValidationException: {message}")])
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code not in _OUTAGE_CODES and 400 <= status < 500 and status != 429:
            logger.warning("timestream refused a chunk", extra={"code": code, "status": status})
        # Everything else (throttling or 5xx after botocore's retries, missing table, credentials)
        # is an outage: the events are kept and retried, never dropped.
        return WriteResult(
            pending=events, error=f"{code or status}: {message}", misconfigured=is_configuration_error(error)
        )

    def _sort_rejections(
        self, events: list[DevOpsEvent], records: list[dict[str, Any]], rejected: list[dict[str, Any]]
    ) -> WriteResult:
        result = WriteResult()
        for item in rejected:
            index = int(item.get("RecordIndex", -1))
            if not 0 <= index < len(events):
                continue
            reason = str(item.get("Reason", "rejected"))
            existing = item.get("ExistingVersion")
            if existing is not None and int(existing) >= int(records[index]["Version"]):
                continue  # an equal-or-newer version of this event is already stored: taken
            if _RETRYABLE_REASON.search(reason):
                result.pending.append(events[index])
                result.error = f"RejectedRecords: {reason}"
            else:
                result.rejected.append(Rejection(events[index], f"timestream rejected: {reason}"))
        if result.rejected:
            logger.warning(
                "timestream rejected records",
                extra={"rejected": len(result.rejected), "reason": result.rejected[0].reason},
            )
        return result
