"""Window state in DynamoDB, behind one small repository. Nothing is kept in memory between batches,
so the aggregator survives restarts and any number of tasks can share the table.

Items (one table, string keys ``pk``/``sk``, TTL attribute ``expires_at``):

=====================  ===========================  ================================================
pk                     sk                           what
=====================  ===========================  ================================================
``b#<scope>``          ``d#<YYYY-MM-DD>#<shard>``   day bucket: string sets ``deploys``, ``failures``,
                                                    ``lead`` (``id=seconds``), ``rec`` (``id=seconds``)
``p#<repo>#<sha>``     ``-``                        ``t``: time of the earliest push of ``sha``;
                                                    ``deploys``: set of ``<time_ms>#<event_id>``
``f#<repo>``           ``-``                        ``open``: set of ``<time_ms>#<event_id>`` failures
                                                    not yet restored
``repos``              ``<repo>``                   repos seen lately (for the periodic emit)
``stats``              ``too_old``                  events ignored because older than the window
``claim#<name>``       ``-``                        one periodic emit per period, across tasks
=====================  ===========================  ================================================

Exactly once, without transactions: a day bucket counts *event ids*, kept in DynamoDB string sets
that grow by ``UpdateItem ... ADD`` (set union). Adding an id that is already there changes
nothing, so a redelivered event, a replayed batch or two tasks racing on the same records can
never count an event twice, and every write is idempotent. Lead-time and recovery samples are
set members too, keyed by the event that produced them (read side keeps one sample per key: the
largest, i.e. the one measured from the earliest push).
All the events of a batch that fall in one (scope, day) become ONE UpdateItem, sha items are written
with BatchWriteItem, and every read is a BatchGetItem of known keys (no Query on the hot path:
moto's Query sorts the whole table, and DynamoDB bills a BatchGetItem key like a GetItem). That is
what makes the aggregator faster than one conditional write per event (docs/aggregator.md).

The ``p#`` item of a (repo, sha) keeps the earliest push time and the deploys of the sha, by
read-then-write within a batch: safe because the partition key is the repo, so one shard (one
processor) sees all events of a repo, in order. Out-of-order pairs still match: every push
re-derives the samples of the deploys recorded there, so a push that arrives after its deploy, or
an earlier push that arrives after a later one, gives the same samples as in-order delivery.

Limits: a bucket item holds at most 400 KB, i.e. ~5,000 deploys per scope and day; the ALL scope
is spread over ``ALL_SHARDS`` items per day (by event id) for ~40,000.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from aggregator.metrics import DayBucket, Window, day_of
from devops_core.events import REPO_ALL, DevOpsEvent, EventType

__all__ = ["ALL_SHARDS", "READ_WINDOW_MAX_DAYS", "ApplyResult", "StateRepository", "scopes_of"]

logger = logging.getLogger(__name__)

ALL_SHARDS = 8
# Buckets and the repo list are kept at least this many days (plus two), whatever the aggregator's own
# window, so that the gateway's GET /metrics?window=90 finds them (producer/metrics_api.py).
READ_WINDOW_MAX_DAYS = 90
MAX_BATCH_WRITE = 25
MAX_BATCH_GET = 100
_SHA_EVENTS = {EventType.PUSH, EventType.DEPLOY}
_COUNTED = {EventType.DEPLOY, EventType.DEPLOY_FAILED, EventType.SERVICE_RESTORED}
_SETS = ("deploys", "failures", "lead", "rec")


@dataclass
class _Plan:
    puts: list[dict[str, Any]]
    sets: dict[tuple[str, date, int], dict[str, set[str]]]
    opened: dict[str, set[str]]
    closed: dict[str, set[str]]
    late_lead_samples: int
    lead_pushes: dict[str, str]


@dataclass
class ApplyResult:
    counted: int = 0  # deploy, deploy_failed and service_restored events written (new or not)
    pushes: int = 0
    late_lead_samples: int = 0  # samples of already recorded deploys, derived from this batch's pushes
    lead_pushes: dict[str, str] = field(default_factory=dict)  # repo -> latest push giving such samples
    too_old: int = 0
    ignored: int = 0
    writes: int = 0  # DynamoDB write calls
    too_old_event_ids: list[str] = field(default_factory=list)


def scopes_of(repo: str) -> tuple[str, ...]:
    """Every event counts for its repo and for ALL (an event of repo ALL only once)."""
    return (REPO_ALL,) if repo == REPO_ALL else (repo, REPO_ALL)


def _shard(scope: str, event_id: str) -> int:
    return zlib.crc32(event_id.encode()) % ALL_SHARDS if scope == REPO_ALL else 0


def _ms_key(moment: datetime, event_id: str) -> str:
    return f"{int(moment.timestamp() * 1000):015d}#{event_id}"


def _epoch(day: date, plus_days: int) -> int:
    return int(datetime.combine(day + timedelta(days=plus_days), datetime.min.time(), UTC).timestamp())


def _key(pk: str) -> tuple[str, str]:
    return (pk, "-")


def _sample(key: str, seconds: float) -> str:
    return f"{key}={round(seconds, 3)}"


class StateRepository:
    def __init__(
        self,
        client: Any,
        table: str,
        *,
        window_days: int,
        retention_days: int = 180,
        max_workers: int = 8,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = client
        self._table = table
        self._window_days = window_days
        self._keep_days = max(window_days, READ_WINDOW_MAX_DAYS) + 2
        self._retention_days = retention_days
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="aggregator-state")
        self._clock = clock
        self._registered: dict[str, date] = {}

    # -- writes --------------------------------------------------------------------------------
    def apply(self, events: Sequence[DevOpsEvent]) -> ApplyResult:
        """Count the events into their day buckets; idempotent, so safe to call again with them."""
        result = ApplyResult()
        window = Window.ending_at(self._clock(), self._window_days)
        todo: dict[str, DevOpsEvent] = {}
        for event in events:
            if event.event not in _COUNTED and not (event.event == EventType.PUSH and event.sha):
                result.ignored += 1
            elif window.is_too_old(event.time):
                result.too_old += 1
                result.too_old_event_ids.append(event.event_id)
            else:
                todo[event.event_id] = event
        ordered = sorted(todo.values(), key=lambda e: (e.time, e.event_id))
        plan = self._plan(ordered, window)
        result.pushes = sum(1 for e in ordered if e.event == EventType.PUSH)
        result.counted = len(ordered) - result.pushes
        result.late_lead_samples = plan.late_lead_samples
        result.lead_pushes = plan.lead_pushes
        # Order matters only for open failures: samples are recorded before a failure is closed,
        # so a crash in between re-derives the same samples on redelivery.
        result.writes += self._batch_write([{"PutRequest": {"Item": item}} for item in plan.puts])
        result.writes += self._update_failures(plan.opened, "ADD")
        result.writes += self._update_buckets(plan.sets)
        result.writes += self._update_failures(plan.closed, "DELETE")
        if result.too_old:
            self._count_too_old(result.too_old)
        self._registered.update({e.repo: window.today for e in ordered if e.event != EventType.PUSH})
        return result

    def _plan(self, events: list[DevOpsEvent], window: Window) -> _Plan:
        """Events (in time order) -> items to put, set members per bucket, failures opened/closed."""
        sha_keys = {_key(f"p#{e.repo}#{e.sha}") for e in events if e.sha and e.event in _SHA_EVENTS}
        restored = {_key(f"f#{e.repo}") for e in events if e.event == EventType.SERVICE_RESTORED}
        stored = self._batch_get([*sha_keys, *restored])
        stored_push: dict[tuple[str, str | None], int] = {}
        stored_deploys: dict[tuple[str, str], set[str]] = {}
        for e in events:
            if e.sha and (item := stored.get((f"p#{e.repo}#{e.sha}", "-"))):
                if "t" in item:
                    stored_push[(e.repo, e.sha)] = int(item["t"]["N"])
                stored_deploys[(e.repo, e.sha)] = set(item.get("deploys", {}).get("SS", []))
        push_times = dict(stored_push)
        open_failures: dict[str, list[tuple[int, str, bool]]] = {}  # repo -> [(ms, member, stored)]
        for pk, _ in restored:
            members = stored.get((pk, "-"), {}).get("open", {}).get("SS", [])
            open_failures[pk[2:]] = [(int(m.split("#", 1)[0]), m, True) for m in members]
        puts: dict[tuple[str, str], dict[str, Any]] = {}
        new_failures: dict[str, set[str]] = defaultdict(set)
        closed_failures: dict[str, set[str]] = defaultdict(set)
        sets: dict[tuple[str, date, int], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        deployed: dict[tuple[str, str], set[str]] = defaultdict(set)
        pushed_by: dict[tuple[str, str], DevOpsEvent] = {}

        def add(event: DevOpsEvent, name: str, member: str) -> None:
            add_at(event.repo, event.time, event.event_id, name, member)

        def add_at(repo: str, moment: datetime, event_id: str, name: str, member: str) -> None:
            for scope in scopes_of(repo):
                sets[(scope, day_of(moment), _shard(scope, event_id))][name].add(member)

        for event in events:
            if event.event == EventType.PUSH:
                key = (event.repo, event.sha)
                push_times[key] = min(push_times.get(key, event.time_ms), event.time_ms)
                pushed_by[(event.repo, str(event.sha))] = event
            elif event.event == EventType.DEPLOY:
                add(event, "deploys", event.event_id)
                if event.sha:
                    deployed[(event.repo, event.sha)].add(_ms_key(event.time, event.event_id))
                pushed = push_times.get((event.repo, event.sha)) if event.sha else None
                if pushed is not None and pushed <= event.time_ms:
                    add(event, "lead", _sample(event.event_id, (event.time_ms - pushed) / 1000))
            elif event.event == EventType.DEPLOY_FAILED:
                add(event, "failures", event.event_id)
                member = _ms_key(event.time, event.event_id)
                new_failures[event.repo].add(member)
                open_failures.setdefault(event.repo, []).append((event.time_ms, member, False))
            elif event.event == EventType.SERVICE_RESTORED:
                still_open = []
                for ms, member, was_stored in open_failures.get(event.repo, []):
                    if ms > event.time_ms:
                        still_open.append((ms, member, was_stored))
                        continue
                    failure_id = member.split("#", 1)[1]
                    add(event, "rec", _sample(f"{failure_id}>{event.event_id}", (event.time_ms - ms) / 1000))
                    if was_stored:
                        closed_failures[event.repo].add(member)
                    else:  # opened and closed within this batch: never stored
                        new_failures[event.repo].discard(member)
                open_failures[event.repo] = still_open
            if event.event != EventType.PUSH and self._registered.get(event.repo) != window.today:
                puts[("repos", event.repo)] = {
                    "pk": {"S": "repos"},
                    "sk": {"S": event.repo},
                    "seen": {"S": window.today.isoformat()},
                    "expires_at": {"N": str(_epoch(window.today, self._keep_days))},
                }
        late_lead_samples = 0
        lead_pushes: dict[str, str] = {}
        for (repo, sha), push in pushed_by.items():  # deploys recorded before this batch's pushes
            first_push = push_times[(repo, sha)]
            for member in stored_deploys.get((repo, sha), ()):
                ms_text, deploy_id = member.split("#", 1)
                deploy_ms = int(ms_text)
                deploy_time = datetime.fromtimestamp(deploy_ms / 1000, UTC)
                if deploy_ms < first_push or window.is_too_old(deploy_time):
                    continue
                sample = _sample(deploy_id, (deploy_ms - first_push) / 1000)
                add_at(repo, deploy_time, deploy_id, "lead", sample)
                late_lead_samples += 1
                lead_pushes[repo] = push.event_id
        for repo, sha in {*push_times, *deployed}:
            pushed, known = push_times.get((repo, sha)), stored_deploys.get((repo, sha), set())
            deploys = known | deployed.get((repo, sha), set())
            if pushed == stored_push.get((repo, sha)) and deploys == known:
                continue  # nothing new to store
            item: dict[str, Any] = {"pk": {"S": f"p#{repo}#{sha}"}, "sk": {"S": "-"}}
            if pushed is not None:
                item["t"] = {"N": str(pushed)}
            if deploys:
                item["deploys"] = {"SS": sorted(deploys)}
            latest = max([pushed or 0, *(int(member.split("#", 1)[0]) for member in deploys)])
            item["expires_at"] = {"N": str(latest // 1000 + self._retention_days * 86400)}
            puts[(f"p#{repo}#{sha}", "-")] = item
        return _Plan(
            list(puts.values()),
            sets,
            dict(new_failures),
            dict(closed_failures),
            late_lead_samples,
            lead_pushes,
        )

    def _update_failures(self, failures: dict[str, set[str]], action: str) -> int:
        """ADD newly opened / DELETE closed failures: set operations, idempotent like the buckets."""

        def update(repo: str) -> None:
            expires = int(self._clock().timestamp()) + self._retention_days * 86400
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"f#{repo}"}, "sk": {"S": "-"}},
                UpdateExpression=f"SET expires_at = :exp {action} #open :m",
                ExpressionAttributeNames={"#open": "open"},
                ExpressionAttributeValues={":m": {"SS": sorted(failures[repo])}, ":exp": {"N": str(expires)}},
            )

        repos = [repo for repo, members in failures.items() if members]
        list(self._map(update, repos))
        return len(repos)

    def _batch_get(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        def get(chunk: list[tuple[str, str]]) -> list[dict[str, Any]]:
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in chunk],
                    "ConsistentRead": True,
                }
            }
            items: list[dict[str, Any]] = []
            for attempt in range(10):
                response = self._db.batch_get_item(RequestItems=request)
                items += response["Responses"].get(self._table, [])
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    return items
                time.sleep(min(2.0, 0.05 * 2**attempt))
            raise RuntimeError("BatchGetItem kept returning unprocessed keys")  # the batch is retried

        unique = list(dict.fromkeys(keys))
        chunks = [unique[i : i + MAX_BATCH_GET] for i in range(0, len(unique), MAX_BATCH_GET)]
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for items in self._map(get, chunks):
            found.update({(item["pk"]["S"], item["sk"]["S"]): item for item in items})
        return found

    def _update_buckets(self, sets: dict[tuple[str, date, int], dict[str, set[str]]]) -> int:
        def update(key: tuple[str, date, int]) -> None:
            scope, day, shard = key
            members = {name: values for name, values in sets[key].items() if values}
            names = {f"#{name}": name for name in members}
            values: dict[str, Any] = {f":{name}": {"SS": sorted(v)} for name, v in members.items()}
            values[":exp"] = {"N": str(_epoch(day, self._keep_days))}
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"b#{scope}"}, "sk": {"S": f"d#{day.isoformat()}#{shard}"}},
                UpdateExpression="SET expires_at = :exp ADD " + ", ".join(f"#{n} :{n}" for n in members),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

        list(self._map(update, list(sets)))
        return len(sets)

    def _batch_write(self, requests: list[dict[str, Any]]) -> int:
        chunks = [requests[i : i + MAX_BATCH_WRITE] for i in range(0, len(requests), MAX_BATCH_WRITE)]
        list(self._map(self._write_chunk, chunks))
        return len(chunks)

    def _write_chunk(self, chunk: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self._table: chunk}
        for attempt in range(10):
            pending = self._db.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(min(2.0, 0.05 * 2**attempt))
        raise RuntimeError("BatchWriteItem kept returning unprocessed items")  # the batch is retried

    def _count_too_old(self, count: int) -> None:
        """A diagnostic counter (counted per delivery, so a replay counts a too-old event again)."""
        self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": "stats"}, "sk": {"S": "too_old"}},
            UpdateExpression="ADD events :n",
            ExpressionAttributeValues={":n": {"N": str(count)}},
        )

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

    # -- reads ---------------------------------------------------------------------------------
    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any] | set[Any]) -> Iterator[Any]:
        items = list(items)
        if len(items) <= 1:
            return iter([fn(item) for item in items])
        return self._pool.map(fn, items)

    def _query_all(
        self, *, pk: str, between: tuple[str, str] | None = None, projection: str | None = None
    ) -> Iterator[dict[str, Any]]:
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
        days = [window.first_day + timedelta(days=n) for n in range(window.days + 1)]
        shards = range(ALL_SHARDS) if scope == REPO_ALL else range(1)
        items = self._batch_get([(f"b#{scope}", f"d#{day.isoformat()}#{n}") for day in days for n in shards])
        by_day: dict[date, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for (_, sk), item in items.items():
            day = date.fromisoformat(sk[2:12])
            for name in _SETS:
                by_day[day][name].update(item.get(name, {}).get("SS", []))
        return [
            DayBucket(
                day=day,
                deploys=len(sets["deploys"]),
                failures=len(sets["failures"]),
                lead_seconds=_samples(sets["lead"]),
                recovery_seconds=_samples(sets["rec"]),
            )
            for day, sets in sorted(by_day.items())
        ]

    def known_repos(self, within_days: int | None = None) -> list[str]:
        """Repos with a counted event in the last ``within_days`` days (default: the aggregator's
        window); read-only, also used by the gateway's metrics API."""
        days = within_days or self._window_days
        first = Window.ending_at(self._clock(), days).first_day.isoformat()
        now = int(self._clock().timestamp())
        return [
            item["sk"]["S"]
            for item in self._query_all(pk="repos")
            if int(item.get("expires_at", {}).get("N", str(now + 1))) > now  # TTL deletes lag
            and item.get("seen", {}).get("S", first) >= first  # items written before `seen` existed
        ]

    def too_old_total(self) -> int:
        item = self._db.get_item(
            TableName=self._table, Key={"pk": {"S": "stats"}, "sk": {"S": "too_old"}}, ConsistentRead=True
        ).get("Item")
        return int(item["events"]["N"]) if item else 0

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def _samples(members: set[str]) -> list[float]:
    """One sample per key (``key=seconds``). A key holds two values only when an earlier push of a
    deployed sha arrived late; the larger one, measured from that earliest push, wins."""
    best: dict[str, float] = {}
    for member in members:
        key, _, value = member.rpartition("=")
        seconds = float(value)
        best[key] = max(seconds, best.get(key, seconds))
    return sorted(best.values())
