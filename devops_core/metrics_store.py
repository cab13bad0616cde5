"""The aggregator's state table: its layout, and the read model every reader of the metrics uses
(the aggregator for its calc_* events, the gateway for GET /metrics and the dashboard).

One DynamoDB table, string keys ``pk``/``sk``, TTL attribute ``expires_at``:

=====================  ==========================  ===================================================
pk                     sk                          what
=====================  ==========================  ===================================================
``ev#<repo>``          ``<time_ms>#<event_id>``    the event log: ``e`` = the event's record (JSON)
``id#<event_id>``      ``-``                       first write wins: ``d`` = the event's content digest
``day#<repo>``         ``<YYYY-MM-DD>``            the repo's day facts: ``f`` = {service/team: facts}
``all#<YYYY-MM-DD>``   ``<shard>``                 every repo's day facts, ``r:<repo>`` per repo
``repos``              ``<repo>``                  ``v`` = the repo's log version, ``days`` with events
``teams``/``team#<t>`` ``<t>``/``<repo>``          teams events named, and their repos
``services``/``svc#``  ``<s>``/``<repo>``          services events named, and their repos
``environments``       ``<environment>``           non-production environments events named
``claim#<name>``       ``-``                       one periodic emit per period, across tasks
=====================  ==========================  ===================================================

Day facts are derived from the log by a pure function (devops_core.dora) and carry the log version
``v`` they were derived from; a write with an older version never replaces a newer one, so two
workers racing over one repo during a lease handover cannot leave stale facts behind.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from devops_core.dora.model import DayFacts, FactKey
from devops_core.events import DevOpsEvent
from devops_core.retry import Backoff

__all__ = [
    "ALL_SHARDS",
    "MAX_BATCH_GET",
    "Keys",
    "MetricsStore",
    "OpenFailure",
    "RepoInfo",
]

logger = logging.getLogger(__name__)

ALL_SHARDS = 8  # an ALL day item holds every repo's facts of the day: spread over this many items
MAX_BATCH_GET = 100
_UNPROCESSED = Backoff(base=0.05, cap=2.0)


class Keys:
    """Every key of the table, in one place."""

    REPOS = "repos"
    TEAMS = "teams"
    SERVICES = "services"
    ENVIRONMENTS = "environments"

    @staticmethod
    def log(repo: str) -> str:
        return f"ev#{repo}"

    @staticmethod
    def log_sort(time_ms: int, event_id: str) -> str:
        return f"{max(time_ms, 0):015d}#{event_id}"

    @staticmethod
    def guard(event_id: str) -> str:
        return f"id#{event_id}"

    @staticmethod
    def day(repo: str) -> str:
        return f"day#{repo}"

    @staticmethod
    def all_day(day: date) -> str:
        return f"all#{day.isoformat()}"

    @staticmethod
    def all_shard(repo: str) -> str:
        return str(zlib.crc32(repo.encode()) % ALL_SHARDS)

    @staticmethod
    def all_attribute(repo: str) -> str:
        return f"r:{repo}"

    @staticmethod
    def all_version(repo: str) -> str:
        return f"v:{repo}"

    @staticmethod
    def team(team: str) -> str:
        return f"team#{team}"

    @staticmethod
    def service(service: str) -> str:
        return f"svc#{service}"


@dataclass(frozen=True)
class OpenFailure:
    """A failure not ended as of its repo's last derivation (the event that started it identifies it:
    two failures can share a start and a key)."""

    start: datetime
    key: FactKey
    event_id: str

    def encode(self) -> list[str]:
        return [
            self.start.astimezone(UTC).isoformat(timespec="milliseconds"),
            self.key.encode(),
            self.event_id,
        ]

    @classmethod
    def decode(cls, item: list[str]) -> OpenFailure:
        start, key, event_id = item
        return cls(datetime.fromisoformat(start), FactKey.decode(key), event_id)


@dataclass(frozen=True)
class RepoInfo:
    repo: str
    version: int  # of the repo's event log (bumped by every append of new events)
    days: frozenset[date]  # days with stored events
    open: tuple[OpenFailure, ...] = ()  # failures not ended, as of the last derivation

    @property
    def last_day(self) -> date | None:
        return max(self.days) if self.days else None


def _repo_info(item: dict[str, Any]) -> RepoInfo:
    days = frozenset(date.fromisoformat(day) for day in item.get("days", {}).get("SS", []))
    opened = tuple(OpenFailure.decode(entry) for entry in json.loads(item.get("open", {}).get("S", "[]")))
    return RepoInfo(item["sk"]["S"], int(item.get("v", {}).get("N", "0")), days, opened)


def decode_facts(text: str) -> dict[FactKey, DayFacts]:
    return {FactKey.decode(key): DayFacts.from_json(value) for key, value in json.loads(text).items()}


def encode_facts(facts: dict[FactKey, DayFacts]) -> str:
    data = {key.encode(): value.to_json() for key, value in facts.items() if not value.is_empty()}
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


class MetricsStore:
    """Reads of the state table (boto3 DynamoDB client; thread-safe, used from worker threads)."""

    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self.table = table
        # BatchGetItem chunks (100 keys each) are independent: fetched side by side. Leaf tasks only
        # (they never wait on this pool), so callers on other pools may use it without deadlock.
        self._chunks = ThreadPoolExecutor(max_workers=8, thread_name_prefix="batch-get")

    # -- low level -------------------------------------------------------------------------------
    def query(
        self,
        pk: str,
        *,
        between: tuple[str, str] | None = None,
        projection: str | None = None,
        names: dict[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk" + (" AND sk BETWEEN :lo AND :hi" if between else ""),
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        if between:
            params["ExpressionAttributeValues"].update({":lo": {"S": between[0]}, ":hi": {"S": between[1]}})
        if projection:
            params["ProjectionExpression"] = projection
        if names:
            params["ExpressionAttributeNames"] = names
        while True:
            response = self._db.query(**params)
            yield from response["Items"]
            if "LastEvaluatedKey" not in response:
                return
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def batch_get(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        unique = list(dict.fromkeys(keys))
        chunks = [unique[start : start + MAX_BATCH_GET] for start in range(0, len(unique), MAX_BATCH_GET)]
        found: dict[tuple[str, str], dict[str, Any]] = {}
        results = (
            [self._get_chunk(chunks[0])] if len(chunks) == 1 else self._chunks.map(self._get_chunk, chunks)
        )
        for items in results:
            found.update(items)
        return found

    def _get_chunk(self, chunk: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        request: dict[str, Any] = {
            self.table: {
                "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in chunk],
                "ConsistentRead": True,
            }
        }
        failures = 0
        while request:
            response = self._db.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(self.table, []):
                found[(item["pk"]["S"], item["sk"]["S"])] = item
            request = response.get("UnprocessedKeys") or {}
            if request:
                failures += 1
                if failures > 10:  # the caller's batch is retried by the processor core
                    raise RuntimeError("BatchGetItem kept returning unprocessed keys")
                time.sleep(_UNPROCESSED.delay(failures))
        return found

    # -- the read model ----------------------------------------------------------------------------
    def events(self, repo: str, since: datetime) -> list[DevOpsEvent]:
        """The repo's logged events from ``since`` on, oldest first."""
        low = Keys.log_sort(int(since.timestamp() * 1000), "")
        return [
            DevOpsEvent.from_record_data(item["e"]["S"])
            for item in self.query(Keys.log(repo), between=(low, "9" * 16), projection="e")
        ]

    def repos(self) -> dict[str, RepoInfo]:
        """Every repo with stored events, with its log version and the days it had events."""
        return {info.repo: info for info in map(_repo_info, self.query(Keys.REPOS))}

    def repo(self, repo: str) -> RepoInfo | None:
        found = self.batch_get([(Keys.REPOS, repo)])
        return _repo_info(found[(Keys.REPOS, repo)]) if found else None

    def names(self, kind: str) -> list[str]:
        """Teams (``Keys.TEAMS``) or services (``Keys.SERVICES``) that events named."""
        return sorted(item["sk"]["S"] for item in self.query(kind))

    def repos_of(self, index_pk: str) -> set[str]:
        """The repos under a team or service index partition (``Keys.team(t)``, ``Keys.service(s)``)."""
        return {item["sk"]["S"] for item in self.query(index_pk)}

    def repo_facts(self, repo: str, first: date, last: date) -> dict[date, dict[FactKey, DayFacts]]:
        """The stored day facts of ``repo`` for [first, last], per (service, team)."""
        facts: dict[date, dict[FactKey, DayFacts]] = {}
        for item in self.query(Keys.day(repo), between=(first.isoformat(), last.isoformat())):
            decoded = decode_facts(item.get("f", {}).get("S", "{}"))
            if decoded:
                facts[date.fromisoformat(item["sk"]["S"])] = decoded
        return facts

    def all_facts(self, first: date, last: date, environment: str | None = None) -> dict[date, DayFacts]:
        """Every repo's facts summed per day, for [first, last], of production or one environment."""
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        keys = [(Keys.all_day(day), str(shard)) for day in days for shard in range(ALL_SHARDS)]
        totals: dict[date, DayFacts] = defaultdict(DayFacts)
        for (pk, _), item in self.batch_get(keys).items():
            day = date.fromisoformat(pk.removeprefix("all#"))
            for name, value in item.items():
                if name.startswith("r:"):
                    share = json.loads(value["S"]).get(environment or "")
                    if share:
                        totals[day].add(DayFacts.from_json(share))
        return dict(totals)
