"""The event log in DynamoDB: every event a metric depends on, stored once by ``event_id``.

First write wins: an event is appended with a transaction that puts its ``id#`` guard (condition: not
there yet) and its log item together. A later record with the same id is a *duplicate* when its
content digest (DevOpsEvent.content_digest: everything but the receive time) is the same, and a
*conflict* otherwise: never stored, never counted, returned to the caller to dead-letter.

Why transactions rather than one conditional PutItem per event: one TransactWriteItems call carries
up to 50 events (100 items), which is what makes the aggregator faster than the per-event baseline
(bench/aggregator), with the same first-write-wins guarantee.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from devops_core.dora.model import day_of
from devops_core.events import DevOpsEvent, EventType, conflict_reason
from devops_core.metrics_store import Keys, MetricsStore

__all__ = ["LOGGED_EVENTS", "AppendResult", "Conflict", "EventLog"]

logger = logging.getLogger(__name__)

# What a metric depends on (test_pass and the calc_* events are not kept).
LOGGED_EVENTS = frozenset(
    {
        EventType.PUSH,
        EventType.DEPLOY,
        EventType.DEPLOY_FAILED,
        EventType.SERVICE_RESTORED,
        EventType.INCIDENT_OPENED,
        EventType.INCIDENT_RESOLVED,
    }
)
_MAX_TRANSACTION_ITEMS = 100
_MAX_TRANSACTION_BYTES = 3_500_000  # DynamoDB's limit is 4 MB per transaction


@dataclass(frozen=True)
class Conflict:
    event: DevOpsEvent
    reason: str


@dataclass
class AppendResult:
    new: list[DevOpsEvent] = field(default_factory=list)
    duplicates: list[DevOpsEvent] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    too_old: list[DevOpsEvent] = field(default_factory=list)
    writes: int = 0  # DynamoDB write calls


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


class EventLog:
    def __init__(
        self,
        store: MetricsStore,
        client: Any,
        *,
        retention_days: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._db = client
        self._table = store.table
        self._retention = timedelta(days=retention_days)
        self._clock = clock

    def append(self, events: Sequence[DevOpsEvent]) -> AppendResult:
        result = AppendResult()
        oldest = self._clock() - self._retention
        first: dict[str, DevOpsEvent] = {}
        for event in events:
            if event.event not in LOGGED_EVENTS:
                continue
            if event.time < oldest:
                result.too_old.append(event)
                continue
            seen = first.get(event.event_id)
            if seen is None:
                first[event.event_id] = event
            elif seen.content_digest() == event.content_digest():
                result.duplicates.append(event)
            else:
                result.conflicts.append(Conflict(event, _conflict_reason(event, seen)))
        pending = list(first.values())
        while pending:
            stored = self._store.batch_get([(Keys.guard(e.event_id), "-") for e in pending])
            fresh = []
            for event in pending:
                guard = stored.get((Keys.guard(event.event_id), "-"))
                if guard is None:
                    fresh.append(event)
                elif guard["d"]["S"] == event.content_digest():
                    result.duplicates.append(event)
                else:
                    result.conflicts.append(Conflict(event, _conflict_reason(event, None, guard)))
            # Ids another writer took between our read and our write come back to be classified.
            pending = self._write(fresh, result)
        if result.new:
            self._bump_versions(result.new)
            result.writes += len({event.repo for event in result.new})
        return result

    def _write(self, events: list[DevOpsEvent], result: AppendResult) -> list[DevOpsEvent]:
        lost: list[DevOpsEvent] = []
        for chunk in _chunks(events):
            items: list[dict[str, Any]] = []
            for event in chunk:
                items += self._items(event)
            try:
                self._db.transact_write_items(TransactItems=items)
                result.writes += 1
                result.new += chunk
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = error.response.get("CancellationReasons", [])
                taken = {
                    index // 2
                    for index, reason in enumerate(reasons)
                    if reason.get("Code") == "ConditionalCheckFailed"
                }
                if not taken:  # throttling or a conflict of ours: the processor core retries the batch
                    raise
                lost += [event for index, event in enumerate(chunk) if index in taken]
                retry = [event for index, event in enumerate(chunk) if index not in taken]
                lost += self._write(retry, result)
        return lost

    def _items(self, event: DevOpsEvent) -> list[dict[str, Any]]:
        expires = {"N": str(_epoch(event.time + self._retention))}
        sort_key = Keys.log_sort(event.time_ms, event.event_id)
        return [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        "pk": {"S": Keys.guard(event.event_id)},
                        "sk": {"S": "-"},
                        "d": {"S": event.content_digest()},
                        "repo": {"S": event.repo},
                        "at": {"S": event.model_dump(mode="json")["received_at"]},
                        "expires_at": expires,
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        "pk": {"S": Keys.log(event.repo)},
                        "sk": {"S": sort_key},
                        "e": {"S": event.to_record_data().decode("utf-8")},
                        "expires_at": expires,
                    },
                }
            },
        ]

    def _bump_versions(self, events: list[DevOpsEvent]) -> None:
        """A new version per repo that got new events: facts derived before it are older."""
        days: dict[str, set[date]] = {}
        for event in events:
            days.setdefault(event.repo, set()).add(day_of(event.time))
        for repo, repo_days in sorted(days.items()):
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": Keys.REPOS}, "sk": {"S": repo}},
                UpdateExpression="ADD v :one, #days :days",
                ExpressionAttributeNames={"#days": "days"},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":days": {"SS": sorted(day.isoformat() for day in repo_days)},
                },
            )


def _chunks(events: list[DevOpsEvent]) -> list[list[DevOpsEvent]]:
    chunks: list[list[DevOpsEvent]] = [[]]
    size = 0
    for event in events:
        event_size = len(event.to_record_data()) + 512
        if chunks[-1] and (
            len(chunks[-1]) * 2 + 2 > _MAX_TRANSACTION_ITEMS or size + event_size > _MAX_TRANSACTION_BYTES
        ):
            chunks.append([])
            size = 0
        chunks[-1].append(event)
        size += event_size
    return [chunk for chunk in chunks if chunk]


def _conflict_reason(
    event: DevOpsEvent, first: DevOpsEvent | None, guard: dict[str, Any] | None = None
) -> str:
    where = (
        "earlier in the same batch"
        if first is not None
        else f"first received {guard.get('at', {}).get('S', 'earlier') if guard else 'earlier'}"
    )
    return conflict_reason(event.event_id, where, outcome="not counted")
