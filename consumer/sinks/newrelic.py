"""New Relic Log API sink: gzip JSON in the documented detailed shape, under 1 MB per POST.

``[{"common": {"attributes": {"service": "devops-metrics"}}, "logs": [{timestamp, message,
attributes: {repo, event, event_id, source, metadata, event_time, ...}}]}]`` POSTed with ``Api-Key``;
every field of the event is an attribute. ``timestamp`` is the event's time, except for events older than
24 hours (backfills): New Relic may drop entries older than 48 hours while answering 202, so those are
logged at the time they are sent, with ``timestamp_is_send_time: true`` and the real ``event_time``.
Answers: 2xx taken; 429 pending with the server's Retry-After; 5xx, 408 and network errors pending
(the processor backs off); 401/403 pending and flagged as a misconfiguration (a wrong or revoked key
is an outage to fix, not a reason to dead-letter every event); 413 split in halves; any other 4xx
rejected with the response, so the events go to the dead-letter queue instead of blocking the shard.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from consumer.sinks.base import Rejection, WriteResult
from devops_core.events import DevOpsEvent

__all__ = ["MAX_TIMESTAMP_AGE", "SERVICE_NAME", "NewRelicSink", "retry_after_seconds", "to_log_entry"]

logger = logging.getLogger(__name__)

SERVICE_NAME = "devops-metrics"
# The API's limit is 10^6 bytes per POST as sent; chunks are cut on the uncompressed size, which
# bounds the gzipped size from above (gzip adds at most a few bytes per 32 KB block).
MAX_UNCOMPRESSED_BYTES = 900_000
_PENDING_STATUSES = {408, 429}
_MISCONFIGURED_STATUSES = {401, 403}


# New Relic's Log API may drop an entry whose timestamp is more than 48 hours old while still answering
# 202. An event older than this (a backfill, or a consumer that was stopped for a while) is therefore
# logged at the time it is sent; its own time is always in the ``event_time`` attribute.
MAX_TIMESTAMP_AGE = timedelta(hours=24)
# event field -> attribute. The event's ``service`` is sent as ``event_service``: ``service`` is the
# common attribute every query filters on (always 'devops-metrics') and a log's own would override it.
_OPTIONAL_ATTRIBUTES = {
    "sha": "sha",
    "before": "before",
    "environment": "environment",
    "outcome": "outcome",
    "remediation": "remediation",
    "deployment_id": "deployment_id",
    "incident_id": "incident_id",
    "team": "team",
    "service": "event_service",
}


def to_log_entry(event: DevOpsEvent, *, now: datetime | None = None) -> dict[str, Any]:
    """The full event as one log entry (``commits`` as a JSON array string, ``commit_count`` beside it)."""
    sent_at = now or datetime.now(UTC)
    backfilled = sent_at - event.time > MAX_TIMESTAMP_AGE
    attributes: dict[str, Any] = {
        "repo": event.repo,
        "event": event.event.value,
        "event_id": event.event_id,
        "source": event.source,
        "metadata": event.metadata,
        "event_time": event.time_ms,
        "received_at": event.model_dump(mode="json")["received_at"],
    }
    for field, attribute in _OPTIONAL_ATTRIBUTES.items():
        value = getattr(event, field)
        if value:
            attributes[attribute] = value
    if event.commits:
        attributes["commit_count"] = len(event.commits)
        attributes["commits"] = json.dumps(
            [commit.model_dump(mode="json", exclude_none=True) for commit in event.commits],
            separators=(",", ":"),
        )
    if backfilled:
        attributes["timestamp_is_send_time"] = True
    return {
        "timestamp": int(sent_at.timestamp() * 1000) if backfilled else event.time_ms,
        "message": f"{event.event.value} {event.repo}",
        "attributes": attributes,
    }


def _chunks(events: Sequence[DevOpsEvent]) -> list[list[tuple[DevOpsEvent, bytes]]]:
    chunks: list[list[tuple[DevOpsEvent, bytes]]] = [[]]
    size = 0
    for event in events:
        encoded = json.dumps(to_log_entry(event), separators=(",", ":"), ensure_ascii=False).encode()
        if chunks[-1] and size + len(encoded) + 1 > MAX_UNCOMPRESSED_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append((event, encoded))
        size += len(encoded) + 1
    return [chunk for chunk in chunks if chunk]


def _body(chunk: list[tuple[DevOpsEvent, bytes]]) -> bytes:
    common = json.dumps({"attributes": {"service": SERVICE_NAME}}, separators=(",", ":")).encode()
    logs = b",".join(encoded for _, encoded in chunk)
    return gzip.compress(b'[{"common":' + common + b',"logs":[' + logs + b"]}]", compresslevel=1)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


class NewRelicSink:
    name = "newrelic"

    def __init__(
        self, session: aiohttp.ClientSession, url: str, api_key: str, *, concurrency: int = 4
    ) -> None:
        self._session = session
        self._url = url
        self._headers = {
            "Api-Key": api_key,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        self._limit = asyncio.Semaphore(concurrency)

    async def write(self, events: Sequence[DevOpsEvent]) -> WriteResult:
        results = await asyncio.gather(*(self._post(chunk) for chunk in _chunks(events)))
        total = WriteResult()
        for result in results:
            total.rejected += result.rejected
            total.pending += result.pending
            total.error = total.error or result.error
            total.misconfigured = total.misconfigured or result.misconfigured
            if result.retry_after is not None:
                total.retry_after = max(total.retry_after or 0.0, result.retry_after)
        return total

    async def _post(self, chunk: list[tuple[DevOpsEvent, bytes]]) -> WriteResult:
        events = [event for event, _ in chunk]
        try:
            async with (
                self._limit,
                self._session.post(self._url, data=_body(chunk), headers=self._headers) as resp,
            ):
                text = (await resp.text(errors="replace"))[:500]
                status = resp.status
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as error:
            return WriteResult(
                pending=events, error=f"new relic unreachable: {type(error).__name__}: {error}"
            )
        if 200 <= status < 300:
            return WriteResult()
        if status in _MISCONFIGURED_STATUSES:
            return WriteResult(
                pending=events, error=f"new relic answered {status}: check LOGGER_API_KEY", misconfigured=True
            )
        if status in _PENDING_STATUSES or status >= 500:
            return WriteResult(pending=events, retry_after=retry_after, error=f"new relic answered {status}")
        if status == 413 and len(chunk) > 1:
            half = len(chunk) // 2
            first, second = await asyncio.gather(self._post(chunk[:half]), self._post(chunk[half:]))
            return WriteResult(
                rejected=first.rejected + second.rejected,
                pending=first.pending + second.pending,
                retry_after=first.retry_after or second.retry_after,
                error=first.error or second.error,
                misconfigured=first.misconfigured or second.misconfigured,
            )
        reason = f"new relic answered {status}: {text}"
        logger.error("new relic refused a payload", extra={"status": status, "events": len(events)})
        return WriteResult(rejected=[Rejection(event, reason) for event in events])
