"""Window state in DynamoDB, behind one small repository. Nothing is kept in memory between batches,
so the aggregator survives restarts and any number of tasks can share the table.

Items (one table, string keys ``pk``/``sk``, TTL attribute ``expires_at``):

=====================  ===========================  =============================================
pk                     sk                           what
=====================  ===========================  =============================================
``b#<scope>``          ``d#<YYYY-MM-DD>``           day bucket: deploys, failures, lead_s, rec_s
``e#<event_id>``       ``-``                        dedupe marker: this event is counted
``p#<repo>#<sha>``     ``<time_ms>#<event_id>``     a push of ``sha`` (earliest = first item)
``f#<repo>``           ``<time_ms>#<event_id>``     an open (not yet restored) deploy_failed
``repos``              ``<repo>``                   repos seen lately (for the periodic emit)
``stats``              ``too_old``                  events ignored because older than the window
=====================  ===========================  =============================================

Exactly once: every counted event writes its dedupe marker with ``attribute_not_exists`` in the
same TransactWriteItems as the bucket increments it causes, so a redelivered event can never be
counted twice, even when two tasks race on it. Before writing, one BatchGetItem drops events that
are already counted, so a replayed batch costs reads, not cancelled transactions. Bucket updates
are merged per (scope, day) inside a transaction (up to 100 items), which is what makes this
faster than one conditional write per event.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from aggregator.metrics import DayBucket, Window, day_of
from devops_core.events import REPO_ALL, DevOpsEvent, EventType

__all__ = ["ApplyResult", "StateConflict", "StateRepository", "scopes_of"]

logger = logging.getLogger(__name__)

MAX_TRANSACTION_ITEMS = 100
MAX_BATCH_GET_KEYS = 100
_COUNTED = {EventType.DEPLOY, EventType.DEPLOY_FAILED, EventType.SERVICE_RESTORED}


class StateConflict(Exception):
    """Transactions kept being cancelled (another task raced on the same items)."""


@dataclass
class ApplyResult:
    counted: int = 0
    duplicates: int = 0
    too_old: int = 0
    ignored: int = 0
    transactions: int = 0
    too_old_event_ids: list[str] = field(default_factory=list)


def scopes_of(repo: str) -> tuple[str, ...]:
    """Every event counts for its repo and for ALL (an event of repo ALL only once)."""
    return (REPO_ALL,) if repo == REPO_ALL else (repo, REPO_ALL)


def _ms_key(moment: datetime, event_id: str) -> str:
    return f"{int(moment.timestamp() * 1000):015d}#{event_id}"


def _epoch(day: date, plus_days: int) -> int:
    return int(datetime.combine(day + timedelta(days=plus_days), datetime.min.time(), UTC).timestamp())


@dataclass
class _BucketDelta:
    deploys: int = 0
    failures: int = 0
    lead_s: list[float] = field(default_factory=list)
    rec_s: list[float] = field(default_factory=list)

    def add(self, other: _BucketDelta) -> None:
        self.deploys += other.deploys
        self.failures += other.failures
        self.lead_s += other.lead_s
        self.rec_s += other.rec_s


@dataclass
class _Unit:
    """The writes one event causes; they must commit together with its dedupe marker."""

    event: DevOpsEvent
    puts: list[dict[str, Any]] = field(default_factory=list)  # whole items, no condition
    deletes: list[tuple[str, str]] = field(default_factory=list)  # open failures this restore closes
    buckets: dict[tuple[str, date], _BucketDelta] = field(default_factory=dict)
    dedupe: bool = True


class StateRepository:
    def __init__(
        self,
        client: Any,
        table: str,
        *,
        window_days: int,
        retention_days: int = 180,
        max_attempts: int = 8,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = client
        self._table = table
        self._window_days = window_days
        self._retention_days = retention_days
        self._max_attempts = max_attempts
        self._clock = clock
        self._registered: dict[str, date] = {}

    # -- writes --------------------------------------------------------------------------------
    def apply(self, events: Sequence[DevOpsEvent]) -> ApplyResult:
        """Count every not-yet-counted event exactly once; safe to call again with the same events."""
        result = ApplyResult()
        window = Window.ending_at(self._clock(), self._window_days)
        fresh: dict[str, DevOpsEvent] = {}
        for event in events:
            if (
                event.event.is_internal
                or event.event == EventType.TEST_PASS
                or (event.event == EventType.PUSH and not event.sha)
            ):
                result.ignored += 1
            elif window.is_too_old(event.time):
                result.too_old += 1
                result.too_old_event_ids.append(event.event_id)
            elif event.event_id in fresh:
                result.duplicates += 1
            else:
                fresh[event.event_id] = event
        if result.too_old:
            self._count_too_old(result.too_old)
        pending = list(fresh.values())
        for attempt in range(1, self._max_attempts + 1):
            counted_before = self._already_counted([e for e in pending if e.event in _COUNTED])
            todo = [e for e in pending if e.event_id not in counted_before]
            if attempt == 1:
                result.duplicates += len(pending) - len(todo)
            units = self._plan(sorted(todo, key=lambda e: (e.time, e.event_id)), window)
            try:
                for chunk in self._chunks(units):
                    self._transact(chunk)
                    result.transactions += 1
                    result.counted += sum(1 for unit in chunk if unit.dedupe)
            except ClientError as error:
                if error.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                delay = min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)
                logger.warning(
                    "state transaction cancelled; re-planning",
                    extra={"attempt": attempt, "reasons": sorted({r for r in reasons if r != "None"})},
                )
                time.sleep(delay)
                continue
            return result
        raise StateConflict(f"transactions still cancelled after {self._max_attempts} attempts")

    def _already_counted(self, events: list[DevOpsEvent]) -> set[str]:
        counted: set[str] = set()
        ids = [e.event_id for e in events]
        for start in range(0, len(ids), MAX_BATCH_GET_KEYS):
            keys: list[dict[str, Any]] = [
                {"pk": {"S": f"e#{event_id}"}, "sk": {"S": "-"}}
                for event_id in ids[start : start + MAX_BATCH_GET_KEYS]
            ]
            request: dict[str, Any] = {
                self._table: {"Keys": keys, "ProjectionExpression": "pk", "ConsistentRead": True}
            }
            for attempt in range(self._max_attempts):
                response = self._db.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self._table, []):
                    counted.add(item["pk"]["S"][2:])
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise StateConflict("BatchGetItem kept returning unprocessed keys")
        return counted

    def _plan(self, events: list[DevOpsEvent], window: Window) -> list[_Unit]:
        """Turn events (time order) into write units; reads push times and open failures first."""
        push_times = self._earliest_pushes(
            {(e.repo, e.sha) for e in events if e.event == EventType.DEPLOY and e.sha}
        )
        open_failures: dict[str, list[tuple[int, str, bool]]] = {}  # repo -> [(ms, sk, stored)]
        for repo in {e.repo for e in events if e.event == EventType.SERVICE_RESTORED}:
            open_failures[repo] = self._open_failures(repo)
        units: list[_Unit] = []
        for event in events:
            unit = _Unit(event)
            day = day_of(event.time)
            if event.event == EventType.PUSH:
                unit.dedupe = False  # the push item is keyed by event_id: writing it twice is harmless
                unit.puts.append(self._push_item(event))
                key = (event.repo, event.sha or "")
                ms = int(event.time.timestamp() * 1000)
                push_times[key] = min(push_times.get(key, ms), ms)
            elif event.event == EventType.DEPLOY:
                delta = _BucketDelta(deploys=1)
                pushed = push_times.get((event.repo, event.sha or "")) if event.sha else None
                if pushed is not None and pushed <= event.time_ms:
                    delta.lead_s.append((event.time_ms - pushed) / 1000)
                unit.buckets = {(scope, day): delta for scope in scopes_of(event.repo)}
            elif event.event == EventType.DEPLOY_FAILED:
                unit.buckets = {(scope, day): _BucketDelta(failures=1) for scope in scopes_of(event.repo)}
                sk = _ms_key(event.time, event.event_id)
                if event.repo in open_failures:
                    open_failures[event.repo].append((event.time_ms, sk, False))
                    # Stored only if no restore in this batch closes it (see below).
                unit.puts.append(self._failure_item(event, sk))
            elif event.event == EventType.SERVICE_RESTORED:
                still_open = []
                delta = _BucketDelta()
                for ms, sk, stored in open_failures.get(event.repo, []):
                    if ms <= event.time_ms:
                        delta.rec_s.append((event.time_ms - ms) / 1000)
                        if stored:
                            unit.deletes.append((f"f#{event.repo}", sk))
                        else:
                            _drop_put(units, f"f#{event.repo}", sk)
                    else:
                        still_open.append((ms, sk, stored))
                open_failures[event.repo] = still_open
                if delta.rec_s:
                    unit.buckets = {(scope, day): delta for scope in scopes_of(event.repo)}
            units.append(unit)
            self._maybe_register(unit, window)
        return units

    def _maybe_register(self, unit: _Unit, window: Window) -> None:
        """Remember the repo (once a day per process) so the periodic emit knows whom to recompute."""
        repo = unit.event.repo
        if unit.event.event == EventType.PUSH or self._registered.get(repo) == window.today:
            return
        self._registered[repo] = window.today
        unit.puts.append(
            {
                "pk": {"S": "repos"},
                "sk": {"S": repo},
                "expires_at": {"N": str(_epoch(window.today, self._window_days + 2))},
            }
        )

    def _push_item(self, event: DevOpsEvent) -> dict[str, Any]:
        return {
            "pk": {"S": f"p#{event.repo}#{event.sha}"},
            "sk": {"S": _ms_key(event.time, event.event_id)},
            "t": {"N": str(event.time_ms)},
            "expires_at": {"N": str(_epoch(day_of(event.time), self._retention_days))},
        }

    def _failure_item(self, event: DevOpsEvent, sk: str) -> dict[str, Any]:
        return {
            "pk": {"S": f"f#{event.repo}"},
            "sk": {"S": sk},
            "t": {"N": str(event.time_ms)},
            "expires_at": {"N": str(_epoch(day_of(event.time), self._retention_days))},
        }

    def _chunks(self, units: list[_Unit]) -> Iterable[list[_Unit]]:
        chunk: list[_Unit] = []
        buckets: set[tuple[str, date]] = set()
        registry: set[str] = set()
        size = 0
        for unit in units:
            new_buckets = set(unit.buckets) - buckets
            cost = int(unit.dedupe) + len(unit.puts) + len(unit.deletes) + len(new_buckets)
            repos = {p["sk"]["S"] for p in unit.puts if p["pk"]["S"] == "repos"}
            if chunk and (size + cost > MAX_TRANSACTION_ITEMS or repos & registry):
                yield chunk
                chunk, buckets, registry, size = [], set(), set(), 0
                new_buckets = set(unit.buckets)
                cost = int(unit.dedupe) + len(unit.puts) + len(unit.deletes) + len(new_buckets)
            chunk.append(unit)
            buckets |= new_buckets
            registry |= repos
            size += cost
        if chunk:
            yield chunk

    def _transact(self, chunk: list[_Unit]) -> None:
        table = self._table
        items: list[dict[str, Any]] = []
        merged: dict[tuple[str, date], _BucketDelta] = defaultdict(_BucketDelta)
        for unit in chunk:
            event = unit.event
            if unit.dedupe:
                items.append(
                    {
                        "Put": {
                            "TableName": table,
                            "Item": {
                                "pk": {"S": f"e#{event.event_id}"},
                                "sk": {"S": "-"},
                                "expires_at": {"N": str(_epoch(day_of(event.time), self._window_days + 2))},
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                )
            items += [{"Put": {"TableName": table, "Item": item}} for item in unit.puts]
            items += [
                {
                    "Delete": {
                        "TableName": table,
                        "Key": {"pk": {"S": pk}, "sk": {"S": sk}},
                        # Another restore closed it first: re-plan rather than count it twice.
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                }
                for pk, sk in unit.deletes
            ]
            for key, delta in unit.buckets.items():
                merged[key].add(delta)
        items += [self._bucket_update(scope, day, delta) for (scope, day), delta in merged.items()]
        if items:
            self._db.transact_write_items(TransactItems=items)

    def _bucket_update(self, scope: str, day: date, delta: _BucketDelta) -> dict[str, Any]:
        sets = ["expires_at = :exp"]
        adds = ["deploys :d", "failures :f"]
        values: dict[str, Any] = {
            ":exp": {"N": str(_epoch(day, self._window_days + 2))},
            ":d": {"N": str(delta.deploys)},
            ":f": {"N": str(delta.failures)},
        }
        if delta.lead_s or delta.rec_s:
            values[":empty"] = {"L": []}
        if delta.lead_s:
            sets.append("lead_s = list_append(if_not_exists(lead_s, :empty), :lead)")
            values[":lead"] = {"L": [{"N": _num(v)} for v in delta.lead_s]}
        if delta.rec_s:
            sets.append("rec_s = list_append(if_not_exists(rec_s, :empty), :rec)")
            values[":rec"] = {"L": [{"N": _num(v)} for v in delta.rec_s]}
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": f"b#{scope}"}, "sk": {"S": f"d#{day.isoformat()}"}},
                "UpdateExpression": "SET " + ", ".join(sets) + " ADD " + ", ".join(adds),
                "ExpressionAttributeValues": values,
            }
        }

    def claim(self, name: str, *, ttl_seconds: int) -> bool:
        """True for exactly one caller per ``name`` (e.g. one periodic emit per period, across tasks)."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"claim#{name}"},
                    "sk": {"S": "-"},
                    "expires_at": {"N": str(int(self._clock().timestamp()) + ttl_seconds)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _count_too_old(self, count: int) -> None:
        self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": "stats"}, "sk": {"S": "too_old"}},
            UpdateExpression="ADD events :n",
            ExpressionAttributeValues={":n": {"N": str(count)}},
        )

    # -- reads ---------------------------------------------------------------------------------
    def _earliest_pushes(self, keys: set[tuple[str, str | None]]) -> dict[tuple[str, str], int]:
        found: dict[tuple[str, str], int] = {}
        for repo, sha in keys:
            response = self._db.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"p#{repo}#{sha}"}},
                Limit=1,
                ConsistentRead=True,
            )
            if response["Items"]:
                found[(repo, sha or "")] = int(response["Items"][0]["t"]["N"])
        return found

    def _open_failures(self, repo: str) -> list[tuple[int, str, bool]]:
        return [
            (int(item["t"]["N"]), item["sk"]["S"], True)
            for item in self._query_all(pk=f"f#{repo}", projection="sk, t")
        ]

    def _query_all(self, *, pk: str, between: tuple[str, str] | None = None, projection: str | None = None):
        params: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk" + (" AND sk BETWEEN :lo AND :hi" if between else ""),
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        if between:
            params["ExpressionAttributeValues"].update({":lo": {"S": between[0]}, ":hi": {"S": between[1]}})
        if projection:
            params["ProjectionExpression"] = projection
        while True:
            response = self._db.query(**params)
            yield from response["Items"]
            if "LastEvaluatedKey" not in response:
                return
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def buckets(self, scope: str, window: Window) -> list[DayBucket]:
        """The day buckets of ``scope`` inside ``window`` (tomorrow included, for clock skew)."""
        last = window.today + timedelta(days=1)
        items = self._query_all(
            pk=f"b#{scope}", between=(f"d#{window.first_day.isoformat()}", f"d#{last.isoformat()}")
        )
        return [
            DayBucket(
                day=date.fromisoformat(item["sk"]["S"][2:]),
                deploys=int(item.get("deploys", {}).get("N", "0")),
                failures=int(item.get("failures", {}).get("N", "0")),
                lead_seconds=[float(v["N"]) for v in item.get("lead_s", {}).get("L", [])],
                recovery_seconds=[float(v["N"]) for v in item.get("rec_s", {}).get("L", [])],
            )
            for item in items
        ]

    def known_repos(self) -> list[str]:
        now = int(self._clock().timestamp())
        return [
            item["sk"]["S"]
            for item in self._query_all(pk="repos")
            if int(item.get("expires_at", {}).get("N", str(now + 1))) > now  # TTL deletes lag
        ]

    def too_old_total(self) -> int:
        item = self._db.get_item(
            TableName=self._table, Key={"pk": {"S": "stats"}, "sk": {"S": "too_old"}}, ConsistentRead=True
        ).get("Item")
        return int(item["events"]["N"]) if item else 0


def _drop_put(units: list[_Unit], pk: str, sk: str) -> None:
    """A failure closed inside the same batch never needs to be stored as open."""
    for unit in reversed(units):
        unit.puts = [p for p in unit.puts if not (p["pk"]["S"] == pk and p["sk"]["S"] == sk)]


def _num(value: float) -> str:
    return str(Decimal(str(round(value, 3))))
